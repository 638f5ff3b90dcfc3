"""The chart's PrometheusRule and dashboard, checked without a cluster.

The rules are rendered by the real helm (as `helm install` would, with the PrometheusRule
CRD present), their groups written to a rules file and run through Debian's promtool:
`promtool check rules` and `promtool test rules tests/unit/promtool/tideserve-rules.test.yaml`.
Every metric the rules, the dashboard and the README name must be one the code exports.
(tests/e2e/test_operating_e2e.py evaluates the same expressions on a real Prometheus.)
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tideserve"
PROMTOOL_TESTS = pathlib.Path(__file__).resolve().parent / "promtool" / "tideserve-rules.test.yaml"
DASHBOARD = CHART / "dashboards" / "tideserve.json"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
PROMETHEUS_RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
KUBE_VERSION = "1.35.0"  # the test bed's (hack/tools/k8s), as in test_chart.py


def helm_binary() -> str:
    explicit = os.environ.get("TIDESERVE_HELM")
    path = pathlib.Path(explicit) if explicit else pathlib.Path.home() / ".cache/tideserve/bin/helm"
    if not path.exists():
        pytest.fail(
            f"helm not found at {path}: run `hack/build-tools helm` (or set TIDESERVE_HELM)"
        )
    return str(path)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: Debian's prometheus package ships it (hack/test installs it)"
        )
    return path


def render(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            helm_binary(),
            "template",
            "t",
            str(CHART),
            "--namespace",
            "tideserve-system",
            "--kube-version",
            KUBE_VERSION,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def prometheus_rule(*args: str) -> dict[str, Any]:
    rules = [d for d in render("--api-versions", PROMETHEUS_RULE_API, *args)
             if d["kind"] == "PrometheusRule"]  # fmt: skip
    assert len(rules) == 1
    return rules[0]


def groups() -> list[dict[str, Any]]:
    return list(prometheus_rule()["spec"]["groups"])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_rendered_only_where_the_prometheus_rule_crd_is_served() -> None:
    assert not [d for d in render() if d["kind"] == "PrometheusRule"]
    assert [
        d for d in render("--set", "prometheusRule.force=true") if d["kind"] == "PrometheusRule"
    ]
    off = render("--api-versions", PROMETHEUS_RULE_API, "--set", "prometheusRule.enabled=false")
    assert not [d for d in off if d["kind"] == "PrometheusRule"]


def test_promtool_checks_and_unit_tests_pass(tmp_path: pathlib.Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups()}))
    shutil.copy(PROMTOOL_TESTS, tmp_path / "tests.yaml")
    checked = run(promtool(), "check", "rules", str(tmp_path / "rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool(), "test", "rules", str(tmp_path / "tests.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_objective_sets_the_burn_rate_thresholds() -> None:
    spec = prometheus_rule("--set-json", "prometheusRule.objective=0.999")["spec"]
    fast = next(r for g in spec["groups"] for r in g["rules"]
                if r.get("alert") == "TideserveSLOBurnRateFast")  # fmt: skip
    assert "> (14.4 * (1 - 0.999))" in fast["expr"]


def test_every_alert_has_a_runbook_section() -> None:
    headings = set(re.findall(r"^## (\w+)$", RUNBOOKS.read_text(), re.MULTILINE))
    alerts = [r for g in groups() for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} == headings
    for alert in alerts:
        assert alert["annotations"]["runbook_url"].endswith("#" + alert["alert"].lower())


def exported_metrics() -> set[str]:
    """Every metric name the operator and activator define (prometheus_client adds
    _total to counters; histograms export _bucket, _count and _sum)."""
    names: set[str] = set()
    pattern = re.compile(
        r"prometheus_client\.(Counter|Gauge|Histogram)\(\s*\"(tideserve_\w+)\"", re.MULTILINE
    )
    for path in (ROOT / "operator" / "tideserve").rglob("*.py"):
        for kind, name in pattern.findall(path.read_text()):
            if kind == "Counter":
                names.add(name.removesuffix("_total") + "_total")
            elif kind == "Histogram":
                names.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
            else:
                names.add(name)
    return names


def named_metrics(text: str) -> set[str]:
    return {m for m in re.findall(r"\btideserve_[a-z0-9_]+", text)}


def test_rules_and_dashboard_name_only_exported_metrics() -> None:
    exported = exported_metrics()
    exprs = [r["expr"] for g in groups() for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    unknown = sorted(named_metrics("\n".join(exprs)) - exported)
    assert not unknown, f"not exported by operator/tideserve: {unknown}"


def test_readme_operating_section_names_only_exported_metrics() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Operating it", 1)[1].split("\n## ", 1)[0]
    named = {m.split("{")[0] for m in named_metrics(section)}
    exported = exported_metrics()
    # The README may name a histogram by its base name.
    bases = exported | {n.rsplit("_", 1)[0] for n in exported if n.endswith("_bucket")}
    unknown = sorted(n for n in named if n not in bases and not n.endswith("_"))
    assert not unknown, f"README 'Operating it' names metrics the code does not export: {unknown}"
