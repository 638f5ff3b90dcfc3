"""Right-sizing on the real local cluster (kube-apiserver, scheduler, kwok GPU/MIG/CPU nodes).

- A request no node can satisfy is reported at once in the ResourcesFit condition.
- Auto mode moves an over-provisioned endpoint off its whole GPU, to CPU or to a MIG slice,
  and the real scheduler puts the new pod on the right kind of node: the reconciler
  (`tideserve run`, a subprocess) renders effective_resources(); the right-sizing pass
  runs in the test so it does not wait for the loop's interval.
- `tideserve recommend` prints the table from status.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from tideserve_testbed import fixtures, harness

from tideserve import kube as kube_api
from tideserve import settings as settings_mod
from tideserve.rightsizing import catalog, loop, quantities, signals

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLURAL = fixtures.CRD_NAME
TIMEOUT = 90.0


@pytest.fixture(autouse=True)
def client(kube: fixtures.Kube) -> None:
    """The operator's client (the right-sizing pass runs in the test) on the test bed."""
    kube_api.configure(str(kube.kubeconfig))


def right_size(namespace: str, prometheus_url: str) -> loop.Result:
    settings = settings_mod.Settings(prometheus_url=prometheus_url, watch_namespaces=(namespace,))
    prom = signals.Prometheus(prometheus_url)
    try:
        return loop.tick(settings, catalog.DEFAULT, prom, loop.Config())
    finally:
        prom.close()


def test_prometheus_answers_and_failures(prometheus: fixtures.Prometheus) -> None:
    # The shared client (tideserve.prometheus) under right-sizing's adapter: real answers,
    # and a refused query or an unreachable server read as "no data", not an exception.
    now = datetime.datetime.now(datetime.UTC).timestamp()
    prom = signals.Prometheus(prometheus.url)
    down = signals.Prometheus(f"http://127.0.0.1:{fixtures.free_port()}", timeout=5)
    try:
        [(_, value)] = prom.instant("vector(2)", now)
        assert value == 2.0
        [(_, points)] = prom.range("vector(3)", now - 60, now, 30)
        assert [v for _, v in points] == [3.0, 3.0, 3.0]
        assert prom.instant("sum(", now) == []  # a 400 from Prometheus
        assert down.instant("vector(1)", now) == []
        assert down.range("vector(1)", now - 60, now, 30) == []
    finally:
        prom.close()
        down.close()


def get(kube: fixtures.Kube, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kube.get_json(PLURAL, "-n", namespace, name)
    return result


def fit_condition(body: dict[str, Any]) -> dict[str, Any] | None:
    for c in body.get("status", {}).get("conditions") or []:
        if c["type"] == "ResourcesFit":
            return dict(c)
    return None


def test_a_request_no_node_can_satisfy_is_reported_at_once(
    kube: fixtures.Kube, prometheus: fixtures.Prometheus, namespace: str
) -> None:
    for name, resources in (
        ("huge", {"accelerator": "cpu", "cpu": "500", "memory": "4Gi"}),
        ("h100", {"accelerator": "gpu", "gpu": {"product": "NVIDIA-H100-80GB-HBM3"}}),
        ("fine", {"accelerator": "mig", "mig": {"profile": "1g.10gb"}}),
    ):
        kube.apply(fixtures.isvc(name, namespace, resources=resources))
    result = right_size(namespace, prometheus.url)
    assert {(namespace, n) for n in ("huge", "h100", "fine")} <= set(result.written)

    huge = fit_condition(get(kube, namespace, "huge"))
    assert huge is not None
    assert (huge["status"], huge["reason"]) == ("False", "NoNodeFits")
    assert "no node can run a replica needing cpu=500" in huge["message"]
    assert "cpu 16 < 500" in huge["message"]  # the CPU nodes
    assert "taint nvidia.com/gpu:NoSchedule" in huge["message"]  # the GPU nodes
    h100 = fit_condition(get(kube, namespace, "h100"))
    assert h100 is not None
    assert h100["status"] == "False"
    assert "label nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 missing" in h100["message"]
    fine = fit_condition(get(kube, namespace, "fine"))
    assert fine is not None
    assert (fine["status"], fine["reason"]) == ("True", "NodesFit")
    # The recommendation never asks for more than the largest node has.
    rec = get(kube, namespace, "huge")["status"]["recommendation"]
    assert rec["accelerator"] == "cpu"
    assert rec["cpu"] == "32"  # the catalog's per-replica limit (nodes hold up to 96)


@contextlib.contextmanager
def operator(kube: fixtures.Kube, namespace: str, tmp: pathlib.Path) -> Iterator[harness.Operator]:
    """The whole operator (reconciler, autoscaler and right-sizing loops)."""
    with harness.running(harness.Operator(kube.kubeconfig, namespace, tmp / "operator.log")) as op:
        yield op


def predictor_pods(kube: fixtures.Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kube.get_json(
        "pods", "-n", namespace, "-l", f"serving.tideserve.io/inferenceservice={name}"
    )["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def requests_of(pod: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in pod["spec"]["containers"]:
        out |= (c.get("resources") or {}).get("requests") or {}
        out |= (c.get("resources") or {}).get("limits") or {}
    return out


# Declared per-option profiles of an over-provisioned model: one whole A100 serves far
# more than it is asked for.
PROFILES = [
    {"option": "gpu:NVIDIA-A100-SXM4-80GB", "maxRequestsPerSecond": 2000, "p99LatencyMs": 5},
    {"option": "mig:1g.10gb", "maxRequestsPerSecond": 120, "p99LatencyMs": 12},
    {"option": "cpu-2", "maxRequestsPerSecond": 15, "p99LatencyMs": 60},
]


def gpu_node(kube: fixtures.Kube, node: str) -> bool:
    labels = kube.get_json("node", node)["metadata"].get("labels") or {}
    return labels.get("nvidia.com/gpu.present") == "true"


@pytest.mark.parametrize(
    ("latency_ms", "option", "node_prefix", "resource_key"),
    [
        # CPU meets 100 ms: 2 CPU replicas are cheapest. Any CPU-only node will do (other
        # tests may add their own).
        (100, "cpu", "", None),
        (20, "mig:1g.10gb", "gpu-a100-mig-", "nvidia.com/mig-1g.10gb"),  # CPU is too slow
    ],
)
def test_auto_moves_an_over_provisioned_endpoint_and_it_is_rescheduled(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    namespace: str,
    tmp_path: pathlib.Path,
    latency_ms: float,
    option: str,
    node_prefix: str,
    resource_key: str | None,
) -> None:
    name = "bert"

    def manifest(mode: str) -> dict[str, Any]:
        return fixtures.isvc(
            name,
            namespace,
            resources={
                "accelerator": "auto",
                "gpu": {"product": "NVIDIA-A100-SXM4-80GB"},
                "rightSizing": {"mode": mode, "peakRequestsPerSecond": 20, "profiles": PROFILES},
            },
            slo={"latencyMs": latency_ms},
            scaling={"minReplicas": 1, "maxReplicas": 4},
        )

    # First only recommend: the endpoint runs on the whole A100 it asked for.
    kube.apply(manifest("recommend"))
    with operator(kube, namespace, tmp_path) as op:

        def on_a100() -> dict[str, Any] | None:
            # The Deployment asks for the whole A100. (Its pod may wait for a free GPU:
            # the shared test cluster has one A100 node and other tests use it too.)
            found = kube.kubectl(
                "get", "deployment", f"{name}-predictor", "-n", namespace, "-o", "json",
                check=False,
            )  # fmt: skip
            if found.returncode != 0:
                return None
            pod = json.loads(found.stdout)["spec"]["template"]["spec"]
            wants = requests_of({"spec": pod})
            selector = pod.get("nodeSelector") or {}
            a100 = selector.get("nvidia.com/gpu.product") == "NVIDIA-A100-SXM4-80GB"
            return pod if a100 and "nvidia.com/gpu" in wants else None

        fixtures.eventually(on_a100, TIMEOUT, f"a Deployment on the whole A100\n{op.tail()}")

        # The operator's own loop makes a first pass at start-up; this one does not
        # wait for the loop's interval. Either may be the one that writes.
        right_size(namespace, prometheus.url)
        rec = get(kube, namespace, name)["status"]["recommendation"]
        assert rec["accelerator"] == option, rec
        assert rec["costPerHourRecommended"] < rec["costPerHourNow"]
        events = kube.events(namespace, name)
        assert any(e["reason"] == loop.EVENT_REASON for e in events), events
        assert on_a100()  # recommend mode changes nothing

        # Now let right-sizing apply it.
        kube.apply(manifest("auto"))

        def moved() -> list[dict[str, Any]] | None:
            pods = predictor_pods(kube, namespace, name)
            right = [
                p
                for p in pods
                if p["spec"].get("nodeName", "").startswith(node_prefix)
                and p["spec"].get("nodeName")
                and (resource_key is not None or not gpu_node(kube, p["spec"]["nodeName"]))
                and "nvidia.com/gpu" not in requests_of(p)
                and (resource_key is None or resource_key in requests_of(p))
            ]
            return right or None

        pods = fixtures.eventually(moved, TIMEOUT, f"a pod on a {option} node\n{op.tail()}")
        if option == "cpu":
            assert requests_of(pods[0])["cpu"] == "2"
        fixtures.eventually(
            lambda: get(kube, namespace, name)["status"].get("accelerator") == option or None,
            TIMEOUT,
            f"status.accelerator {option}",
        )

        # Another pass with nothing new changes nothing: no flapping back.
        again = right_size(namespace, prometheus.url)
        assert (namespace, name) not in again.events
        assert get(kube, namespace, name)["status"]["recommendation"]["accelerator"] == option


def test_recommend_prints_the_table(
    kube: fixtures.Kube, prometheus: fixtures.Prometheus, namespace: str
) -> None:
    kube.apply(
        fixtures.isvc(
            "idle",
            namespace,
            resources={
                "accelerator": "auto",
                "rightSizing": {"mode": "recommend", "peakRequestsPerSecond": 5,
                                "profiles": PROFILES},
            },
        )
    )  # fmt: skip
    right_size(namespace, prometheus.url)
    out = subprocess.run(
        [str(harness.TIDESERVE), "recommend", "-n", namespace,
         "--kubeconfig", str(kube.kubeconfig)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert f"{namespace}/idle" in out.stdout
    assert "MONTHLY NOW" in out.stdout
    assert "cpu 2/" in out.stdout
    assert "total per month" in out.stdout


def test_a_later_recommendation_is_applied_without_a_spec_change(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    namespace: str,
    tmp_path: pathlib.Path,
) -> None:
    # Auto from the start; only the A100 is profiled, so it stays there. Then a profiling
    # run reports that CPU meets the target (the measured-profiles annotation): the next
    # pass recommends CPU and the reconciler moves the endpoint, with no spec change.
    name = "later"
    kube.apply(
        fixtures.isvc(
            name,
            namespace,
            resources={
                "accelerator": "auto",
                "gpu": {"product": "NVIDIA-A100-SXM4-80GB"},
                "rightSizing": {"mode": "auto", "peakRequestsPerSecond": 20,
                                "profiles": PROFILES[:1]},
            },
            slo={"latencyMs": 100},
        )
    )  # fmt: skip
    with operator(kube, namespace, tmp_path) as op:
        right_size(namespace, prometheus.url)
        assert get(kube, namespace, name)["status"]["recommendation"]["accelerator"] == (
            "gpu:NVIDIA-A100-SXM4-80GB"
        )
        measured = [{"option": "cpu-2", "maxRequestsPerSecond": 15, "p99LatencyMs": 60}]
        kube.kubectl(
            "annotate", PLURAL, name, "-n", namespace, "--overwrite",
            f"{loop.PROFILES_ANNOTATION}={json.dumps(measured)}",
        )  # fmt: skip
        right_size(namespace, prometheus.url)
        assert get(kube, namespace, name)["status"]["recommendation"]["accelerator"] == "cpu"

        def on_cpu() -> list[dict[str, Any]] | None:
            pods = predictor_pods(kube, namespace, name)
            right = [
                p for p in pods
                if p["spec"].get("nodeName") and not gpu_node(kube, p["spec"]["nodeName"])
                and "nvidia.com/gpu" not in requests_of(p)
            ]  # fmt: skip
            return right or None

        fixtures.eventually(on_cpu, TIMEOUT, f"a pod on a CPU node\n{op.tail()}")


def test_an_oom_kill_on_a_pod_raises_the_memory_recommendation(
    kube: fixtures.Kube, prometheus: fixtures.Prometheus, namespace: str
) -> None:
    # The kill is read from the pod's status, as the kubelet reports it (kwok keeps what
    # we write there); no kube-state-metrics needed.
    name = "leaky"
    kube.apply(
        fixtures.isvc(name, namespace, resources={"accelerator": "cpu", "cpu": "1",
                                                  "memory": "1Gi",
                                                  "rightSizing": {"mode": "recommend"}})
    )  # fmt: skip
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-predictor-5d8f7-abcde",
                "namespace": namespace,
                "labels": {
                    "app.kubernetes.io/name": "tideserve-predictor",
                    "serving.tideserve.io/inferenceservice": name,
                },
            },
            "spec": {
                "nodeName": "cpu-0",
                "containers": [
                    {"name": "triton", "image": "triton:test",
                     "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                   "limits": {"memory": "1Gi"}}}
                ],
            },
        }
    )  # fmt: skip
    finished = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    status = {
        "containerStatuses": [
            {
                "name": "triton", "image": "triton:test", "imageID": "", "ready": True,
                "restartCount": 1, "started": True,
                "state": {"running": {"startedAt": finished}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                             "startedAt": finished, "finishedAt": finished}},
            }
        ]
    }  # fmt: skip
    fixtures.eventually(
        lambda: kube.kubectl(
            "get", "pod", f"{name}-predictor-5d8f7-abcde", "-n", namespace, check=False
        ).returncode == 0 or None,
        TIMEOUT, "the pod",
    )  # fmt: skip
    kube.kubectl(
        "patch", "pod", f"{name}-predictor-5d8f7-abcde", "-n", namespace,
        "--subresource=status", "--type=strategic", "-p", json.dumps({"status": status}),
    )  # fmt: skip
    right_size(namespace, prometheus.url)
    rec = get(kube, namespace, name)["status"]["recommendation"]
    # max(+20%, +100Mi) over the 1Gi it died at.
    assert quantities.parse(rec["memory"]) >= 1.2 * quantities.GIB
    assert "OOM-killed at 1Gi" in rec["reason"]


def as_left(
    kube: fixtures.Kube, namespace: str, name: str, recommended: str, oom_raised: bool
) -> None:
    """An auto-mode endpoint as the reconciler and an earlier pass left it: the A100 runs
    (status.accelerator), `recommended` is recommended, with oomRaised as given."""
    kube.apply(
        fixtures.isvc(name, namespace, resources={
            "accelerator": "auto", "gpu": {"product": "NVIDIA-A100-SXM4-80GB"},
            "cpu": "1", "memory": "1Gi",
            "rightSizing": {"mode": "auto", "profiling": {"enabled": False}},
        })
    )  # fmt: skip
    kube_api.apply_status(namespace, name, {"accelerator": A100, "replicas": 0})
    earlier = {
        "accelerator": recommended, "cpu": "1", "memory": "1Gi", "reason": "earlier pass",
        "generatedAt": "2026-12-01T00:00:00Z", "oomRaised": oom_raised,
    }  # fmt: skip
    kube_api.apply_status(namespace, name, {"recommendation": earlier}, manager=loop.FIELD_MANAGER)


A100 = "gpu:NVIDIA-A100-SXM4-80GB"


def test_the_option_in_use_is_what_status_says_runs_not_the_last_recommendation(
    kube: fixtures.Kube, prometheus: fixtures.Prometheus, namespace: str
) -> None:
    as_left(kube, namespace, "unmoved", "gpu:NVIDIA-L4", oom_raised=False)
    result = right_size(namespace, prometheus.url)
    # The figures of what runs are the A100's: the unapplied L4 is credited with nothing.
    assert result.advice[(namespace, "unmoved")].current == A100


def test_an_unchanged_recommendation_loses_a_stale_oom_flag(
    kube: fixtures.Kube, prometheus: fixtures.Prometheus, namespace: str
) -> None:
    # The same recommendation again, but no kill this pass: oomRaised (which lets auto mode
    # apply memory mid-rollout) must not stay from the earlier one.
    as_left(kube, namespace, "healed", A100, oom_raised=True)
    result = right_size(namespace, prometheus.url)
    assert not result.advice[(namespace, "healed")].changed
    rec = get(kube, namespace, "healed")["status"]["recommendation"]
    assert rec["reason"] == "earlier pass" and "oomRaised" not in rec, rec
