"""The policy's plain data: what it reads per tick, what it answers, what it remembers.

Kept apart from policy.py so the steps of a decision (policy, recommend) share the
types without importing each other; policy re-exports them (policy.Signals, ...).
"""

from __future__ import annotations

import dataclasses
import datetime

from tideserve.autoscaler import demand as demand_lib
from tideserve.autoscaler import learned, limits
from tideserve.autoscaler import profile as profile_lib


@dataclasses.dataclass(frozen=True)
class Signals:
    pending: float | None  # queued requests summed over replicas (+ activator held)
    queue_time_s: float | None  # mean queue time per request over the rate window
    request_rate: float | None  # successful requests/s over the rate window
    held: int  # requests held by the activator
    age_s: float  # staleness of the freshest sample


@dataclasses.dataclass(frozen=True)
class Decision:
    desired: int
    reason: str  # in words, with the numbers: "queue 37 > 4/replica x 3 -> 10"
    kind: str  # ScaleUp ScaleDown Panic Idle Wake Schedule Hold Stable External
    window: str | None = None  # schedule window in force (status.activeSchedule)
    off_until: datetime.datetime | None = None  # end of a hard-off window (status.offUntil)


@dataclasses.dataclass(frozen=True)
class PolicyState:
    """What one endpoint's policy remembers between ticks. `PolicyState()` to start."""

    started: datetime.datetime | None = None
    needs: tuple[tuple[datetime.datetime, float], ...] = ()  # per-tick demand, replicas
    recommendations: tuple[limits.Recommendation, ...] = ()
    events: tuple[limits.ScaleEvent, ...] = ()
    last_active: datetime.datetime | None = None  # last tick with traffic, pending or held
    panic_since: datetime.datetime | None = None
    panic_triggered: datetime.datetime | None = None  # last tick that met the threshold
    capacity: demand_lib.Capacity = dataclasses.field(default_factory=demand_lib.Capacity)
    ready: int | None = None
    ready_since: datetime.datetime | None = None
    last_pending: tuple[datetime.datetime, float] | None = None
    observed: learned.Observed = dataclasses.field(default_factory=learned.Observed)
    counter: profile_lib.Counter = dataclasses.field(default_factory=profile_lib.Counter)
    prewarmed_at: datetime.datetime | None = None  # last wake the profile asked for
