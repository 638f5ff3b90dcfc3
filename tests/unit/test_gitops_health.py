"""How Argo CD and Flux read InferenceService status, on bodies captured from the test bed.

tests/gitops/bodies/*.json are real objects the operator wrote (tests/gitops/README.md says
how they were captured); tests/gitops/expected.json says what each must read as. The
judge is hack/tools/gitops (`tideserve-health`, built by `hack/build-tools gitops`):
gopher-lua running gitops/argocd/health.lua as Argo CD runs a resource.customizations
health script, and sigs.k8s.io/cli-utils' kstatus (Flux) on the same body.
tests/e2e/test_operating_e2e.py runs the same judge on live bodies with the same
expectations.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
LUA = ROOT / "gitops" / "argocd" / "health.lua"
ARGOCD_CM = ROOT / "gitops" / "argocd" / "argocd-cm.yaml"
BODIES = ROOT / "tests" / "gitops" / "bodies"
EXPECTED = ROOT / "tests" / "gitops" / "expected.json"
CM_KEY = "resource.customizations.health.serving.tideserve.io_InferenceService"


def health_binary() -> str:
    explicit = os.environ.get("TIDESERVE_HEALTH")
    path = (
        pathlib.Path(explicit)
        if explicit
        else pathlib.Path.home() / ".cache/tideserve/bin/tideserve-health"
    )
    if not path.exists():
        pytest.fail(f"{path} not found: run `hack/build-tools gitops` (or set TIDESERVE_HEALTH)")
    return str(path)


def judge(paths: list[pathlib.Path]) -> dict[str, dict[str, Any]]:
    """{file stem: {"argocd": {status, message}, "kstatus": {status, message}}}."""
    result = subprocess.run(
        [health_binary(), "-lua", str(LUA), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    errors = [row for row in rows if row.get("error")]
    assert result.returncode == 0 and not errors, (result.stderr, errors)
    return {pathlib.Path(row["file"]).stem: row for row in rows}


def expected() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(EXPECTED.read_text())
    return loaded


def test_every_captured_body_has_an_expectation_and_back() -> None:
    assert {p.stem for p in BODIES.glob("*.json")} == set(expected())


@pytest.mark.parametrize("name", sorted(expected()))
def test_argocd_and_kstatus_read_the_captured_status_as_documented(name: str) -> None:
    verdict = judge([BODIES / f"{name}.json"])[name]
    want = expected()[name]
    assert verdict["argocd"]["status"] == want["argocd"], verdict
    assert verdict["kstatus"]["status"] == want["kstatus"], verdict
    assert verdict["argocd"]["message"], "Argo CD shows the message: never empty"


def test_the_argocd_cm_snippet_carries_the_script_verbatim() -> None:
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    assert cm["data"][CM_KEY] == LUA.read_text()


def test_the_script_uses_no_library_argocd_leaves_closed() -> None:
    # Argo CD opens only base, table and package (and a safe os) for custom checks.
    code = "\n".join(line.split("--", 1)[0] for line in LUA.read_text().splitlines())
    for library in ("string.", "math.", "os.", "io.", ":find(", ":sub(", ":match("):
        assert library not in code, library
