"""The activator's rules: caps, deadlines, order, hard-off windows, exactly one answer."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tideserve.activator import queueing

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 2, 0, tzinfo=datetime.UTC)
KEY = queueing.EndpointKey("ml", "resnet")


def state(**overrides: object) -> queueing.EndpointState:
    values: dict[str, object] = {
        "key": KEY,
        "model": "resnet",
        "ready_replicas": 0,
        "max_held_requests": 3,
        "wake_deadline_seconds": 900.0,
    }
    values.update(overrides)
    return queueing.EndpointState(**values)  # type: ignore[arg-type]


def test_endpoint_at_zero_holds_the_request() -> None:
    decision = queueing.route(state(), now=NOW, held=0, model_ready=False)
    assert decision == queueing.Hold()


def test_ready_endpoint_with_ready_model_forwards_at_once() -> None:
    decision = queueing.route(state(ready_replicas=1), now=NOW, held=0, model_ready=True)
    assert decision == queueing.Forward()


def test_ready_replica_whose_model_is_not_ready_yet_still_holds() -> None:
    decision = queueing.route(state(ready_replicas=1), now=NOW, held=0, model_ready=False)
    assert decision == queueing.Hold()


def test_new_request_queues_behind_held_ones_to_keep_arrival_order() -> None:
    decision = queueing.route(state(ready_replicas=1), now=NOW, held=2, model_ready=True)
    assert decision == queueing.Hold()


def test_full_queue_answers_429_with_retry_after() -> None:
    decision = queueing.route(state(), now=NOW, held=3, model_ready=False)
    assert isinstance(decision, queueing.Refusal)
    assert decision.status == 429
    assert decision.headers == {"Retry-After": str(queueing.FULL_RETRY_AFTER_SECONDS)}
    assert "maxHeldRequests 3" in decision.error


def test_hard_off_window_refuses_at_once_with_the_time_it_ends() -> None:
    off_until = NOW + datetime.timedelta(hours=4, seconds=0.5)
    decision = queueing.route(
        state(off_until=off_until, ready_replicas=1), now=NOW, held=0, model_ready=True
    )
    assert isinstance(decision, queueing.Refusal)
    assert decision.status == 503
    assert decision.retry_after_seconds == 4 * 3600 + 1
    assert decision.body()["offUntil"] == "2026-11-23T06:00:00.500000Z"
    assert "off by schedule until" in decision.error


def test_off_window_in_the_past_is_ignored() -> None:
    decision = queueing.route(
        state(off_until=NOW - datetime.timedelta(seconds=1)), now=NOW, held=0, model_ready=False
    )
    assert decision == queueing.Hold()


def test_deadline_refusal_names_the_endpoint_deadline_and_reason() -> None:
    refusal = queueing.deadline_refusal(
        state(wake_deadline_seconds=900, message="Progressing WaitingForNode: no node fits"),
        waited_seconds=900.0001,
    )
    assert refusal.status == 503
    assert refusal.retry_after_seconds == queueing.DEADLINE_RETRY_AFTER_SECONDS
    assert refusal.body()["error"] == (
        "endpoint ml/resnet did not become ready within 900 s: "
        "Progressing WaitingForNode: no node fits"
    )


def test_deadline_refusal_without_a_condition_still_says_why() -> None:
    assert refusal_text(state()).endswith(": no ready replica")
    assert refusal_text(state(ready_replicas=1)).endswith(": model resnet not ready")


def refusal_text(s: queueing.EndpointState) -> str:
    return queueing.deadline_refusal(s, waited_seconds=1).error


def test_queue_releases_in_arrival_order_and_reports_cold_start() -> None:
    queue = queueing.HeldQueue()
    tickets = [queue.admit(now=10.0 + i, deadline_seconds=60) for i in range(5)]
    released, cold_start = queue.release(now=20.0)
    assert released == tickets
    assert [t.seq for t in released] == [0, 1, 2, 3, 4]
    assert cold_start == 10.0
    assert len(queue) == 0
    assert queue.release(now=21.0) == ([], None)


def test_expired_tickets_leave_the_queue_oldest_first() -> None:
    queue = queueing.HeldQueue()
    first = queue.admit(now=0.0, deadline_seconds=5)
    second = queue.admit(now=1.0, deadline_seconds=5)
    third = queue.admit(now=2.0, deadline_seconds=5)
    assert queue.expired(now=6.0) == [first, second]
    assert list(queue) == [third]
    assert queue.oldest_age(now=6.0) == 4.0


def test_a_ticket_taken_out_once_cannot_be_taken_out_again() -> None:
    queue = queueing.HeldQueue()
    ticket = queue.admit(now=0.0, deadline_seconds=5)
    assert queue.discard(ticket) is True
    assert queue.discard(ticket) is False
    assert queue.release(now=1.0) == ([], None)


def test_emptied_queue_starts_a_new_wake_episode() -> None:
    queue = queueing.HeldQueue()
    queue.discard(queue.admit(now=0.0, deadline_seconds=5))
    queue.admit(now=100.0, deadline_seconds=5)
    assert queue.release(now=103.0)[1] == 3.0


def test_probe_delay_backs_off_to_a_cap() -> None:
    delays = [queueing.probe_delay(n) for n in range(8)]
    assert delays[0] == 0.02
    assert delays == sorted(delays)
    assert max(delays) == 0.1


ops = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(0, 0)),
        st.tuples(st.just("discard"), st.integers(0, 50)),
        st.tuples(st.just("expire"), st.integers(0, 0)),
        st.tuples(st.just("release"), st.integers(0, 0)),
        st.tuples(st.just("drain"), st.integers(0, 0)),
    ),
    max_size=80,
)


@given(ops)
def test_every_admitted_ticket_leaves_exactly_once(operations: list[tuple[str, int]]) -> None:
    queue = queueing.HeldQueue()
    admitted: list[queueing.Ticket] = []
    left: list[queueing.Ticket] = []
    now = 0.0
    for op, arg in operations:
        now += 1.0
        if op == "admit":
            admitted.append(queue.admit(now=now, deadline_seconds=3))
        elif op == "discard" and admitted:
            ticket = admitted[arg % len(admitted)]
            if queue.discard(ticket):
                left.append(ticket)
        elif op == "expire":
            left += queue.expired(now)
        elif op == "release":
            released, _ = queue.release(now)
            assert released == sorted(released, key=lambda t: t.seq)
            left += released
        elif op == "drain":
            left += queue.drain()
    left += queue.drain()
    assert sorted(t.seq for t in left) == [t.seq for t in admitted]
