"""Leader election decisions: who acquires, renews or waits, and that two never lead at once."""

from __future__ import annotations

import dataclasses
import datetime

import hypothesis
import pytest
from hypothesis import strategies as st

from tideserve.controller import leader_rules as rules

pytestmark = pytest.mark.unit

TIMING = rules.Timing()
WALL = datetime.datetime(2026, 11, 23, 16, 0, tzinfo=datetime.UTC)


def held(by: str, duration: int = 15) -> rules.Record:
    return rules.Record(by, duration, "t0", "t0", 3)


def test_no_lease_is_created() -> None:
    assert rules.decide(rules.observe(None, None, 0.0), 0.0, "a") is rules.Action.CREATE


def test_our_own_lease_is_renewed() -> None:
    # Also after a restart in the same pod: the old process is gone, so no two writers.
    assert rules.decide(rules.observe(None, held("a"), 0.0), 100.0, "a") is rules.Action.RENEW


def test_a_live_holder_is_waited_for() -> None:
    observed = rules.observe(None, held("b"), 0.0)
    assert rules.decide(observed, 15.0, "a") is rules.Action.WAIT


def test_an_unchanged_lease_expires_after_its_duration_on_our_clock() -> None:
    observed = rules.observe(None, held("b"), 100.0)
    observed = rules.observe(observed, held("b"), 110.0)  # same record: the clock runs on
    assert rules.decide(observed, 115.0, "a") is rules.Action.WAIT
    assert rules.decide(observed, 115.1, "a") is rules.Action.TAKE_OVER


def test_a_renewal_restarts_the_clock() -> None:
    observed = rules.observe(None, held("b"), 0.0)
    renewed = dataclasses.replace(held("b"), renew_time="t1")
    observed = rules.observe(observed, renewed, 14.0)
    assert rules.decide(observed, 20.0, "a") is rules.Action.WAIT
    assert rules.expired_in(observed, 20.0) == pytest.approx(9.0)


def test_the_lease_duration_written_by_the_holder_counts() -> None:
    observed = rules.observe(None, held("b", duration=60), 0.0)
    assert rules.decide(observed, 30.0, "a") is rules.Action.WAIT


def test_a_released_lease_is_taken_at_once() -> None:
    observed = rules.observe(None, rules.released(held("b"), WALL), 0.0)
    assert rules.decide(observed, 0.0, "a") is rules.Action.TAKE_OVER
    assert rules.expired_in(observed, 0.0) == 0.0


def test_taking_over_names_us_and_counts_the_transition() -> None:
    new = rules.next_record(rules.Action.TAKE_OVER, held("b"), "a", TIMING, WALL)
    assert (new.holder, new.transitions, new.duration_seconds) == ("a", 4, 15)
    assert new.acquire_time == new.renew_time == "2026-11-23T16:00:00.000000Z"


def test_renewing_keeps_the_acquire_time() -> None:
    new = rules.next_record(rules.Action.RENEW, held("a"), "a", TIMING, WALL)
    assert (new.acquire_time, new.transitions) == ("t0", 3)
    assert new.renew_time == "2026-11-23T16:00:00.000000Z"


def test_creating_starts_at_zero_transitions() -> None:
    new = rules.next_record(rules.Action.CREATE, None, "a", TIMING, WALL)
    assert (new.holder, new.transitions) == ("a", 0)


def test_waiting_writes_nothing() -> None:
    with pytest.raises(ValueError, match="nothing to write"):
        rules.next_record(rules.Action.WAIT, held("b"), "a", TIMING, WALL)


def test_the_leader_gives_up_at_the_renew_deadline() -> None:
    assert not rules.should_give_up(0.0, 9.9, TIMING)
    assert rules.should_give_up(0.0, 10.0, TIMING)


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"), [(10, 10, 2), (15, 10, 10), (15, 10, 0)]
)
def test_timing_needs_duration_over_deadline_over_retry(
    duration: float, deadline: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline > retry_period"):
        rules.Timing(duration, deadline, retry)


def test_spec_round_trip() -> None:
    record = rules.Record("a", 15, "t0", "t1", 2)
    assert rules.from_spec(rules.to_spec(record)) == record
    assert rules.from_spec(None) == rules.Record()
    assert rules.from_spec({"leaseDurationSeconds": True}).duration_seconds == 15


# --- two (or three) electors against one Lease, under any interleaving ----------------------


@dataclasses.dataclass
class Proc:
    name: str
    alive: bool = True
    observed: rules.Observed | None = None
    pending: tuple[rules.Action, int, float] | None = None  # action, version read, read at
    term_from: float | None = None  # leading, counted from this time (None: standby)


@dataclasses.dataclass
class Server:
    record: rules.Record | None = None
    version: int = 0


def writer(p: Proc, now: float) -> bool:
    """A process writes while it leads and has not reached its renew deadline: the
    implementation exits there (leader.py), which this model takes as given."""
    return (
        p.alive and p.term_from is not None and not rules.should_give_up(p.term_from, now, TIMING)
    )


def read(p: Proc, server: Server, now: float) -> None:
    if p.term_from is not None:
        # A leader renews, or sees that it lost and exits.
        if server.record is None or server.record.holder != p.name:
            p.alive = False
        else:
            p.pending = (rules.Action.RENEW, server.version, now)
        return
    p.observed = rules.observe(p.observed, server.record, now)
    action = rules.decide(p.observed, now, p.name)
    p.pending = None if action is rules.Action.WAIT else (action, server.version, now)


def write(p: Proc, server: Server, now: float) -> None:
    if p.pending is None:
        return
    action, version, read_at = p.pending
    p.pending = None
    if version != server.version:
        return  # 409: someone wrote since we read
    if p.term_from is not None and not writer(p, now):
        p.alive = False  # past its deadline it has exited instead of writing
        return
    server.record = rules.next_record(action, server.record, p.name, TIMING, WALL)
    server.version += 1
    p.term_from = read_at  # counted from before the request, as leader.py does


STEP = st.one_of(
    st.tuples(st.just("advance"), st.floats(0.0, 6.0)),
    st.tuples(st.sampled_from(["read", "write", "kill"]), st.integers(0, 2)),
)


@hypothesis.given(st.lists(STEP, max_size=80), st.integers(2, 3))
@hypothesis.settings(max_examples=400, deadline=None)
def test_never_two_writers(steps: list[tuple[str, float | int]], n: int) -> None:
    procs = [Proc(f"p{i}") for i in range(n)]
    server = Server()
    now = 0.0
    for op, arg in steps:
        if op == "advance":
            now += float(arg)
        else:
            p = procs[int(arg) % n]
            if not p.alive:
                continue
            if op == "read":
                read(p, server, now)
            elif op == "write":
                write(p, server, now)
            else:
                p.alive = False
        assert sum(writer(p, now) for p in procs) <= 1, (server, procs)


def test_a_standby_takes_over_a_dead_leader_within_duration_and_two_polls() -> None:
    a, b = Proc("a"), Proc("b")
    server = Server()
    read(a, server, 0.0)
    write(a, server, 0.0)
    a.alive = False  # SIGKILL: no release
    now = 0.0
    while b.term_from is None:
        now += TIMING.retry_period
        read(b, server, now)
        write(b, server, now)
    assert now <= TIMING.lease_duration + 2 * TIMING.retry_period
