"""status.learned: what the policy learned, out to the status and back at a restart."""

from __future__ import annotations

import datetime
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.autoscaler import demand as demand_lib
from tideserve.autoscaler import learned, learned_status, policy

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
SETTINGS = hypothesis.settings(max_examples=300, deadline=None)
DEFAULT = spec_api.ScalingSpec()
SLO = spec_api.SloSpec(queue_time_ms=500)


def state(
    per_replica: float | None = None,
    measured: bool = False,
    peak: float | None = None,
    cold: tuple[float, ...] = (),
    gaps: tuple[float, ...] = (),
) -> policy.PolicyState:
    return policy.PolicyState(
        capacity=demand_lib.Capacity(per_replica, measured, peak),
        observed=learned.Observed(cold_starts=cold, gaps=gaps),
    )


def through_the_api(st_: policy.PolicyState, scaling: spec_api.ScalingSpec) -> Any:
    """snapshot -> JSON -> parse -> restore, as a restart sees it."""
    raw = learned_status.dump(learned_status.snapshot(st_, scaling, SLO))
    return learned_status.restore(learned_status.parse(raw))


# -- shapes the policy reaches (demand.learn, learned.observe, learned.gap_ended) ------

rates = st.floats(1.001e-3, 1e4)
capacities = st.one_of(
    st.builds(demand_lib.Capacity),
    st.builds(demand_lib.Capacity, per_replica=rates, measured=st.just(False)),
    st.builds(
        demand_lib.Capacity, per_replica=rates, measured=st.just(True), peak=st.none() | rates
    ),
)
observeds = st.builds(
    learned.Observed,
    cold_starts=st.lists(st.floats(0, 3600), max_size=learned.COLD_SAMPLES).map(tuple),
    gaps=st.lists(st.floats(learned.MIN_GAP_S, 7 * 86400), max_size=learned.GAP_SAMPLES).map(tuple),
)
states = st.builds(policy.PolicyState, capacity=capacities, observed=observeds)


def scaling_spec(
    value: float | None, stabilization: int | None, idle: int | None
) -> spec_api.ScalingSpec:
    """A spec with each learned knob either set or left out (derived)."""
    down: dict[str, object] = {"maxPercent": 100, "maxReplicasChange": 4, "periodSeconds": 15}
    if stabilization is not None:
        down["stabilizationSeconds"] = stabilization
    target: dict[str, object] = {"type": "queueDepth"}
    if value is not None:
        target["value"] = value
    return spec_api.ScalingSpec.model_validate(
        {
            "target": target,
            "scaleToZero": {"idleSeconds": idle} if idle is not None else {},
            "behavior": {"scaleDown": down},
        }
    )


scalings = st.builds(
    scaling_spec,
    st.sampled_from([None, 2.0, 50.0]),
    st.sampled_from([None, 0, 120]),
    st.sampled_from([None, 0, 600]),
)
# What a status may hold: anything the CRD schema admits (users can write status too).
raw_learned = st.fixed_dictionaries(
    {},
    optional={
        "capacityPerReplica": st.floats(1e-9, 1e9),
        "capacityMeasured": st.booleans(),
        "peakPerReplica": st.floats(1e-9, 1e9),
        "coldStartsSeconds": st.lists(st.floats(0, 1e7), max_size=8),
        "coldStartSeconds": st.floats(0, 1e7),
        "idleGapsSeconds": st.lists(st.integers(0, 10**9), max_size=48),
        "target": st.floats(0, 1e6),
        "scaleDownWindowSeconds": st.integers(0, 10**6),
        "idleSeconds": st.integers(0, 10**9),
    },
)


def test_nothing_learned_writes_nothing() -> None:
    assert learned_status.snapshot(policy.PolicyState(), DEFAULT, SLO) is None
    assert learned_status.due(None, None, NOW) is None


def test_what_the_status_shows() -> None:
    learnt = state(2.4567, True, 3.14159, cold=(41.26, 38.91, 50.0), gaps=(12.4, 600.6))
    shown = learned_status.dump(learned_status.snapshot(learnt, DEFAULT, SLO))
    assert shown == {
        "capacityPerReplica": 2.46,
        "capacityMeasured": True,
        "peakPerReplica": 3.14,
        "coldStartsSeconds": [41.3, 38.9, 50.0],
        "coldStartSeconds": 41.3,
        "idleGapsSeconds": [12, 601],
        # 3.14 req/s x 500 ms x 40 %; two cold starts of 41.3 s; 2 gaps are too few.
        "target": 0.628,
        "scaleDownWindowSeconds": 83,
        "idleSeconds": 900,
    }
    # The object fits the status schema.
    status_api.InferenceServiceStatus.model_validate({"learned": shown})


def test_a_restart_derives_what_the_status_says() -> None:
    learnt = state(2.4567, True, 3.14159, cold=(41.26, 38.91), gaps=(30.0,) * 5 + (5000.0,))
    restored = through_the_api(learnt, DEFAULT)
    knobs = learned.knobs(DEFAULT, SLO, restored.capacity, restored.observed)
    assert knobs.target.value == pytest.approx(0.628)
    assert knobs.down_window_s == 80
    assert knobs.idle_s == 30.0  # ski rental over the gaps, not the 900 s default
    # Everything else starts afresh (and conservatively, policy._start).
    assert restored.started is None and restored.needs == () and restored.events == ()


@pytest.mark.parametrize(
    "raw",
    [None, "x", [], {"capacityPerReplica": -1}, {"idleGapsSeconds": ["a"]},
     {"coldStartsSeconds": [1.0] * 9}, {"capacityMeasured": "maybe"}],
)  # fmt: skip
def test_an_unusable_status_starts_afresh(raw: object) -> None:
    assert learned_status.parse(raw) is None
    assert learned_status.restore(learned_status.parse(raw)) == policy.PolicyState()


def test_fields_of_a_newer_operator_are_ignored() -> None:
    figures = learned_status.parse({"coldStartsSeconds": [20.0], "somethingNew": 1})
    assert figures is not None and figures.cold_starts_seconds == [20.0]


def test_writes_at_most_once_a_minute_and_never_erase() -> None:
    first = learned_status.due(None, {"coldStartsSeconds": [20.0]}, NOW)
    assert first == learned_status.Written({"coldStartsSeconds": [20.0]}, NOW)
    soon = NOW + datetime.timedelta(seconds=59)
    assert learned_status.due(first, {"coldStartsSeconds": [20.0, 21.0]}, soon) is first
    assert learned_status.due(first, None, soon) is first
    later = NOW + datetime.timedelta(seconds=60)
    changed = learned_status.due(first, {"coldStartsSeconds": [20.0, 21.0]}, later)
    assert changed == learned_status.Written({"coldStartsSeconds": [20.0, 21.0]}, later)
    assert learned_status.due(changed, {"coldStartsSeconds": [20.0, 21.0]}, later) is changed
    # A status read at the start that said nothing usable: the first figures go out at once.
    assert learned_status.due(learned_status.Written(None, NOW), {"a": 1}, NOW) is not None


@SETTINGS
@hypothesis.given(states, scalings)
def test_round_trip_is_exact_after_one_rounding(
    learnt: policy.PolicyState, scaling: spec_api.ScalingSpec
) -> None:
    shown = learned_status.snapshot(learnt, scaling, SLO)
    restored = through_the_api(learnt, scaling)
    assert learned_status.snapshot(restored, scaling, SLO) == shown
    assert (restored.capacity, restored.observed) == learned_status.rounded(
        learnt.capacity, learnt.observed
    )


@SETTINGS
@hypothesis.given(states, scalings)
def test_restored_knobs_match_the_learned_ones_up_to_rounding(
    learnt: policy.PolicyState, scaling: spec_api.ScalingSpec
) -> None:
    before = learned.knobs(scaling, SLO, learnt.capacity, learnt.observed)
    restored = through_the_api(learnt, scaling)
    after = learned.knobs(scaling, SLO, restored.capacity, restored.observed)
    assert after.target.value == pytest.approx(before.target.value, rel=0.01)
    # Cold starts are kept to 0.05 s: the window (two of them, rounded) moves by 1 s at most.
    assert abs(after.down_window_s - before.down_window_s) <= 1
    # The idle period is one of the gaps (kept to 0.5 s), 0, or a default: the ski-rental
    # choice may tip between gaps of nearly equal cost, so only its bounds are pinned.
    assert after.idle_learned == before.idle_learned
    assert 0 <= after.idle_s <= max((*restored.observed.gaps, learned.DEFAULT_IDLE_S))


@SETTINGS
@hypothesis.given(raw_learned, scalings)
def test_any_status_restores_to_a_state_the_policy_could_have_reached(
    raw: dict[str, Any], scaling: spec_api.ScalingSpec
) -> None:
    restored = learned_status.restore(learned_status.parse(raw))
    capacity, observed = restored.capacity, restored.observed
    assert capacity.per_replica is None or capacity.per_replica > 0
    assert not capacity.measured or capacity.per_replica is not None
    assert capacity.peak is None or (capacity.measured and capacity.peak > 0)
    assert capacity.saturated_since is None and observed.starting == ()
    assert len(observed.cold_starts) <= learned.COLD_SAMPLES
    assert all(s >= 0 for s in observed.cold_starts)
    assert len(observed.gaps) <= learned.GAP_SAMPLES
    assert all(g >= learned.MIN_GAP_S for g in observed.gaps)
    # And what it shows again is a valid status.learned.
    shown = learned_status.dump(learned_status.snapshot(restored, scaling, SLO))
    status_api.InferenceServiceStatus.model_validate({"learned": shown})


def test_a_write_is_due_when_the_status_differs_at_most_once_a_minute() -> None:
    written = learned_status.Written({"coldStartsSeconds": [20.0]}, NOW)
    soon, later = NOW + datetime.timedelta(seconds=30), NOW + datetime.timedelta(seconds=60)
    assert learned_status.stale(written, None, None, NOW)
    assert not learned_status.stale(written, {"coldStartsSeconds": [20]}, None, NOW)
    assert not learned_status.stale(written, None, NOW, soon)
    assert learned_status.stale(written, None, NOW, later)
    assert not learned_status.stale(None, None, None, NOW)
    assert not learned_status.stale(learned_status.Written(None, NOW), {"x": 1}, None, NOW)


# -- the basis: what capacity and cold starts were measured on -------------------------


def isvc_spec(**changes: Any) -> spec_api.InferenceServiceSpec:
    body: dict[str, Any] = {
        "model": {"name": "resnet", "storageUri": "s3://models/resnet/1"},
        "resources": {"accelerator": "gpu", "gpu": {"product": "NVIDIA-L4"}},
    }
    body.update(changes)
    return spec_api.InferenceServiceSpec.model_validate(body)


def test_the_basis_follows_model_runtime_resources_and_the_accelerator_in_use() -> None:
    base = learned_status.basis_of(isvc_spec(), "gpu:NVIDIA-L4")
    assert learned_status.basis_of(isvc_spec(), "gpu:NVIDIA-L4") == base
    # Scaling knobs and the SLO are not what a replica's speed depends on.
    assert (
        learned_status.basis_of(isvc_spec(scaling={"maxReplicas": 9}, slo={"latencyMs": 5}),
                                "gpu:NVIDIA-L4")
        == base
    )  # fmt: skip
    new_version = isvc_spec(model={"name": "resnet", "storageUri": "s3://models/resnet/2"})
    other_gpu = isvc_spec(resources={"accelerator": "gpu", "gpu": {"product": "NVIDIA-A100"}})
    for changed in (
        learned_status.basis_of(new_version, "gpu:NVIDIA-L4"),
        learned_status.basis_of(other_gpu, "gpu:NVIDIA-L4"),
        learned_status.basis_of(isvc_spec(), "cpu"),  # right-sizing moved it
    ):
        assert changed != base


def test_figures_learned_on_another_basis_keep_only_the_idle_gaps() -> None:
    learnt = state(2.5, True, 3.0, cold=(40.0, 42.0), gaps=(600.0, 900.0))
    raw = learned_status.dump(learned_status.snapshot(learnt, DEFAULT, SLO, basis="aaaa"))
    assert raw is not None and raw["basis"] == "aaaa"
    figures = learned_status.parse(raw)
    same = learned_status.restore(figures, "aaaa")
    assert same.capacity.peak == 3.0
    assert same.observed.cold_starts == (40.0, 42.0)
    other = learned_status.restore(figures, "bbbb")
    assert other.capacity == demand_lib.Capacity()
    assert other.observed.cold_starts == ()
    assert other.observed.gaps == (600.0, 900.0)
    # A status written before the basis existed is trusted as it is.
    legacy = learned_status.parse({k: v for k, v in raw.items() if k != "basis"})
    assert learned_status.restore(legacy, "bbbb").capacity.peak == 3.0


@SETTINGS
@hypothesis.given(states)
def test_rebase_forgets_speed_and_cold_starts_only(st_: policy.PolicyState) -> None:
    rebased = learned_status.rebase(st_)
    assert rebased.capacity == demand_lib.Capacity()
    assert rebased.observed.cold_starts == ()
    assert rebased.observed.gaps == st_.observed.gaps
    assert rebased.observed.starting == st_.observed.starting
    # What is derived from a rebased state is the spec's defaults for target and window.
    knobs = learned.knobs(DEFAULT, SLO, rebased.capacity, rebased.observed)
    fresh = learned.knobs(DEFAULT, SLO, demand_lib.Capacity(), learned.Observed())
    assert knobs.target == fresh.target
    assert knobs.down_window_s == fresh.down_window_s
