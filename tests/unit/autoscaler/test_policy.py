"""The policy's decisions on pinned examples, with their reasons in words."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from tideserve.api import spec as spec_api
from tideserve.autoscaler import policy

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
TICK = datetime.timedelta(seconds=5)


def scaling(**fields: object) -> spec_api.ScalingSpec:
    return spec_api.ScalingSpec.model_validate(fields)


def signals(
    pending: float = 0, rate: float = 0, held: int = 0, queue_ms: float = 0, age: float = 1
) -> policy.Signals:
    return policy.Signals(
        pending=pending, queue_time_s=queue_ms / 1000, request_rate=rate, held=held, age_s=age
    )


@dataclasses.dataclass
class Endpoint:
    """Runs decide tick by tick; replicas become ready at once unless told otherwise."""

    spec: spec_api.ScalingSpec
    current: int
    ready: int | None = None
    now: datetime.datetime = T0
    state: policy.PolicyState = dataclasses.field(default_factory=policy.PolicyState)

    def tick(self, sig: policy.Signals | None, ready: int | None = None) -> policy.Decision:
        decision, self.state = policy.decide(
            self.spec,
            sig,
            self.current,
            self.current if ready is None else ready,
            self.now,
            self.state,
        )
        self.current = decision.desired
        self.now += TICK
        return decision

    def run(self, sig: policy.Signals | None, seconds: float) -> policy.Decision:
        decision = self.tick(sig)
        for _ in range(int(seconds / TICK.total_seconds()) - 1):
            decision = self.tick(sig)
        return decision

    def warm(self) -> None:
        """Past the start-up grace with a steady, empty queue and no traffic."""
        self.run(signals(), 60)


def test_queue_above_target_scales_up_with_the_numbers_in_the_reason() -> None:
    fast_up = {
        "stabilizationSeconds": 0,
        "maxPercent": 1000,
        "maxReplicasChange": 100,
        "periodSeconds": 15,
    }
    endpoint = Endpoint(
        scaling(max_replicas=20, behavior={"panicThreshold": 10, "scaleUp": fast_up}), current=3
    )
    endpoint.warm()
    endpoint.current = 3
    decision = endpoint.tick(signals(pending=37))
    assert decision.desired == 10
    assert decision.kind == "ScaleUp"
    assert decision.reason == "queue 37 > 4/replica x 3 -> 10"


def test_burst_beyond_the_panic_threshold_skips_the_rate_limit() -> None:
    endpoint = Endpoint(scaling(max_replicas=100), current=2)
    endpoint.warm()
    endpoint.current = 2
    decision = endpoint.tick(signals(pending=200))
    assert decision.kind == "Panic"
    assert decision.desired == 50  # rate limit alone would allow max(2x2, 2+4) = 6
    assert decision.reason.startswith("panic: queue 200 > 4/replica x 2")


def test_no_scale_down_while_panicking() -> None:
    endpoint = Endpoint(
        scaling(
            max_replicas=100,
            behavior={
                "scaleDown": {
                    "stabilizationSeconds": 0,
                    "maxPercent": 100,
                    "maxReplicasChange": 100,
                    "periodSeconds": 15,
                }
            },
        ),
        current=2,
    )
    endpoint.warm()
    endpoint.current = 2
    assert endpoint.tick(signals(pending=200)).desired == 50
    quiet = endpoint.run(signals(pending=0, rate=1), 30)
    assert quiet.desired == 50
    assert "panic" in quiet.reason
    released = endpoint.run(signals(pending=0, rate=1), 60)
    assert released.desired < 50


def test_normal_scale_up_is_rate_limited() -> None:
    endpoint = Endpoint(scaling(max_replicas=100, behavior={"panicThreshold": 50}), current=2)
    endpoint.warm()
    endpoint.current = 2
    decision = endpoint.tick(signals(pending=200))
    assert decision.desired == 6
    assert "limited to 6 by scaleUp 100% or 4 per 15s" in decision.reason


def test_scale_down_waits_for_the_stabilization_window() -> None:
    endpoint = Endpoint(scaling(max_replicas=20), current=8)
    endpoint.run(signals(pending=30, rate=80), 120)  # learn what a replica serves
    assert endpoint.current == 8
    decision = endpoint.run(signals(pending=0, rate=20), 295)
    assert decision.desired == 8
    assert "held at 8 by the 300s" in decision.reason
    kinds = [endpoint.tick(signals(pending=0, rate=20)).kind for _ in range(12)]
    assert "ScaleDown" in kinds
    assert endpoint.current < 8


def test_within_tolerance_nothing_changes() -> None:
    endpoint = Endpoint(scaling(max_replicas=20), current=10)
    endpoint.warm()
    endpoint.current = 10
    decision = endpoint.tick(signals(pending=43, rate=100))  # 4.3/replica, within 10%
    assert (decision.desired, decision.kind) == (10, "Stable")


def test_queue_time_target_without_a_known_rate_uses_the_hpa_ratio() -> None:
    spec = scaling(
        max_replicas=20, target={"type": "queueTime", "value": 50}, behavior={"panicThreshold": 10}
    )
    endpoint = Endpoint(spec, current=2)
    endpoint.warm()
    endpoint.current = 2
    decision = endpoint.tick(signals(queue_ms=200, pending=10, rate=0))
    assert decision.desired == 6
    assert decision.reason == (
        "queue time 200ms > 50ms x 2 -> 8, limited to 6 by scaleUp 100% or 4 per 15s"
    )


def test_above_target_a_known_rate_sizes_the_step_not_the_backlog() -> None:
    # 2 busy replicas serve 40/s, 42/s arrive: one more replica, not 8 for the backlog.
    spec = scaling(
        max_replicas=20, target={"type": "queueTime", "value": 50}, behavior={"panicThreshold": 10}
    )
    endpoint = Endpoint(spec, current=2)
    endpoint.warm()
    endpoint.current = 2
    decision = endpoint.tick(signals(queue_ms=200, pending=10, rate=40))
    assert decision.desired == 3
    assert decision.reason == "queue time 200ms > 50ms x 2, arrivals 42/s at 20/s per replica -> 3"


def test_burst_sizes_on_arrivals_when_the_rate_is_known() -> None:
    endpoint = Endpoint(scaling(max_replicas=100), current=4)
    endpoint.run(signals(pending=16, rate=40), 120)  # saturated at target: 10/s each
    assert endpoint.state.capacity.measured
    decision = endpoint.tick(signals(pending=400, rate=40))
    # 400 queued in 5 s: 80 arrivals/s more; (120/s + 384 excess / 60 s) / 10 -> 13.
    assert decision.kind == "Panic"
    assert decision.desired == 13


def test_idle_to_zero_after_the_idle_period() -> None:
    endpoint = Endpoint(scaling(min_replicas=0, scale_to_zero={"idleSeconds": 900}), current=1)
    endpoint.run(signals(rate=5), 60)
    almost = endpoint.run(signals(), 895)
    assert almost.desired == 1
    decision = endpoint.tick(signals())
    assert (decision.desired, decision.kind, decision.reason) == (0, "Idle", "idle 15m -> 0")


def test_never_zero_while_requests_are_pending_or_held() -> None:
    endpoint = Endpoint(scaling(min_replicas=0, scale_to_zero={"idleSeconds": 0}), current=1)
    endpoint.warm()
    assert endpoint.current == 0
    endpoint.current = 1
    assert endpoint.tick(signals(pending=1)).desired >= 1
    assert endpoint.tick(signals(held=1)).desired >= 1


def test_held_request_wakes_from_zero_at_once() -> None:
    endpoint = Endpoint(scaling(min_replicas=0), current=0)
    endpoint.run(signals(), 600)
    decision = endpoint.tick(policy.Signals(None, None, None, held=3, age_s=0))
    assert (decision.desired, decision.kind) == (1, "Wake")
    assert decision.reason.startswith("wake: 3 held")


def test_missing_signals_hold_and_say_so() -> None:
    endpoint = Endpoint(scaling(min_replicas=0, scale_to_zero={"idleSeconds": 0}), current=4)
    decision = endpoint.run(None, 600)
    assert (decision.desired, decision.kind, decision.reason) == (4, "Hold", "no metrics: hold 4")
    stale = endpoint.tick(signals(age=90))
    assert (stale.desired, stale.kind, stale.reason) == (4, "Hold", "metrics stale 90s: hold 4")
    assert not policy.usable(signals(age=90), 4)


def test_no_series_from_running_replicas_is_missing_data_not_idle() -> None:
    endpoint = Endpoint(scaling(min_replicas=0, scale_to_zero={"idleSeconds": 0}), current=2)
    decision = endpoint.run(policy.Signals(None, None, None, held=0, age_s=0), 300)
    assert (decision.desired, decision.kind) == (2, "Hold")


def test_schedule_bounds_still_apply_without_signals() -> None:
    night = {
        "name": "night",
        "timeZone": "Europe/Berlin",
        "start": "12:00",
        "end": "14:00",
        "maxReplicas": 0,
    }
    endpoint = Endpoint(scaling(schedules=[night]), current=3)
    decision = endpoint.tick(None)
    assert (decision.desired, decision.kind) == (0, "Schedule")
    assert decision.reason == "schedule night (Europe/Berlin) max 0"
    assert decision.off_until == datetime.datetime(2026, 11, 23, 13, 0, tzinfo=datetime.UTC)
    assert decision.window == "night"


def test_sleep_window_scales_to_zero_when_idle_and_wakes_on_demand() -> None:
    sleep = {"name": "sleep", "start": "12:00", "end": "14:00", "minReplicas": 0}
    endpoint = Endpoint(
        scaling(min_replicas=2, schedules=[sleep], scale_to_zero={"idleSeconds": 60}), current=2
    )
    decisions = [endpoint.tick(signals()) for _ in range(24)]
    assert [d.kind for d in decisions].count("Idle") == 1
    assert endpoint.current == 0
    assert endpoint.tick(signals(held=1)).kind == "Wake"


def test_prewarm_raises_the_floor_before_the_window_opens() -> None:
    day = {"name": "day", "start": "12:10", "end": "18:00", "minReplicas": 4, "prewarmSeconds": 300}
    endpoint = Endpoint(scaling(min_replicas=1, schedules=[day]), current=1)
    endpoint.run(signals(rate=1), 290)
    assert endpoint.current == 1
    decision = endpoint.run(signals(rate=1), 15)
    assert (decision.desired, decision.kind) == (4, "Schedule")
    assert decision.reason == "schedule day prewarm (opens 12:10Z) min 4"
    assert decision.window == "day (prewarm)"


def test_external_mode_only_reports() -> None:
    endpoint = Endpoint(scaling(mode="external"), current=7)
    decision = endpoint.tick(signals(pending=1000))
    assert (decision.desired, decision.kind) == (7, "External")


def test_restart_does_not_scale_down_on_the_first_ticks() -> None:
    endpoint = Endpoint(
        scaling(
            max_replicas=20,
            behavior={
                "scaleDown": {
                    "stabilizationSeconds": 0,
                    "maxPercent": 100,
                    "maxReplicasChange": 20,
                    "periodSeconds": 15,
                }
            },
        ),
        current=12,
    )
    for _ in range(10):
        assert endpoint.tick(signals(pending=0, rate=0)).desired == 12


def test_learned_capacity_keeps_replicas_when_the_queue_is_empty() -> None:
    # 8 replicas keep the queue at target serving 80/s: 10/s each. With the queue
    # then empty at the same rate, a queue-only rule would ask for 0; the rate keeps 8.
    endpoint = Endpoint(scaling(max_replicas=20), current=8)
    endpoint.run(signals(pending=32, rate=80), 120)
    decision = endpoint.run(signals(pending=0, rate=80), 600)
    assert decision.desired == 8
    assert decision.reason.startswith("rate 80/s at 10/s per replica")


def test_wake_from_zero_ignores_the_backlog_built_during_the_cold_start() -> None:
    endpoint = Endpoint(scaling(min_replicas=0, max_replicas=50), current=0)
    endpoint.warm()
    endpoint.tick(policy.Signals(None, None, None, held=5, age_s=0))
    assert endpoint.current == 1
    # Still starting (ready 0) with a growing backlog: no capacity known, so no more.
    decision = endpoint.tick(policy.Signals(None, None, None, held=60, age_s=0), ready=0)
    assert decision.desired == 1


def test_without_any_rate_yet_a_backlog_at_most_doubles_replicas_per_tick() -> None:
    # Just woke: the replica is Ready, its series too new for a rate, and the requests
    # held through the cold start are queued. Not 289 replicas for a one-off backlog.
    endpoint = Endpoint(scaling(min_replicas=0, max_replicas=64), current=0)
    endpoint.warm()
    endpoint.tick(policy.Signals(None, None, None, held=238, age_s=0))
    assert endpoint.current == 1
    decision = endpoint.tick(policy.Signals(1154, None, None, held=0, age_s=1))
    assert decision.desired == 2


def held(n: int, age: float = 0) -> policy.Signals:
    """What the loop passes while nothing is Ready: no Triton series, the held count."""
    return policy.Signals(None, None, None, held=n, age_s=age)


def woken_with_known_capacity() -> Endpoint:
    """Learned 10 req/s per replica on an earlier burst, idled to zero, woken to 1."""
    endpoint = Endpoint(
        scaling(min_replicas=0, max_replicas=50, scale_to_zero={"idleSeconds": 60}), current=2
    )
    endpoint.run(signals(pending=8, rate=20), 120)
    capacity = endpoint.state.capacity
    assert (capacity.per_replica, capacity.measured, capacity.peak) == (10.0, True, 10.0)
    endpoint.run(signals(), 900)
    assert endpoint.current == 0
    assert endpoint.tick(held(5)).kind == "Wake"
    return endpoint


def test_while_waking_a_growing_held_count_asks_for_more_replicas() -> None:
    # R1: nothing Ready yet, but the activator holds a burst arriving at ~20 req/s.
    endpoint = woken_with_known_capacity()
    first = endpoint.tick(held(60), ready=0)
    assert (first.desired, first.kind) == (2, "ScaleUp")
    assert first.reason.startswith("waking on 60 held: queue 60")
    second = endpoint.tick(held(160), ready=0)
    assert second.desired == 3
    assert "arrivals 20/s at 10/s per replica" in second.reason


def test_while_waking_the_held_count_never_scales_down() -> None:
    endpoint = woken_with_known_capacity()
    endpoint.tick(held(160), ready=0)
    endpoint.tick(held(260), ready=0)
    woken = endpoint.current
    assert woken >= 3
    # The activator released most requests, the replicas are still not Ready.
    for _ in range(120):
        assert endpoint.tick(held(1), ready=0).desired == woken


def test_while_waking_stale_or_missing_data_still_holds() -> None:
    endpoint = woken_with_known_capacity()
    stale = endpoint.tick(held(400, age=90), ready=0)
    assert (stale.desired, stale.kind) == (1, "Hold")
    # No held requests and no series: unknown, as before.
    assert endpoint.tick(held(0), ready=0).kind == "Hold"
    assert not policy.waking_on_held(held(3), current=1, ready=1)
    assert policy.waking_on_held(held(3), current=1, ready=0)
