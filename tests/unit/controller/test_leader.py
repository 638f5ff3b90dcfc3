"""The Elector's loop around the rules, against an in-memory Lease (the API calls faked)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import kopf
import pytest

from tideserve import kube
from tideserve.controller import leader, leader_rules

pytestmark = pytest.mark.unit

# Short real-time periods for the renewer thread; nothing below asserts on durations.
FAST = leader_rules.Timing(lease_duration=3.0, renew_deadline=0.4, retry_period=0.02)


@dataclasses.dataclass
class FakeLeases:
    """One Lease with resourceVersion checks, as the API server does them."""

    spec: dict[str, Any] | None = None
    version: int = 0
    failing: bool = False

    def get(self, kind: str, namespace: str, name: str, timeout: float) -> dict[str, Any] | None:
        assert kind == "Lease"
        if self.failing:
            raise kopf.TemporaryError("API unreachable", delay=1)
        if self.spec is None:
            return None
        return {"metadata": {"resourceVersion": str(self.version)}, "spec": dict(self.spec)}

    def create(self, namespace: str, name: str, spec: dict[str, Any], timeout: float) -> None:
        if self.spec is not None:
            raise kopf.TemporaryError("conflict: already exists", delay=1)
        self.spec, self.version = spec, 1

    def replace(
        self, namespace: str, name: str, version: str, spec: dict[str, Any], timeout: float
    ) -> None:
        if self.failing:
            raise kopf.TemporaryError("API unreachable", delay=1)
        if version != str(self.version):
            raise kopf.TemporaryError("conflict: modified", delay=1)
        self.spec, self.version = spec, self.version + 1


@pytest.fixture
def leases(monkeypatch: pytest.MonkeyPatch) -> FakeLeases:
    fake = FakeLeases()
    monkeypatch.setattr(kube, "get", fake.get)
    monkeypatch.setattr(kube, "create_lease", fake.create)
    monkeypatch.setattr(kube, "replace_lease", fake.replace)
    return fake


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def elector(
    identity: str,
    clock: Clock | None = None,
    lost: list[str] | None = None,
    timing: leader_rules.Timing = FAST,
) -> leader.Elector:
    sink = lost if lost is not None else []
    return leader.Elector(
        "ns",
        "lease",
        identity,
        timing=timing,
        on_lost=sink.append,
        clock=clock or Clock(),
    )


def test_the_first_elector_creates_the_lease(leases: FakeLeases) -> None:
    a = elector("a")
    assert a.acquire(threading.Event())
    assert a.leading
    assert leases.spec is not None and leases.spec["holderIdentity"] == "a"


def test_a_standby_waits_for_a_live_holder_and_takes_over_when_it_expired(
    leases: FakeLeases,
) -> None:
    elector("a").acquire(threading.Event())
    clock = Clock()
    b = elector("b", clock)
    assert not b.try_acquire()
    clock.now = 2.0  # the record has not changed, but not for the lease's 3 s yet
    assert not b.try_acquire()
    clock.now = 3.5
    assert b.try_acquire()
    assert leases.spec is not None
    assert (leases.spec["holderIdentity"], leases.spec["leaseTransitions"]) == ("b", 1)


def test_of_two_standbys_taking_over_only_one_wins(leases: FakeLeases) -> None:
    a = elector("a")
    a.acquire(threading.Event())
    a.release()
    b, c = elector("b"), elector("c")
    # c read the released Lease before b took it: c's write carries a stale resourceVersion.
    seen = c._read(1.0)
    assert b.try_acquire()
    c._read = lambda timeout: seen  # type: ignore[method-assign]
    with pytest.raises(kopf.TemporaryError, match="conflict"):
        c.try_acquire()
    assert leases.spec is not None and leases.spec["holderIdentity"] == "b"


def test_a_leader_that_cannot_renew_gives_up(leases: FakeLeases) -> None:
    lost: list[str] = []
    a = elector("a", lost=lost)
    a.clock = leader.time.monotonic  # the renew deadline is real time here
    assert a.acquire(threading.Event())
    leases.failing = True
    a.start_renewing()
    assert a._renewer is not None
    a._renewer.join(10)
    assert lost and "no renewal" in lost[0]
    assert not a.leading


def test_a_leader_that_finds_another_holder_gives_up_at_once(leases: FakeLeases) -> None:
    lost: list[str] = []
    a = elector("a", lost=lost)
    a.clock = leader.time.monotonic
    assert a.acquire(threading.Event())
    assert leases.spec is not None
    leases.spec = leases.spec | {"holderIdentity": "b"}
    leases.version += 1
    a.start_renewing()
    assert a._renewer is not None
    a._renewer.join(10)
    assert lost == ["the Lease is held by 'b'"]


def test_a_renewing_leader_keeps_the_lease_and_releases_it_on_stop(leases: FakeLeases) -> None:
    lost: list[str] = []
    # A renew deadline no stall of a loaded machine reaches.
    a = elector("a", lost=lost, timing=leader_rules.Timing(60.0, 50.0, 0.02))
    a.clock = leader.time.monotonic
    assert a.acquire(threading.Event())
    first = leases.version
    a.start_renewing()
    deadline = leader.time.monotonic() + 30
    while leases.version < first + 2 and leader.time.monotonic() < deadline:
        threading.Event().wait(0.02)
    a.release()
    assert not lost
    assert leases.version > first + 1  # renewed, then released
    assert leases.spec is not None and leases.spec["holderIdentity"] == ""
    # A released Lease is taken at once, without waiting out its duration.
    assert elector("b").try_acquire()


def test_release_leaves_a_lease_that_someone_else_holds(leases: FakeLeases) -> None:
    a = elector("a")
    assert a.acquire(threading.Event())
    assert leases.spec is not None
    leases.spec = leases.spec | {"holderIdentity": "b"}
    a.release()
    assert leases.spec["holderIdentity"] == "b"


def test_a_stopped_standby_returns_without_leading(leases: FakeLeases) -> None:
    elector("a").acquire(threading.Event())
    stop = threading.Event()
    stop.set()
    b = elector("b")
    assert not b.acquire(stop)
    assert not b.leading
