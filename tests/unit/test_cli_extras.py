"""Commands whose libraries are extras (`bench`): without them, one line that
names the extra to install, not a traceback; and the extras in pyproject.toml really
hold those libraries, outside the runtime dependencies."""

from __future__ import annotations

import pathlib
import re
import tomllib
import types

import pytest

from tideserve import cli

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[2]


def missing(name: str) -> ModuleNotFoundError:
    # What `import simpy` raises when simpy is not installed (name set by the import system).
    return ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.mark.parametrize(
    ("command", "module", "extra"),
    [
        ("bench", "simpy", "bench"),
        ("bench", "matplotlib", "bench"),
        ("bench", "numpy", "bench"),
    ],
)
def test_missing_optional_module_names_the_extra(command: str, module: str, extra: str) -> None:
    hint = cli.missing_extra(command, missing(module))
    assert hint is not None
    assert "\n" not in hint
    assert f"pip install 'tideserve[{extra}]'" in hint
    assert module in hint


def test_submodule_of_a_missing_package_counts_as_the_package() -> None:
    assert cli.missing_extra("bench", missing("matplotlib.pyplot")) is not None


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("bench", "kopf"),  # a runtime dependency: a broken install, not a missing extra
        ("bench", "tritonclient"),  # not this command's extra
        ("run", "simpy"),  # the operator never needs an extra
        ("recommend", "tritonclient"),  # the probe speaks Triton's HTTP protocol with httpx
        ("bench", ""),
    ],
)
def test_other_import_failures_are_not_hidden(command: str, module: str) -> None:
    assert cli.missing_extra(command, missing(module)) is None


def fake_module(entry_raises: ImportError | None = None) -> types.ModuleType:
    module = types.ModuleType("fake")

    def main(argv: list[str]) -> int:
        if entry_raises is not None:
            raise entry_raises
        return 0

    module.main = main  # type: ignore[attr-defined]
    return module


def test_command_whose_module_cannot_import_prints_one_line_and_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def load(name: str) -> types.ModuleType:
        raise missing("simpy")

    assert cli.dispatch("bench", [], load=load) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install 'tideserve[bench]'" in err


def test_lazy_import_inside_the_command_gets_the_same_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `bench` imports the simulator (simpy) inside its entry point.
    load = lambda name: fake_module(missing("simpy"))  # noqa: E731
    assert cli.dispatch("bench", ["--quick"], load=load) == 1
    assert "pip install 'tideserve[bench]'" in capsys.readouterr().err


def test_unrelated_import_error_keeps_its_traceback() -> None:
    load = lambda name: fake_module(missing("not_an_extra"))  # noqa: E731
    with pytest.raises(ModuleNotFoundError):
        cli.dispatch("bench", [], load=load)


def test_command_runs_normally_when_its_module_imports() -> None:
    assert cli.dispatch("bench", [], load=lambda name: fake_module()) == 0


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_extras_hold_the_modules_the_cli_names_and_runtime_does_not() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = requirement_names(project["dependencies"])
    for extra, modules in cli.EXTRAS.values():
        # Distribution names equal module names for these libraries.
        assert modules <= requirement_names(project["optional-dependencies"][extra]), extra
        assert not modules & runtime, extra
    assert "tideserve" in requirement_names(project["optional-dependencies"]["dev"])
    dev_extras = {
        e for r in project["optional-dependencies"]["dev"] if r.startswith("tideserve[")
        for e in r.removeprefix("tideserve[").rstrip("]").split(",")
    }  # fmt: skip
    assert dev_extras == {extra for extra, _ in cli.EXTRAS.values()}
