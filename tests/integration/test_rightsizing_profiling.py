"""Automatic profiling on the test bed: the right-sizing pass starts a shadow replica for
a CPU candidate on the real API server (the real scheduler puts it on a kwok CPU node),
the probe measures a real Triton over its HTTP protocol, status.profiles records the result
with its time, the shadow is deleted, and the next recommendation cites the measurement.

Not end to end: kwok pods run no container, so the probe is pointed at a real Triton on
loopback standing in for the shadow pod (whose kwok IP answers nothing); everything else
is the operator's own code against the real components.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable

import pytest
from tideserve_testbed import fixtures

from tideserve import kube as kube_api
from tideserve import settings as settings_mod
from tideserve.api import resource
from tideserve.rightsizing import accelerators, catalog, loop, probing, profiling, shadow, signals

pytestmark = pytest.mark.integration

TIMEOUT = 90.0
PLURAL = fixtures.CRD_NAME


def right_size(namespace: str, prometheus_url: str) -> loop.Result:
    settings = settings_mod.Settings(prometheus_url=prometheus_url, watch_namespaces=(namespace,))
    prom = signals.Prometheus(prometheus_url)
    try:
        return loop.tick(settings, catalog.DEFAULT, prom, loop.Config())
    finally:
        prom.close()


def test_a_cpu_candidate_is_measured_by_a_shadow_replica_and_cited(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    namespace: str,
    start_triton: Callable[..., fixtures.Triton],
) -> None:
    kube_api.configure(str(kube.kubeconfig))
    name = "tiny-ep"
    kube.apply(
        fixtures.isvc(
            name,
            namespace,
            model={"name": "tiny", "storageUri": "s3://models/tiny"},
            resources={
                "accelerator": "auto",
                "gpu": {"product": "NVIDIA-A100-SXM4-80GB"},
                "cpu": "2",
                "memory": "4Gi",
                "rightSizing": {
                    "mode": "recommend",
                    "peakRequestsPerSecond": 5,
                    "profiling": {"enabled": True, "probeSeconds": 2},
                },
            },
            slo={"latencyMs": 500},
            scaling={"minReplicas": 1, "maxReplicas": 4},
        )
    )
    # Pass 1: nothing is known of CPU, so a shadow replica is started for cpu-4.
    first = right_size(namespace, prometheus.url)
    assert (namespace, name) in first.advice
    probe_name = shadow.name_of(name)
    deployment = fixtures.eventually(
        lambda: kube.get_json("deployment", "-n", namespace, probe_name),
        TIMEOUT,
        "the shadow Deployment",
    )
    pod_spec = deployment["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "4"
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert (
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "false"
    )
    events = kube.events(namespace, name)
    assert any(e["reason"] == probing.EVENT_REASON and "cpu-4" in e["message"] for e in events)

    # The real scheduler places it on a CPU node and kwok reports it Ready.
    key = (namespace, name)

    def ready_shadow() -> probing.Shadow | None:
        seen = probing.shadows_found((namespace,)).get(key)
        return seen if seen is not None and seen.address else None

    found = fixtures.eventually(ready_shadow, TIMEOUT, "a Ready shadow pod")
    assert found.option == "cpu-4"

    # Pass 2 (its profiling part): the probe measures a real Triton.
    server = start_triton(delay_ms=20)
    probed: list[str] = []

    def probe(
        address: str, model: str, option: str, slo: float | None, seconds: float
    ) -> accelerators.Profile | None:
        probed.append(address)
        profile, _ = profiling.probe(
            server.http_address, model, option, slo, concurrency=(1, 2), seconds=seconds
        )
        return profile

    body = kube.get_json(PLURAL, "-n", namespace, name)
    isvc = resource.InferenceService.model_validate(body)
    actions = probing.run(
        (namespace,), {key: body}, {key: isvc}, first.advice, "triton:test",
        datetime.datetime.now(datetime.UTC), probe=probe,
    )  # fmt: skip
    assert [k for k, _ in actions.measure] == [key]
    assert probed == [found.address]

    status = kube.get_json(PLURAL, "-n", namespace, name)["status"]
    [measured] = status["profiles"]
    assert measured["option"] == "cpu-4"
    assert measured["maxRequestsPerSecond"] > 5  # the tiny model at 20 ms per batch
    assert measured["p99LatencyMs"] <= 500
    assert datetime.datetime.fromisoformat(measured["measuredAt"].replace("Z", "+00:00"))
    fixtures.eventually(
        lambda: (
            kube.kubectl("get", "deployment", "-n", namespace, probe_name, check=False).returncode
            != 0
            or None
        ),
        TIMEOUT,
        "the shadow Deployment deleted",
    )

    # Pass 3: the recommendation moves to CPU and cites the measurement.
    right_size(namespace, prometheus.url)
    rec = kube.get_json(PLURAL, "-n", namespace, name)["status"]["recommendation"]
    assert rec["accelerator"] == "cpu"
    assert "cpu (measured" in rec["reason"], rec["reason"]
    assert json.dumps(status["profiles"])  # kept by the right-sizing pass's own apply
    assert kube.get_json(PLURAL, "-n", namespace, name)["status"]["profiles"] == status["profiles"]


def test_profiling_is_on_by_default_in_auto_mode_only_and_never_for_the_option_in_use(
    kube: fixtures.Kube, prometheus: fixtures.Prometheus, namespace: str
) -> None:
    # No `profiling` field anywhere: the API server's CRD must leave `enabled` unset (an old
    # stored default of false would switch auto mode's profiling off), and the mode decides.
    kube_api.configure(str(kube.kubeconfig))

    def endpoint(name: str, mode: str, accelerator: str) -> None:
        on_gpu = accelerator in ("auto", "gpu")
        gpu = {"gpu": {"product": "NVIDIA-A100-SXM4-80GB"}} if on_gpu else {}
        kube.apply(
            fixtures.isvc(
                name,
                namespace,
                model={"name": "tiny", "storageUri": "s3://models/tiny"},
                resources={
                    "accelerator": accelerator,
                    **gpu,
                    "cpu": "1",
                    "memory": "1Gi",
                    "rightSizing": {"mode": mode, "peakRequestsPerSecond": 5},
                },
                slo={"latencyMs": 500},
                scaling={"minReplicas": 1, "maxReplicas": 4},
            )
        )

    endpoint("auto-gpu", "auto", "auto")
    endpoint("recommend-gpu", "recommend", "auto")
    endpoint("auto-cpu", "auto", "cpu")
    endpoint("auto-pinned", "auto", "gpu")
    stored = kube.get_json(PLURAL, "-n", namespace, "auto-gpu")["spec"]["resources"]
    assert "enabled" not in stored["rightSizing"].get("profiling", {})

    result = right_size(namespace, prometheus.url)
    names = ("auto-gpu", "recommend-gpu", "auto-cpu", "auto-pinned")
    assert {(namespace, n) for n in names} <= set(result.advice)
    found = kube.get_json("deployments", "-n", namespace, "-l", shadow.LABEL_SELECTOR)["items"]
    shadows = {d["metadata"]["labels"][shadow.PROBE_OF_LABEL]: d for d in found}
    # Auto on an A100 with nothing known of CPU: measure it before moving there. Recommend
    # starts nothing it was not asked for; an endpoint already on CPU gets no CPU shadow;
    # auto with the accelerator pinned never moves the hardware, so nothing is measured.
    assert set(shadows) == {"auto-gpu"}
    made = shadow.started(shadows["auto-gpu"])
    assert made is not None and made[0] == "cpu-4"
    events = kube.events(namespace, "auto-gpu")
    assert any(e["reason"] == probing.EVENT_REASON for e in events)
