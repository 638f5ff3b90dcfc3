"""Operating tideserve as a platform team does, on the real test bed.

The operator (`tideserve run`: reconciler, autoscaler, right-sizing) and the activator run
as subprocesses; Prometheus scrapes them (as the chart's ServiceMonitors do, keeping their
namespace/name labels) and a real Triton standing for the endpoint's replica. One run
drives the states a user meets: serving, scaled to zero, woken by held requests, a GPU no
node offers (waiting for a node, requests expiring at the wake deadline), a missing
storage Secret, a hard-off schedule window, a drift repair. Then:

- status.slo: attainment counted, the requests held through the wake counted late;
  `kubectl get -o wide` shows it; `kubectl wait --for=condition=Ready` returns.
- Argo CD (gitops/argocd/health.lua in gopher-lua) and kstatus read each live body as
  tests/gitops/expected.json says (TIDESERVE_CAPTURE_GITOPS=DIR writes the bodies there:
  how tests/gitops/bodies was made).
- Every PromQL expression of the Grafana dashboard and of the chart's PrometheusRule is
  evaluated on this Prometheus: no errors, every dashboard query and recording rule returns
  series, and exactly the alerts this run provoked fire.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import pathlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml
from tideserve_testbed import fixtures, procs

pytestmark = pytest.mark.e2e

ROOT = procs.REPO
HEALTH = pathlib.Path.home() / ".cache" / "tideserve" / "bin" / "tideserve-health"
HELM = pathlib.Path.home() / ".cache" / "tideserve" / "bin" / "helm"
ISVC = "inferenceservices.serving.tideserve.io"
EXPECTED = json.loads((ROOT / "tests" / "gitops" / "expected.json").read_text())
# Alerts this run provokes: a wake past its deadline; 20 of some 60 requests held through
# a wake, far past 100 ms (a burn at every window: a few minutes of data). No others.
FIRING = {"TideserveWakeDeadlineExceeded", "TideserveSLOBurnRateFast", "TideserveSLOBurnRateSlow"}


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{ISVC}")
    name = f"ops-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def manifest(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"name": "tiny", "storageUri": "https://models.example.com/tiny.tar.gz"},
        "resources": {"accelerator": "cpu", "cpu": "1", "memory": "1Gi"},
    }
    return {
        "apiVersion": "serving.tideserve.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": base | spec,
    }


def body(kube: fixtures.Kube, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kube.get_json(ISVC, name, "-n", namespace)
    obj["metadata"].pop("managedFields", None)
    return obj


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def has(obj: dict[str, Any], kind: str, status: str, reason: str | None = None) -> bool:
    c = conditions(obj).get(kind)
    return c is not None and c["status"] == status and (reason is None or c["reason"] == reason)


def infer(client: httpx.Client, url: str, i: int, **headers: str) -> httpx.Response:
    return client.post(
        f"{url}/v2/models/tiny/infer",
        json={"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "FP32", "data": [i]}]},
        headers=headers,
    )


def anonymous(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A captured body without what differs per run (namespace, uid, versions)."""
    meta = obj["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    text = json.dumps(obj, indent=2, sort_keys=True).replace(namespace, "demo")
    out: dict[str, Any] = json.loads(text)
    return out


def judge(tmp: pathlib.Path, bodies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert HEALTH.exists(), f"{HEALTH}: run `hack/build-tools gitops`"
    paths = []
    for name, obj in bodies.items():
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(obj))
        paths.append(str(path))
    lua = str(ROOT / "gitops" / "argocd" / "health.lua")
    out = subprocess.run(
        [str(HEALTH), "-lua", lua, *paths], capture_output=True, text=True, check=False
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 0, (out.stderr, rows)
    return {pathlib.Path(r["file"]).stem: r for r in rows}


def rules() -> list[dict[str, Any]]:
    assert HELM.exists(), f"{HELM}: run `hack/build-tools helm`"
    out = subprocess.run(
        [str(HELM), "template", "t", str(ROOT / "charts" / "tideserve"),
         "--show-only", "templates/prometheusrule.yaml", "--set", "prometheusRule.force=true",
         "--kube-version", "1.35.0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    doc = yaml.safe_load(out.stdout)
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def dashboard_queries(namespace: str) -> list[tuple[str, str]]:
    board = json.loads(
        (ROOT / "charts" / "tideserve" / "dashboards" / "tideserve.json").read_text()
    )
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "5m")
                .replace("$namespace", namespace)
                .replace("$endpoint", ".*")
            )
            queries.append((f"{panel['title']} [{target['refId']}]", expr))
    for variable in board["templating"]["list"]:
        query = (variable.get("query") or {}) if variable["type"] == "query" else {}
        if isinstance(query, dict) and query.get("query", "").startswith("label_values("):
            # label_values(METRIC{...}, label): the series it lists labels of.
            metric = query["query"].removeprefix("label_values(").rsplit(",", 1)[0]
            queries.append(
                (f"variable {variable['name']}", metric.replace("$namespace", namespace))
            )
    return queries


def test_operating_tideserve_status_health_alerts_and_dashboard(
    kube: fixtures.Kube,
    namespace: str,
    prometheus: fixtures.Prometheus,
    start_triton: Callable[..., fixtures.Triton],
    processes: Callable[..., subprocess.Popen[bytes]],
    tmp_path: pathlib.Path,
    request: pytest.FixtureRequest,
) -> None:
    ns = namespace
    server = start_triton(labels={"namespace": ns, "name": "svc", "pod": "svc-0"})
    http = httpx.Client(timeout=httpx.Timeout(120, connect=5))
    request.addfinalizer(http.close)
    # Traffic served before the operator starts: the right-sizing pass at its start has
    # requests in its cost window (cost per 1,000 inferences). Scraped at 0 first, or
    # increase() sees no requests at all.
    fixtures.eventually(
        lambda: prometheus.query(f'nv_inference_request_success{{namespace="{ns}"}} == 0'),
        60, "Prometheus to scrape Triton before any request", interval=0.5,
    )  # fmt: skip
    for i in range(30):
        assert infer(http, server.http_url, i).status_code == 200
    fixtures.eventually(
        lambda: prometheus.query(f'nv_inference_request_success{{namespace="{ns}"}} > 0'),
        60, "Prometheus to scrape Triton's requests", interval=1,
    )  # fmt: skip

    now = datetime.datetime.now(datetime.UTC)
    hhmm = lambda moment: moment.strftime("%H:%M")  # noqa: E731
    scale_to_zero = {"idleSeconds": 3, "wakeDeadlineSeconds": 60}
    objects = [
        manifest(ns, "svc", slo={"queueTimeMs": 100, "latencyMs": 2000}, scaling={
            "minReplicas": 0, "maxReplicas": 2, "scaleToZero": scale_to_zero,
            "behavior": fixtures.FAST_BEHAVIOR,
        }),
        # A GPU no node offers: every wake waits for a node and expires at its deadline.
        manifest(ns, "nogpu", slo={"queueTimeMs": 100}, resources={
            "accelerator": "gpu", "gpu": {"product": "NVIDIA-H200", "count": 1},
        }, scaling={"minReplicas": 0, "maxReplicas": 1, "behavior": fixtures.FAST_BEHAVIOR,
                    "scaleToZero": {"idleSeconds": 3, "wakeDeadlineSeconds": 3}}),
        manifest(ns, "secretless", model={
            "name": "tiny", "storageUri": "s3://models/tiny", "storageSecretRef": "missing",
        }),
        manifest(ns, "nightly", scaling={"minReplicas": 1, "maxReplicas": 2, "schedules": [{
            "name": "night", "timeZone": "UTC", "maxReplicas": 0,
            "start": hhmm(now - datetime.timedelta(hours=1)),
            "end": hhmm(now + datetime.timedelta(hours=2)),
        }]}),
    ]  # fmt: skip
    for obj in objects:
        kube.apply(obj)
    as_applied = body(kube, ns, "svc")

    http_port, control_port, metrics_port = procs.free_port(), procs.free_port(), procs.free_port()
    processes(
        "activator",
        ["activator", "--host=127.0.0.1", f"--http-port={http_port}", "--grpc-port=0",
         f"--control-port={control_port}", f"--namespace={ns}",
         f"--upstream={ns}/svc={server.http_url}"],
        {"KUBECONFIG": str(kube.kubeconfig)},
    )  # fmt: skip
    processes(
        "operator",
        ["run", "--bind", "127.0.0.1", "--namespace", ns],
        {
            "KUBECONFIG": str(kube.kubeconfig),
            "TIDESERVE_TICK_SECONDS": "1",
            "TIDESERVE_SLO_INTERVAL_SECONDS": "3",
            "TIDESERVE_ACTIVATOR_URL": f"http://127.0.0.1:{control_port}",
            "TIDESERVE_METRICS_PORT": str(metrics_port),
            "TIDESERVE_HEALTH_PORT": str(procs.free_port()),
        },
    )
    prometheus.register_component(f"{ns}-operator", f"127.0.0.1:{metrics_port}", "operator")
    prometheus.register_component(f"{ns}-activator", f"127.0.0.1:{control_port}", "activator")
    try:
        live: dict[str, dict[str, Any]] = {"no-status": as_applied}

        def capture(
            name: str, isvc: str, ready: Callable[[dict[str, Any]], bool], what: str
        ) -> None:
            live[name] = fixtures.eventually(
                lambda: (obj,) if ready(obj := body(kube, ns, isvc)) else None,
                120, what, interval=0.5,
            )[0]  # fmt: skip

        capture("serving", "svc", lambda o: has(o, "Ready", "True", "Available"), "svc serving")
        waited = kube.kubectl("wait", "--for=condition=Ready", f"{ISVC}/svc", "-n", ns,
                              "--timeout=30s", check=False)  # fmt: skip
        assert waited.returncode == 0, waited
        capture("scaled-to-zero", "svc", lambda o: has(o, "Ready", "True", "ScaledToZero")
                and not o["status"].get("readyReplicas"), "svc to idle to zero")  # fmt: skip
        waited = kube.kubectl("wait", "--for=condition=Ready", f"{ISVC}/svc", "-n", ns,
                              "--timeout=5s", check=False)  # fmt: skip
        assert waited.returncode == 0, "at zero an endpoint is Ready (it wakes on demand)"
        capture("hard-off", "nightly", lambda o: bool(o["status"].get("offUntil"))
                and has(o, "Ready", "True", "ScaledToZero"), "nightly off by schedule")  # fmt: skip
        capture("storage-secret-missing", "secretless",
                lambda o: has(o, "SpecValid", "False"), "secretless reported")  # fmt: skip

        activator = f"http://127.0.0.1:{http_port}"
        fixtures.eventually(
            lambda: any(e["name"] == "svc" and e["readyReplicas"] == 0 for e in
                        httpx.get(f"http://127.0.0.1:{control_port}/endpoints").json()["endpoints"]),
            30, "the activator to see svc at zero",
        )  # fmt: skip
        with concurrent.futures.ThreadPoolExecutor(21) as pool:
            held = [pool.submit(infer, http, activator, i, Host=f"svc.{ns}.svc.cluster.local")
                    for i in range(20)]  # fmt: skip
            stuck = pool.submit(infer, http, activator, 0, Host=f"nogpu.{ns}.svc.cluster.local")
            # Woken for the held request, its replica waits for a node that never comes.
            pool.submit(capture, "waiting-for-node", "nogpu",
                        lambda o: has(o, "Ready", "False", "Pending"), "nogpu waiting for a node",
                        ).result()  # fmt: skip
            assert [f.result().status_code for f in held] == [200] * 20
            assert stuck.result().status_code == 503  # expired at its 3 s wake deadline
        for i in range(40):  # served at once by the woken replica: within the SLO
            assert infer(http, server.http_url, i).status_code == 200

        # A hand-deleted child is put back (and counted).
        kube.kubectl("delete", "service", "svc", "-n", ns)
        fixtures.eventually(
            lambda: kube.kubectl("get", "service", "svc", "-n", ns, check=False).returncode == 0,
            60, "the Service to be repaired",
        )  # fmt: skip

        # 20 requests held through the wake (0.5 s or more; target 100 ms) and 40 served at
        # once: once the intervals with them are counted, all 60 are in and the 20 late.
        seen: list[dict[str, Any]] = [{}]

        def counted() -> tuple[dict[str, Any]] | None:
            seen[0] = shown = body(kube, ns, "svc")["status"].get("slo") or {}
            total, good = shown.get("totalRequests", 0), shown.get("goodRequests", 0)
            return (shown,) if total >= 60 and total - good >= 20 else None

        try:
            slo = fixtures.eventually(counted, 90, "status.slo to count the held requests late")[0]
        except AssertionError as exc:
            series = [
                prometheus.query(f'{{namespace="{ns}",name="svc",__name__=~"{m}"}}')
                for m in ("tideserve_slo_.*", "tideserve_activator_hold_seconds_count",
                          "nv_inference_queue_summary_us", "nv_inference_request_summary_us")
            ]  # fmt: skip
            raise AssertionError(f"{exc}: status.slo {seen[0]}; {series}") from exc
        print(f"status.slo of svc: {slo}")
        assert 0 < slo["attainment"] < 1, slo
        header, row = kube.kubectl("get", ISVC, "svc", "-n", ns, "-o", "wide").stdout.splitlines()
        # Columns are aligned; empty ones (no active schedule) print nothing.
        shown = row[header.index("ATTAINMENT") :].split()[0]
        assert 0 < float(shown) < 1, (header, row)

        live["generation-behind"] = json.loads(json.dumps(live["serving"]))
        live["generation-behind"]["metadata"]["generation"] += 1
        if capture_dir := os.environ.get("TIDESERVE_CAPTURE_GITOPS"):
            out = pathlib.Path(capture_dir)
            out.mkdir(parents=True, exist_ok=True)
            for name, obj in live.items():
                (out / f"{name}.json").write_text(json.dumps(anonymous(obj, ns), indent=2) + "\n")
        verdicts = judge(tmp_path, live)
        for name, verdict in verdicts.items():
            want = EXPECTED[name]
            got = (verdict["argocd"]["status"], verdict["kstatus"]["status"])
            assert got == (want["argocd"], want["kstatus"]), (name, verdict)

        # Every expression, on this Prometheus, once the operator's and the activator's
        # series are scraped.
        for series in (
            f'tideserve_slo_requests_total{{namespace="{ns}"}} > 0',
            'tideserve_drift_repairs_total{kind="Service"} > 0',
            f'tideserve_cost_per_hour{{namespace="{ns}"}}',
        ):
            fixtures.eventually(
                lambda q=series: prometheus.query(q),
                120,
                f"Prometheus to have {series}",
                interval=1,
            )
        empty = [title for title, expr in dashboard_queries(ns) if not prometheus.query(expr)]
        assert not empty, f"dashboard queries without series: {empty}"
        recorded = {}
        recording = {r["record"]: r["expr"] for r in rules() if "record" in r}
        for rule in rules():
            if "record" in rule:
                rows = prometheus.query(rule["expr"])
                assert rows, f"recording rule {rule['record']} returns no series"
                recorded[rule["record"]] = rows
        firing = set()
        for rule in rules():
            if "alert" in rule:
                expr = rule["expr"]
                # The test bed's Prometheus does not load the rules: inline what they record.
                for name in sorted(recorded, key=len, reverse=True):
                    expr = expr.replace(name, f"({recording[name]})")
                if prometheus.query(expr):
                    firing.add(rule["alert"])
        assert firing == FIRING, firing
    finally:
        prometheus.unregister(f"{ns}-operator")
        prometheus.unregister(f"{ns}-activator")
