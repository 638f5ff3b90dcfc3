"""What the right-sizing loop carries between passes: the catalog, read at start and again
only when its file changes (a bad version is reported once and the last good catalog
kept), and the endpoints whose cost gauges were published."""

from __future__ import annotations

import logging
import os
import pathlib

import pytest
import yaml

from tideserve.rightsizing import catalog, loop

pytestmark = pytest.mark.unit

EUR = catalog.DEFAULT.model_copy(update={"currency": "EUR"})


def write(path: pathlib.Path, text: str, version: int) -> None:
    path.write_text(text)
    # An explicit modification time per version: no reliance on the clock's resolution.
    os.utime(path, ns=(version * 10**9, version * 10**9))


def dump(cat: catalog.Catalog) -> str:
    return yaml.safe_dump(cat.dump())


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_no_catalog_file_means_the_built_in_catalog() -> None:
    state = loop.refresh_catalog(loop.State(), "")
    assert state.catalog is catalog.DEFAULT


def test_the_file_is_read_once_and_again_only_when_it_changes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "catalog.yaml"
    write(path, dump(EUR), version=1)
    first = loop.refresh_catalog(loop.State(), str(path))
    assert first.catalog == EUR
    assert loop.refresh_catalog(first, str(path)) is first  # unchanged file: not re-read

    write(path, dump(catalog.DEFAULT), version=2)
    second = loop.refresh_catalog(first, str(path))
    assert second.catalog == catalog.DEFAULT


def test_a_broken_new_version_keeps_the_last_good_catalog_and_is_reported_once(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "catalog.yaml"
    write(path, dump(EUR), version=1)
    good = loop.refresh_catalog(loop.State(), str(path))
    write(path, "gpus: [{colour: red}]", version=2)
    with caplog.at_level(logging.ERROR, logger=loop.__name__):
        bad = loop.refresh_catalog(good, str(path))
        again = loop.refresh_catalog(bad, str(path))
    assert bad.catalog == EUR
    assert again is bad
    assert len(errors(caplog)) == 1
    assert "last good" in errors(caplog)[0]


def test_a_missing_file_at_start_falls_back_to_the_built_in_catalog_and_says_so(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "absent.yaml"
    with caplog.at_level(logging.ERROR, logger=loop.__name__):
        state = loop.refresh_catalog(loop.State(), str(path))
        assert loop.refresh_catalog(state, str(path)) is state
    assert state.catalog is catalog.DEFAULT
    assert len(errors(caplog)) == 1
    assert "built-in" in errors(caplog)[0]
    # The file appears later (a ConfigMap mounted after start): it is read.
    write(path, dump(EUR), version=1)
    assert loop.refresh_catalog(state, str(path)).catalog == EUR
