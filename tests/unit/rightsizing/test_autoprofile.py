"""Automatic profiling: what to measure, the shadow replica, and one pass's decisions."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import pytest

from tideserve.api import resource
from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.render import names, triton_config
from tideserve.rightsizing import accelerators, advisor, autoprofile, catalog, probing, shadow

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 20, 12, tzinfo=datetime.UTC)
A100 = "gpu:NVIDIA-A100-SXM4-80GB"


def isvc(
    enabled: bool | None = True,
    profiles: list[dict[str, object]] | None = None,
    mode: str = "recommend",
    **rs: object,
) -> resource.InferenceService:
    profiling = {} if enabled is None else {"enabled": enabled}
    return resource.InferenceService.model_validate(
        {
            "apiVersion": resource.API_VERSION,
            "kind": resource.KIND,
            "metadata": {"name": "m", "namespace": "ns", "uid": "u1"},
            "spec": {
                "model": {"name": "m", "storageUri": "s3://b/m"},
                "resources": {
                    "accelerator": "auto",
                    "gpu": {"product": "NVIDIA-A100-SXM4-80GB"},
                    "cpu": "2",
                    "memory": "4Gi",
                    "rightSizing": {"mode": mode, "profiling": profiling, **rs},
                },
                "slo": {"latencyMs": 50},
            },
            "status": {"accelerator": A100, "replicas": 1, "profiles": profiles or []},
        }
    )


def next_probe(
    spec: spec_api.InferenceServiceSpec,
    status: status_api.InferenceServiceStatus | None,
    candidates: Sequence[accelerators.Candidate],
    beat: float | None,
    gpu_memory: float | None,
    now: datetime.datetime,
    current: str = A100,
    peak_rps: float | None = 50.0,
) -> autoprofile.Probe | None:
    """The planner for an endpoint on the A100 that has served 50 rps at peak."""
    return autoprofile.next_probe(
        spec, status, candidates, beat, gpu_memory, now, current=current, peak_rps=peak_rps
    )


def advice_for(item: resource.InferenceService, gpu_memory: float = 2 * 2**30) -> advisor.Advice:
    obs = advisor.Observation(
        peak_rps=50.0,
        rps_per_replica=50.0,
        gpu_utilization=0.2,
        latency_ms=10.0,
        usage=advisor.recommender.Usage(
            gpu_memory_bytes=tuple((float(t), gpu_memory / 1.2) for t in range(5))
        ),
    )
    return advisor.advise(item.spec, item.status, obs, catalog.DEFAULT, nodes=[], now=NOW)


def test_the_cheapest_estimated_candidate_is_measured_first() -> None:
    item = isvc()
    advice = advice_for(item)
    probe = next_probe(
        item.spec, item.status, advice.candidates, advice.current_cost_per_hour, 2 * 2**30, NOW
    )
    assert probe is not None
    estimated = sorted(
        (c for c in advice.candidates if c.profile.source is accelerators.Source.ESTIMATED),
        key=lambda c: c.cost_per_hour,
    )
    assert probe.option == estimated[0].option.name


def test_nothing_is_measured_unless_enabled() -> None:
    item = isvc(enabled=False)
    advice = advice_for(item)
    assert next_probe(item.spec, item.status, advice.candidates, None, 1.0, NOW) is None


def measured(option: str, rps: float, days_ago: float = 1) -> dict[str, object]:
    when = NOW - datetime.timedelta(days=days_ago)
    return {
        "option": option,
        "maxRequestsPerSecond": rps,
        "p99LatencyMs": 20,
        "measuredAt": when.isoformat(),
    }


def test_a_recent_measurement_is_not_repeated_and_becomes_a_measured_profile() -> None:
    first = isvc()
    option = next_probe(
        first.spec, first.status, advice_for(first).candidates, None, 2 * 2**30, NOW
    )
    assert option is not None
    again = isvc(profiles=[measured(option.option, 0.0)])  # never met the SLO
    advice = advice_for(again)
    nxt = next_probe(again.spec, again.status, advice.candidates, None, 2 * 2**30, NOW)
    assert nxt is None or nxt.option != option.option
    used = isvc(profiles=[measured("cpu-4", 80.0)])
    profiles = autoprofile.measured(used.status)
    assert profiles == [
        accelerators.Profile("cpu-4", 80.0, 20.0, accelerators.Source.MEASURED, 4.0)
    ]
    # ...and the recommendation cites it.
    rec = advice_for(used).recommendation
    assert rec is not None and rec.accelerator == "cpu" and "measured" in (rec.reason or "")


def test_a_stale_measurement_is_repeated_and_the_budget_caps_the_count() -> None:
    item = isvc(profiles=[measured("mig:1g.10gb", 10.0, days_ago=8)])
    advice = advice_for(item)
    assert next_probe(item.spec, item.status, advice.candidates, None, 2 * 2**30, NOW)
    full = isvc(
        profiles=[measured(o, 1.0) for o in ("mig:1g.10gb", "gpu:Tesla-T4", "cpu-4")],
    )
    advice = advice_for(full)
    assert next_probe(full.spec, full.status, advice.candidates, None, 2 * 2**30, NOW) is None


def test_cpu_is_measured_only_for_a_model_that_fits_in_ram() -> None:
    item = isvc()
    assert next_probe(item.spec, item.status, (), None, 2 * 2**30, NOW) == autoprofile.Probe(
        "cpu-4", "CPU has no profile and is never estimated"
    )
    assert next_probe(item.spec, item.status, (), None, 40 * 2**30, NOW) is None
    assert next_probe(item.spec, item.status, (), None, None, NOW) is not None


def test_the_cpu_candidate_has_the_cores_the_spec_asks_for() -> None:
    item = isvc(profiling={"enabled": True, "cpuCores": 1})
    probe = next_probe(item.spec, item.status, (), None, None, NOW)
    assert probe is not None and probe.option == "cpu-1"
    owner = names.Owner("ns", "m", "u1")
    manifest = shadow.build(owner, item.spec, probe.option, "2", "4Gi", "triton:test", NOW)
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == "1"
    # A measured cpu-1 is the CPU option measured: nothing more to probe on CPU.
    done = isvc(profiling={"enabled": True, "cpuCores": 1}, profiles=[measured("cpu-1", 9.0)])
    assert next_probe(done.spec, done.status, (), None, None, NOW) is None


def test_record_keeps_the_newest_per_option_and_a_failure_as_zero() -> None:
    item = isvc(profiles=[measured("cpu-4", 5.0, days_ago=3)])
    out = autoprofile.record(item.status, None, "cpu-4", NOW)
    assert [(p.option, p.max_requests_per_second, p.measured_at) for p in out] == [
        ("cpu-4", 0.0, NOW)
    ]
    assert autoprofile.measured(status_api.InferenceServiceStatus(profiles=out)) == []


def test_the_shadow_serves_no_traffic_and_is_not_scraped() -> None:
    item = isvc()
    owner = names.Owner("ns", "m", "u1")
    manifest = shadow.build(owner, item.spec, "cpu-4", "2", "4Gi", "triton:test", NOW)
    assert manifest["metadata"]["name"] == "m-probe"
    assert manifest["spec"]["replicas"] == 1
    pod = manifest["spec"]["template"]
    selector = names.selector_labels("m")
    # The predictor Service selects these labels: the shadow must not carry them all.
    assert not selector.items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "false"
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u1"
    container = pod["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "4"
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert shadow.started(manifest) == ("cpu-4", NOW)


def test_a_cpu_shadow_mounts_its_own_config_override_rendered_for_cpu() -> None:
    # On CPU the instance kind must be overridden; the endpoint's own ConfigMap (for its
    # GPU, or none at all) is not the shadow's: a pod mounting a missing one never starts.
    item = isvc()
    owner = names.Owner("ns", "m", "u1")
    manifest = shadow.build(owner, item.spec, "cpu-4", "2", "4Gi", "triton:test", NOW)
    config = shadow.config_map(owner, item.spec, "cpu-4", "2", "4Gi")
    assert config is not None
    assert config["metadata"]["name"] == shadow.config_name_of("m") == "m-config-probe"
    # Not the ConfigMap of an endpoint called "m-probe" in the same namespace.
    assert shadow.config_name_of("m") != names.config(shadow.name_of("m"))
    assert config["metadata"]["labels"] == manifest["metadata"]["labels"]
    assert config["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert "kind: KIND_CPU" in config["data"][triton_config.OVERRIDES_KEY]
    volumes = manifest["spec"]["template"]["spec"]["volumes"]
    [mounted] = [v for v in volumes if v["name"] == triton_config.CONFIG_VOLUME]
    assert mounted["configMap"]["name"] == "m-config-probe"
    # A GPU candidate of a model without overrides needs none.
    assert shadow.config_map(owner, item.spec, "gpu:Tesla-T4", "2", "4Gi") is None


def test_a_gpu_shadow_asks_for_the_candidate_gpu() -> None:
    item = isvc()
    manifest = shadow.build(
        names.Owner("ns", "m", "u1"), item.spec, "mig:1g.10gb", "2", "4Gi", "t", NOW
    )
    limits = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits.get("nvidia.com/mig-1g.10gb") in ("1", 1)


KEY = ("ns", "m")


def test_decide_starts_within_the_cluster_limit_and_measures_ready_shadows() -> None:
    items = {(f"ns{i}", "m"): isvc() for i in range(4)}
    advices = {k: advice_for(v) for k, v in items.items()}
    ready = probing.Shadow("cpu-4", NOW - datetime.timedelta(minutes=2), "10.0.0.5:8000")
    actions = probing.decide(items, advices, {("ns0", "m"): ready}, NOW)
    assert actions.measure == ((("ns0", "m"), ready),)
    # One slot is free while ns0's probe finishes this pass; the limit is 2 at once.
    assert [k for k, _ in actions.start] == [("ns1", "m"), ("ns2", "m")]


def test_decide_gives_up_after_the_deadline_and_removes_orphans() -> None:
    items = {KEY: isvc()}
    old = probing.Shadow("cpu-4", NOW - datetime.timedelta(minutes=30), None)
    actions = probing.decide(
        items, {KEY: advice_for(items[KEY])}, {KEY: old, ("gone", "x"): old}, NOW
    )
    assert actions.expire == ((KEY, old),)
    assert actions.orphans == (("gone", "x"),)
    assert actions.start == ()  # this endpoint's shadow is still being removed


def advice_seen(item: resource.InferenceService, latency_ms: float) -> advisor.Advice:
    """One A100 replica at 50 rps, 5% busy, with this p99 (the spec's SLO is 50 ms)."""
    obs = advisor.Observation(
        peak_rps=50.0,
        rps_per_replica=50.0,
        gpu_utilization=0.05,
        latency_ms=latency_ms,
        usage=advisor.recommender.Usage(
            gpu_memory_bytes=tuple((float(t), 2 * 2**30 / 1.2) for t in range(5))
        ),
    )
    return advisor.advise(item.spec, item.status, obs, catalog.DEFAULT, nodes=[], now=NOW)


def probe_for(item: resource.InferenceService, advice: advisor.Advice) -> autoprofile.Probe | None:
    return next_probe(
        item.spec, item.status, advice.candidates, advice.current_cost_per_hour, 2 * 2**30, NOW
    )


def test_a_guess_estimated_far_over_the_slo_is_measured_after_the_near_ones() -> None:
    item = isvc()
    advice = advice_seen(item, latency_ms=30.0)  # T4 estimated at 150 ms, L4 at 75 ms
    by_name = {c.option.name: c for c in advice.candidates}
    t4, l4 = by_name["gpu:Tesla-T4"], by_name["gpu:NVIDIA-L4"]
    assert t4.cost_per_hour < l4.cost_per_hour
    assert t4.profile.p99_latency_ms is not None and l4.profile.p99_latency_ms is not None
    assert t4.profile.p99_latency_ms > 50 * autoprofile.LATENCY_SLACK
    assert l4.profile.p99_latency_ms <= 50 * autoprofile.LATENCY_SLACK
    probe = probe_for(item, advice)
    assert probe is not None and probe.option == "gpu:NVIDIA-L4"


def test_a_far_off_guess_is_still_measured_when_no_near_one_is_left() -> None:
    item = isvc(
        profiles=[
            {"option": o, "maxRequestsPerSecond": 0, "measuredAt": NOW.isoformat()}
            for o in ("gpu:NVIDIA-L4", "mig:3g.40gb")
        ]
    )
    probe = probe_for(item, advice_seen(item, latency_ms=30.0))
    assert probe is not None and probe.option == "gpu:Tesla-T4"


def test_when_the_current_option_misses_the_slo_a_guess_must_beat_the_best_that_meets() -> None:
    item = isvc()
    advice = advice_seen(item, latency_ms=60.0)  # the A100 misses 50 ms; an H100 would not
    assert advice.recommendation is not None
    best = next(c for c in advice.candidates if c.option.name == "gpu:NVIDIA-H100-80GB-HBM3")
    assert best.meets and advice.current_cost_per_hour == best.cost_per_hour
    # A full A100 slice costs what the A100 does: worth measuring against the H100, and
    # measured before the (estimated) H100 is moved to.
    probe = probe_for(item, advice)
    assert probe is not None and probe.option == "mig:7g.80gb"
    assert advice.recommendation.accelerator == A100
    assert "measuring mig:7g.80gb first" in advice.recommendation.reason


def test_when_no_option_meets_the_slo_every_guess_is_worth_measuring() -> None:
    item = isvc()
    advice = advice_seen(item, latency_ms=600.0)
    assert advice.current_cost_per_hour is None
    probe = probe_for(item, advice)
    assert probe is not None and probe.option == "gpu:Tesla-T4"  # cheapest, all far off


def test_profiling_follows_the_mode_unless_set() -> None:
    def enabled(mode: str, value: bool | None) -> bool:
        resources = isvc(enabled=value, mode=mode).spec.resources
        return resources.right_sizing.profiling_enabled(resources.accelerator)

    # Unset: on where tideserve moves hardware itself, off where it only recommends.
    assert enabled("auto", None) is True
    assert enabled("recommend", None) is False
    # Set: it wins over the mode, except that mode off does nothing at all.
    assert enabled("auto", False) is False
    assert enabled("recommend", True) is True
    assert enabled("off", True) is False
    unset = isvc(enabled=None, mode="auto").spec.resources.right_sizing.profiling
    assert unset.enabled is None and "enabled" not in unset.dump()


def test_auto_mode_measures_by_default_and_recommend_mode_does_not() -> None:
    auto, recommend = isvc(enabled=None, mode="auto"), isvc(enabled=None, mode="recommend")
    assert next_probe(auto.spec, auto.status, advice_for(auto).candidates, None, 1.0, NOW)
    assert next_probe(recommend.spec, recommend.status, (), None, 1.0, NOW) is None
    items = {("a", "m"): auto, ("r", "m"): recommend}
    actions = probing.decide(items, {k: advice_for(v) for k, v in items.items()}, {}, NOW)
    assert [k for k, _ in actions.start] == [("a", "m")]


def test_no_shadow_for_an_endpoint_with_no_load_to_size_for() -> None:
    item = isvc()
    quiet = advisor.Observation()
    advice = advisor.advise(item.spec, item.status, quiet, catalog.DEFAULT, nodes=[], now=NOW)
    assert advice.peak_rps is None
    assert next_probe(item.spec, item.status, (), None, None, NOW, peak_rps=None) is None
    assert probing.decide({KEY: item}, {KEY: advice}, {}, NOW).start == ()
    # A declared peak is load to size for: then CPU is worth measuring.
    declared = isvc(peakRequestsPerSecond=5)
    advice = advisor.advise(
        declared.spec, declared.status, quiet, catalog.DEFAULT, nodes=[], now=NOW
    )
    assert advice.peak_rps == 5
    [(_, probe)] = probing.decide({KEY: declared}, {KEY: advice}, {}, NOW).start
    assert probe.option == "cpu-4"


def test_the_option_in_use_is_never_probed() -> None:
    resources = {"accelerator": "cpu", "cpu": "2", "memory": "4Gi",
                 "rightSizing": {"mode": "auto", "peakRequestsPerSecond": 5}}  # fmt: skip
    on_cpu = resource.InferenceService.model_validate(
        {
            "apiVersion": resource.API_VERSION,
            "kind": resource.KIND,
            "metadata": {"name": "m", "namespace": "ns", "uid": "u1"},
            "spec": {"model": {"name": "m", "storageUri": "s3://b/m"}, "resources": resources},
            "status": {"accelerator": "cpu", "replicas": 1},
        }
    )
    quiet = advisor.Observation()
    advice = advisor.advise(on_cpu.spec, on_cpu.status, quiet, catalog.DEFAULT, nodes=[], now=NOW)
    assert advice.current == "cpu" and advice.candidates == ()
    # Nothing is known of CPU but it is what runs: no cpu-4 shadow beside it.
    assert probing.decide({KEY: on_cpu}, {KEY: advice}, {}, NOW).start == ()
    # On a GPU, an estimate of the GPU in use is never a guess worth a replica either.
    item = isvc()
    advice = advice_seen(item, latency_ms=10.0)
    probes = []
    status = item.status
    for _ in range(8):
        probe = next_probe(item.spec, status, advice.candidates, None, 2 * 2**30, NOW)
        if probe is None:
            break
        probes.append(probe.option)
        status = status_api.InferenceServiceStatus(
            accelerator=A100, profiles=autoprofile.record(status, None, probe.option, NOW)
        )
    assert probes and A100 not in probes
    assert next_probe(item.spec, item.status, (), None, None, NOW, current="cpu") is None


L4 = "gpu:NVIDIA-L4"


def test_auto_mode_measures_an_estimated_option_before_moving_to_it() -> None:
    item = isvc(enabled=None, mode="auto")
    advice = advice_for(item)
    rec = advice.recommendation
    assert rec is not None
    # The L4 is only estimated: the endpoint stays where it is while the L4 is measured.
    assert rec.accelerator == A100
    assert f"measuring {L4} first" in rec.reason
    probe = next_probe(item.spec, item.status, advice.candidates, advice.current_cost_per_hour,
                       2 * 2**30, NOW)  # fmt: skip
    assert probe is not None and probe.option == L4
    # Measured, it is moved to.
    measured = [{"option": L4, "maxRequestsPerSecond": 90.0, "p99LatencyMs": 20.0,
                 "measuredAt": NOW.isoformat()}]  # fmt: skip
    after = advice_for(isvc(enabled=None, mode="auto", profiles=measured))
    assert after.recommendation is not None and after.recommendation.accelerator == L4
    assert "measuring" not in after.recommendation.reason


def test_without_profiling_an_estimate_is_recommended_at_once() -> None:
    advice = advice_for(isvc(enabled=False, mode="auto"))
    assert advice.recommendation is not None and advice.recommendation.accelerator == L4


def test_a_recommendation_not_applied_yet_is_not_credited_with_what_runs() -> None:
    # status.accelerator says the A100 still runs; the L4 is only recommended.
    item = isvc(enabled=None, mode="auto")
    assert item.status is not None
    recommended = status_api.Recommendation(accelerator=L4, cpu="2", memory="4Gi")
    moved = item.model_copy(
        update={"status": item.status.model_copy(update={"recommendation": recommended})}
    )
    advice = advice_for(moved)
    assert advice.current == A100
    sources = {c.option.name: c.profile.source for c in advice.candidates}
    assert sources[A100] is accelerators.Source.OBSERVED
    assert sources[L4] is accelerators.Source.ESTIMATED
    probe = next_probe(moved.spec, moved.status, advice.candidates, advice.current_cost_per_hour,
                       2 * 2**30, NOW, current=advice.current or "")  # fmt: skip
    assert probe is not None and probe.option == L4


def test_a_pinned_accelerator_is_not_profiled_unless_asked() -> None:
    item = isvc(enabled=None, mode="auto")
    resources = item.spec.resources.model_copy(update={"accelerator": spec_api.Accelerator.GPU})
    pinned = item.model_copy(update={"spec": item.spec.model_copy(update={"resources": resources})})
    assert resources.right_sizing.profiling_enabled(resources.accelerator) is False
    assert probing.decide({KEY: pinned}, {KEY: advice_for(pinned)}, {}, NOW).start == ()
    profiling = resources.right_sizing.profiling.model_copy(update={"enabled": True})
    asked = resources.right_sizing.model_copy(update={"profiling": profiling})
    assert asked.profiling_enabled(resources.accelerator) is True
