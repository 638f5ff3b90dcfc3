"""checkov on what tideserve ships: the chart as `helm template` renders it (cluster and
namespaced mode) and the children the operator renders (the golden examples). Every
finding must be listed with its reason in charts/tideserve/checkov-skips.yaml; an
unlisted finding fails, and so does a listed one that no longer occurs (the file stays
a reviewed list of what is true, not a pile of old excuses).

checkov lives in its own virtual environment (hack/lib/bootstrap.sh ensure_checkov,
cached under ~/.cache/tideserve/checkov-<version>; TIDESERVE_CHECKOV points at it).
"""

from __future__ import annotations

import fnmatch
import json
import os
import pathlib
import re
import subprocess
import tempfile
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[2]
SKIPS = ROOT / "charts" / "tideserve" / "checkov-skips.yaml"
GOLDEN = ROOT / "tests" / "unit" / "render" / "golden"


def checkov_binary() -> str:
    configured = os.environ.get("TIDESERVE_CHECKOV")
    if configured:
        return configured
    bootstrap = (ROOT / "hack" / "lib" / "bootstrap.sh").read_text()
    version = re.search(r"^CHECKOV_VERSION=(\S+)$", bootstrap, re.MULTILINE)
    assert version, "CHECKOV_VERSION missing from hack/lib/bootstrap.sh"
    path = (
        pathlib.Path.home() / ".cache" / "tideserve" / f"checkov-{version[1]}" / "bin" / "checkov"
    )
    if not path.exists():
        pytest.fail(f"{path} missing: run `. hack/lib/bootstrap.sh && ensure_checkov`")
    return str(path)


def helm_template(values: dict[str, Any]) -> str:
    helm = os.environ.get("TIDESERVE_HELM") or str(
        pathlib.Path.home() / ".cache/tideserve/bin/helm"
    )
    if not pathlib.Path(helm).exists():
        pytest.fail(f"helm not found at {helm}: run `hack/build-tools helm`")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(values, handle)
        handle.flush()
        chart = str(ROOT / "charts" / "tideserve")
        cmd = [helm, "template", "tideserve", chart, "--namespace", "tideserve-system",
               "--kube-version", "1.35.0", "-f", handle.name]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def findings(tmp: pathlib.Path) -> set[tuple[str, str]]:
    """(check id, resource) of every failed check over the chart and the children."""
    (tmp / "chart.yaml").write_text(helm_template({}))
    namespaced = {"rbac": {"namespaced": True}, "watchNamespaces": ["ml"]}
    (tmp / "chart-namespaced.yaml").write_text(helm_template(namespaced))
    for golden in GOLDEN.glob("*.yaml"):
        (tmp / f"children-{golden.name}").write_text(golden.read_text())
    cmd = [checkov_binary(), "-d", str(tmp), "--framework", "kubernetes", "-o", "json",
           "--quiet", "--compact", "--skip-download"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode in (0, 1), f"checkov failed:\n{res.stdout[-2000:]}\n{res.stderr}"
    reports: Any = json.loads(res.stdout) if res.stdout.strip() else []
    if isinstance(reports, dict):
        reports = [reports]
    out = set()
    for report in reports:
        for failed in report.get("results", {}).get("failed_checks", []):
            out.add((failed["check_id"], failed["resource"]))
    return out


def skips() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load(SKIPS.read_text())["skips"]
    for entry in entries:
        assert set(entry) == {"check", "resources", "reason"}, entry
        assert len(entry["reason"].split()) >= 5, f"{entry['check']}: give the reason"
    return entries


def listed(entry: dict[str, Any], check: str, resource: str) -> bool:
    return entry["check"] == check and any(
        fnmatch.fnmatchcase(resource, pattern) for pattern in entry["resources"]
    )


def test_every_checkov_finding_is_listed_with_its_reason(tmp_path: pathlib.Path) -> None:
    found = findings(tmp_path)
    entries = skips()
    unlisted = sorted(f for f in found if not any(listed(e, *f) for e in entries))
    stale = [
        f"{e['check']} {e['resources']}" for e in entries if not any(listed(e, *f) for f in found)
    ]
    assert not unlisted, "checkov findings not in checkov-skips.yaml:\n" + "\n".join(
        f"{c} {r}" for c, r in unlisted
    )
    assert not stale, "checkov-skips.yaml lists findings that no longer occur:\n" + "\n".join(stale)
