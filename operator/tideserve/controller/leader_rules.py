"""Leader election decisions: pure functions of a Lease record, the local clock and our
identity (the client-go leaderelection pattern). The API calls live in tideserve/kube.py,
the loop that applies these decisions in controller/leader.py.

Expiry is judged by the *observer's* monotonic clock, never by comparing the Lease's
renewTime with our wall clock: a standby remembers when it last saw the record change and
takes over only after leaseDurationSeconds have passed on its own clock without a change.
Clock skew between nodes then cannot cause two leaders; only the leader's own promptness
in giving up matters, and it gives up after the (shorter) renew deadline.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

# client-go's defaults (and kube-controller-manager's): a standby takes over at most
# ~LEASE_DURATION + RETRY_PERIOD after the leader's last renewal; the leader stops
# itself after RENEW_DEADLINE without a successful renewal, well before that.
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0


@dataclasses.dataclass(frozen=True)
class Timing:
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD

    def __post_init__(self) -> None:
        # The gap between renew deadline and lease duration is the safety margin: the old
        # leader has stopped writing before any standby may consider the lease expired.
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")


@dataclasses.dataclass(frozen=True)
class Record:
    """The spec of a coordination.k8s.io/v1 Lease, as far as election cares."""

    holder: str = ""
    duration_seconds: int = int(LEASE_DURATION)
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0


@dataclasses.dataclass(frozen=True)
class Observed:
    """The last record we read and when (our monotonic clock) we saw it change."""

    record: Record | None
    since: float


class Action(enum.Enum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # we hold it
    TAKE_OVER = "take-over"  # released or expired
    WAIT = "wait"  # someone else holds it


def observe(previous: Observed | None, record: Record | None, now: float) -> Observed:
    """Remember `record`; the clock restarts only when the record changed (a renewal by the
    holder changes renewTime, so a live holder keeps restarting it)."""
    if previous is not None and previous.record == record:
        return previous
    return Observed(record, now)


def decide(observed: Observed, now: float, identity: str) -> Action:
    record = observed.record
    if record is None:
        return Action.CREATE
    if record.holder == identity:
        return Action.RENEW
    if not record.holder:
        return Action.TAKE_OVER  # released on a clean shutdown: no need to wait
    if now - observed.since > max(record.duration_seconds, 1):
        return Action.TAKE_OVER
    return Action.WAIT


def expired_in(observed: Observed, now: float) -> float:
    """Seconds until a holder's lease counts as expired for us (0 when it already has)."""
    if observed.record is None or not observed.record.holder:
        return 0.0
    return max(0.0, observed.since + max(observed.record.duration_seconds, 1) - now)


def should_give_up(last_renewed: float, now: float, timing: Timing) -> bool:
    """The leader stops when it has not renewed within the renew deadline: by then a
    standby may be about to take over (after lease_duration on its own clock)."""
    return now - last_renewed >= timing.renew_deadline


def micro_time(when: datetime.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_record(
    action: Action,
    current: Record | None,
    identity: str,
    timing: Timing,
    wall: datetime.datetime,
) -> Record:
    """The record to write for CREATE, RENEW or TAKE_OVER (never for WAIT)."""
    if action is Action.WAIT:
        raise ValueError("nothing to write while waiting")
    stamp = micro_time(wall)
    duration = max(1, round(timing.lease_duration))
    if action is Action.RENEW and current is not None:
        return dataclasses.replace(current, renew_time=stamp, duration_seconds=duration)
    transitions = 0 if current is None else current.transitions + 1
    return Record(identity, duration, stamp, stamp, transitions)


def released(current: Record, wall: datetime.datetime) -> Record:
    """What the leader writes on a clean shutdown: no holder, so a standby takes over on
    its next poll instead of waiting out the lease (client-go's ReleaseOnCancel)."""
    return dataclasses.replace(current, holder="", duration_seconds=1, renew_time=micro_time(wall))


def from_spec(spec: dict[str, object] | None) -> Record:
    spec = spec or {}
    return Record(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=_int(spec.get("leaseDurationSeconds"), int(LEASE_DURATION)),
        acquire_time=_str_or_none(spec.get("acquireTime")),
        renew_time=_str_or_none(spec.get("renewTime")),
        transitions=_int(spec.get("leaseTransitions"), 0),
    )


def to_spec(record: Record) -> dict[str, object]:
    spec: dict[str, object] = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.duration_seconds,
        "leaseTransitions": record.transitions,
    }
    if record.acquire_time is not None:
        spec["acquireTime"] = record.acquire_time
    if record.renew_time is not None:
        spec["renewTime"] = record.renew_time
    return spec


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
