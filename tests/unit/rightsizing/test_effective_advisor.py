"""effective_resources (what the reconciler renders) and the per-endpoint advice."""

from __future__ import annotations

import datetime

import pytest

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.rightsizing import advisor, catalog, effective, fit, quantities, recommender

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 12, tzinfo=datetime.UTC)
T = NOW.timestamp()
MIB = quantities.MIB


def spec(mode: str = "auto", accelerator: str = "auto", **resources: object):
    return spec_api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "storageUri": "s3://b/m"},
            "resources": {"accelerator": accelerator, "rightSizing": {"mode": mode}, **resources},
            "slo": {"latencyMs": 100},
        }
    )


def rec(accelerator: str = "cpu", cpu: str = "500m", memory: str = "1Gi"):
    return status_api.Recommendation(accelerator=accelerator, cpu=cpu, memory=memory)


def status(replicas: int = 2, ready: int = 2, recommendation=None, progressing: bool = False):
    conditions = []
    if progressing:
        conditions.append(
            status_api.Condition(
                type="Progressing", status="True", reason="Rollout", last_transition_time=NOW
            )
        )
    return status_api.InferenceServiceStatus(
        replicas=replicas,
        ready_replicas=ready,
        recommendation=recommendation,
        conditions=conditions,
    )


def test_off_and_recommend_render_the_spec() -> None:
    for mode in ("off", "recommend"):
        s = spec(mode)
        assert effective.effective_resources(s, status(recommendation=rec())) is s.resources


def test_auto_applies_hardware_and_requests() -> None:
    out = effective.effective_resources(spec(), status(recommendation=rec()))
    assert out.accelerator is spec_api.Accelerator.CPU
    assert (out.cpu, out.memory, out.gpu, out.mig) == ("500m", "1Gi", None, None)
    mig = effective.effective_resources(spec(), status(recommendation=rec("mig:1g.10gb")))
    assert mig.accelerator is spec_api.Accelerator.MIG
    assert mig.mig == spec_api.MigSpec(profile="1g.10gb")
    assert mig.right_sizing.mode is spec_api.RightSizingMode.AUTO


def test_a_pinned_accelerator_only_gets_requests() -> None:
    s = spec(accelerator="gpu", gpu={"product": "NVIDIA-L4"})
    out = effective.effective_resources(s, status(recommendation=rec("cpu")))
    assert out.accelerator is spec_api.Accelerator.GPU
    assert out.gpu == spec_api.GpuSpec(product="NVIDIA-L4")
    assert out.cpu == "500m"


def test_mid_rollout_keeps_what_runs() -> None:
    current = spec().resources
    moving = status(replicas=3, ready=2, recommendation=rec())
    assert effective.effective_resources(spec(), moving, current) is current
    progressing = status(progressing=True, recommendation=rec())
    assert effective.effective_resources(spec(), progressing, current) is current


def test_at_zero_applies_at_once_and_settled_applies_material_changes_only() -> None:
    running = effective.apply(spec().resources, rec(cpu="500m"))
    zero = status(replicas=0, ready=0, recommendation=rec(cpu="530m"))
    assert effective.effective_resources(spec(), zero, running).cpu == "530m"
    settled = status(recommendation=rec(cpu="530m"))  # +6%: within hysteresis
    assert effective.effective_resources(spec(), settled, running) is running
    bigger = status(recommendation=rec(cpu="800m"))
    assert effective.effective_resources(spec(), bigger, running).cpu == "800m"


def series(value: float, n: int = 100) -> list[tuple[float, float]]:
    return [(T - 60 * i, value) for i in range(n)]


CPU_NODE = fit.Node("cpu-0", {"cpu": 8, "memory": 32 * 2**30})
# Auto mode at 20 rps with two declared profiles: two CPU-2 replicas or one L4.
AUTO_CPU_OR_L4 = {
    "mode": "auto",
    "peakRequestsPerSecond": 20,
    "profiles": [
        {"option": "cpu-2", "maxRequestsPerSecond": 15, "p99LatencyMs": 40},
        {"option": "gpu:NVIDIA-L4", "maxRequestsPerSecond": 400, "p99LatencyMs": 10},
    ],
}


def test_advice_moves_an_idle_gpu_endpoint_to_a_declared_cpu_profile() -> None:
    s = spec(
        accelerator="auto",
        rightSizing=AUTO_CPU_OR_L4,
    )
    advice = advisor.advise(
        s,
        status(replicas=1, ready=1),
        advisor.Observation(),
        catalog.DEFAULT,
        nodes=[CPU_NODE],
        now=NOW,
    )
    assert advice.recommendation is not None
    assert advice.recommendation.accelerator == "cpu"
    assert advice.recommendation.cpu == "2"
    assert advice.replicas_recommended == 2
    assert advice.changed
    assert "cpu (declared, 15 rps/replica): 2 x" in advice.recommendation.reason
    assert advice.recommendation.cost_per_hour_recommended < advice.recommendation.cost_per_hour_now


def test_advice_sizes_cpu_and_memory_from_usage_and_is_stable() -> None:
    s = spec(accelerator="cpu", mode="recommend", cpu="4", memory="8Gi")
    usage = recommender.Usage(cpu_cores=series(0.5), memory_bytes=series(700 * MIB))
    first = advisor.advise(
        s, status(), advisor.Observation(usage=usage), catalog.DEFAULT, nodes=[CPU_NODE], now=NOW
    )
    assert first.recommendation is not None
    assert first.recommendation.accelerator == "cpu"
    assert quantities.parse(first.recommendation.cpu or "0") == pytest.approx(0.575, rel=0.06)
    # VPA's p90 + 15% is below the floor: the window's highest daily peak + 40%.
    assert quantities.parse(first.recommendation.memory or "0") == pytest.approx(
        700 * MIB * (1 + recommender.FLOOR_MARGIN), rel=0.06
    )
    usage2 = recommender.Usage(cpu_cores=series(0.52), memory_bytes=series(690 * MIB))
    again = advisor.advise(
        s,
        status(recommendation=first.recommendation),
        advisor.Observation(usage=usage2),
        catalog.DEFAULT,
        nodes=[CPU_NODE],
        now=NOW + datetime.timedelta(minutes=5),
    )
    assert not again.changed
    assert again.recommendation == first.recommendation


def test_off_mode_gives_no_recommendation_but_still_cost() -> None:
    obs = advisor.Observation(replica_seconds=2 * 3600, requests=36_000)
    s = spec(mode="off", accelerator="cpu", cpu="2", memory="4Gi")
    advice = advisor.advise(s, status(), obs, catalog.DEFAULT, nodes=[], now=NOW)
    assert advice.recommendation is None
    price = 2 * catalog.DEFAULT.cpu.cost_per_core_hour + 4 * catalog.DEFAULT.cpu.cost_per_gib_hour
    assert advice.cost.per_hour == pytest.approx(2 * price, abs=1e-4)
    assert advice.cost.per_1k_inferences == pytest.approx(2 * price / 36, rel=5e-3)


def test_advice_reports_a_request_no_node_can_satisfy() -> None:
    s = spec(mode="recommend", accelerator="mig", mig={"profile": "3g.40gb"})
    advice = advisor.advise(
        s, status(), advisor.Observation(), catalog.DEFAULT, nodes=[CPU_NODE], now=NOW
    )
    assert advice.fit is not None
    assert not advice.fit.fits
    assert "nvidia.com/mig-3g.40gb" in advice.fit.message


def test_a_pinned_accelerator_is_sized_where_it_is_and_the_cheaper_option_only_named() -> None:
    s = spec(
        mode="auto",
        accelerator="gpu",
        gpu={"product": "NVIDIA-L4"},
        rightSizing=AUTO_CPU_OR_L4,
    )
    usage = recommender.Usage(cpu_cores=series(0.3), memory_bytes=series(900 * MIB))
    advice = advisor.advise(
        s, status(replicas=1, ready=1), advisor.Observation(usage=usage), catalog.DEFAULT,
        nodes=[CPU_NODE], now=NOW,
    )  # fmt: skip
    rec = advice.recommendation
    assert rec is not None
    assert rec.accelerator == "gpu:NVIDIA-L4"
    assert quantities.parse(rec.cpu or "0") < 0.5  # sized from usage, not the CPU profile
    assert "cheaper: cpu (declared" in rec.reason
    assert "accelerator: auto" in rec.reason


def test_an_oom_raise_is_applied_mid_rollout() -> None:
    # The killed replica never becomes Ready, so the rollout never settles: waiting for it
    # would keep the limit it dies at for good.
    running = effective.apply(spec().resources, rec(memory="1Gi"))
    raised = rec(memory="1536Mi").model_copy(update={"oom_raised": True})
    crashing = status(replicas=2, ready=1, recommendation=raised)
    assert effective.effective_resources(spec(), crashing, running).memory == "1536Mi"
    progressing = status(progressing=True, recommendation=raised)
    assert effective.effective_resources(spec(), progressing, running).memory == "1536Mi"


def test_mid_rollout_a_raise_without_an_oom_waits() -> None:
    running = effective.apply(spec().resources, rec(memory="1Gi"))
    crashing = status(replicas=2, ready=1, recommendation=rec(memory="1536Mi"))
    assert effective.effective_resources(spec(), crashing, running) is running


def test_an_oom_flag_never_lowers_memory_mid_rollout() -> None:
    running = effective.apply(spec().resources, rec(memory="2Gi"))
    lower = rec(memory="1Gi").model_copy(update={"oom_raised": True})
    crashing = status(replicas=2, ready=1, recommendation=lower)
    assert effective.effective_resources(spec(), crashing, running) is running


def test_advice_marks_memory_raised_by_an_oom_kill() -> None:
    s = spec(accelerator="cpu", mode="auto", cpu="1", memory="1Gi")
    usage = recommender.Usage(
        cpu_cores=series(0.5),
        memory_bytes=series(700 * MIB),
        ooms=(recommender.Oom(T - 120, 1024 * MIB),),
    )
    quiet = recommender.Usage(cpu_cores=series(0.5), memory_bytes=series(700 * MIB))
    killed = advisor.advise(
        s, status(), advisor.Observation(usage=usage), catalog.DEFAULT, nodes=[], now=NOW
    )
    calm = advisor.advise(
        s, status(), advisor.Observation(usage=quiet), catalog.DEFAULT, nodes=[], now=NOW
    )
    assert killed.recommendation is not None and calm.recommendation is not None
    assert killed.recommendation.oom_raised is True
    assert quantities.parse(killed.recommendation.memory or "0") >= 1.2 * 1024 * MIB
    assert calm.recommendation.oom_raised is None
    assert "oomRaised" in killed.recommendation.dump()


def test_an_oom_raise_mid_rollout_applies_only_the_memory() -> None:
    # The recommendation also moves hardware and CPU: those wait for a settled rollout.
    running = effective.apply(spec().resources, rec("cpu", cpu="500m", memory="1Gi"))
    raised = rec("gpu:NVIDIA-L4", cpu="2", memory="1536Mi").model_copy(update={"oom_raised": True})
    crashing = status(replicas=2, ready=1, recommendation=raised)
    out = effective.effective_resources(spec(), crashing, running)
    assert out.memory == "1536Mi"
    assert (out.accelerator, out.cpu, out.gpu) == (spec_api.Accelerator.CPU, "500m", None)


def test_an_unchanged_recommendation_drops_a_stale_oom_flag() -> None:
    s = spec(accelerator="cpu", mode="auto", cpu="1", memory="1Gi")
    usage = recommender.Usage(
        cpu_cores=series(0.5),
        memory_bytes=series(700 * MIB),
        ooms=(recommender.Oom(T - 120, 1024 * MIB),),
    )
    killed = advisor.advise(
        s, status(), advisor.Observation(usage=usage), catalog.DEFAULT, nodes=[], now=NOW
    )
    assert killed.recommendation is not None and killed.recommendation.oom_raised is True
    # Next pass: the same figures, without an OOM raise this time (the kill has aged out).
    calm = recommender.Usage(
        cpu_cores=series(0.5),
        memory_bytes=series(float(quantities.parse(killed.recommendation.memory or "0")) / 1.5),
    )
    later = advisor.advise(
        s,
        status(recommendation=killed.recommendation),
        advisor.Observation(usage=calm),
        catalog.DEFAULT,
        nodes=[],
        now=NOW,
    )
    assert later.recommendation is not None
    assert not later.changed
    assert later.recommendation.memory == killed.recommendation.memory
    assert later.recommendation.oom_raised is None
