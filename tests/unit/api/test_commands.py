"""`tideserve crds` and `tideserve validate` as a user runs them."""

from __future__ import annotations

import pathlib

import pytest

from tideserve import cli
from tideserve.api import crd

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_validate_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.yaml"))
    assert cli.main(["validate", *examples]) == 0
    assert capsys.readouterr().out.count(": valid") == len(examples)


def test_validate_names_the_bad_field(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: serving.tideserve.io/v1alpha1\nkind: InferenceService\n"
        "metadata: {name: broken}\n"
        "spec:\n  model: {name: m, storageUri: 's3://b/m'}\n"
        "  scaling: {minReplicas: 3, maxReplicas: 1}\n"
    )
    assert cli.main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "broken: spec.scaling.minReplicas: minReplicas must be less than or equal" in err
    assert "Traceback" not in err


def test_validate_names_a_misspelt_kind_of_ours_instead_of_skipping_it(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "apiVersion: serving.tideserve.io/v1alpha1\nkind: InferenceServices\n"
        "metadata: {name: typo}\nspec:\n  model: {name: m, storageUri: 's3://b/m'}\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n"
    )
    assert cli.main(["validate", str(typo)]) == 1
    assert "typo: kind: must be InferenceService" in capsys.readouterr().err


def test_validate_reads_stdin_and_a_bom_and_names_a_file_that_is_not_text(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    example = (ROOT / "examples" / "01-cpu-model.yaml").read_bytes()
    stdin = tmp_path / "stdin"
    stdin.write_bytes(b"\xef\xbb\xbf" + example)
    with stdin.open("rb") as f:
        monkeypatch.setattr("sys.stdin", type("In", (), {"buffer": f})())
        assert cli.main(["validate", "-"]) == 0
    assert capsys.readouterr().out.startswith("-: ")
    binary = tmp_path / "utf16.yaml"
    binary.write_bytes(b"\xff\xfe" + "kind: x".encode("utf-16-le"))
    assert cli.main(["validate", str(binary)]) == 1
    err = capsys.readouterr().err
    assert "utf16.yaml: cannot read: not UTF-8 text (byte 0xff at offset 0)" in err
    assert "Traceback" not in err


def test_crds_check_reports_a_stale_file(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["crds", "--root", str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert cli.main(["crds", "--root", str(tmp_path)]) == 0
    assert cli.main(["crds", "--root", str(tmp_path), "--check"]) == 0
    assert crd.targets(tmp_path)[0].read_text() == crd.render()


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["v1/List", "serving.tideserve.io/v1alpha1/InferenceServiceList"])
def test_validate_checks_each_item_of_a_list_as_kubectl_applies_them(
    kind: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A v1 List was skipped as someone else's (exit 0, a bad item unreported), and an
    # InferenceServiceList (kubectl get -o yaml) refused as a misspelt kind.
    api_version, _, list_kind = kind.rpartition("/")
    item = (
        "- apiVersion: serving.tideserve.io/v1alpha1\n  kind: InferenceService\n"
        "  metadata: {{name: {name}}}\n  spec:\n    model: {{name: m, storageUri: '{uri}'}}\n"
    )
    listed = tmp_path / "list.yaml"
    listed.write_text(
        f"apiVersion: {api_version}\nkind: {list_kind}\nitems:\n"
        + item.format(name="good", uri="s3://b/m")
        + item.format(name="bad", uri="ftp://b/m")
    )
    assert cli.main(["validate", str(listed)]) == 1
    out, err = capsys.readouterr()
    assert "good: valid" in out
    assert "bad: spec.model.storageUri" in err
    assert "kind: must be" not in err
