"""The activator's pure core: what happens to a request for an endpoint, given its state.

Everything here is a function of plain data and an explicit clock, so the unit tests pin
the rules without sockets or sleeps. The shell (tideserve.activator.proxy) turns a
`Forward` into an upstream call, a `Refusal` into an HTTP (or gRPC) error and a held
`Ticket` into an awaitable that the queue resolves exactly once.

The rules, in the order `route` applies them:
1. A hard-off window (status.offUntil in the future) refuses at once: 503 with
   Retry-After = seconds until the window ends, and the end time in the body.
2. A ready endpoint (a ready replica AND Triton's per-model ready endpoint answered 200)
   with nobody already waiting is forwarded straight away. If requests are still held,
   a new one queues behind them so release keeps arrival order.
3. Otherwise the request is held, unless the endpoint already holds maxHeldRequests:
   then 429 with Retry-After.
4. A held request that is not released within wakeDeadlineSeconds gets 503 with
   Retry-After and the last known reason the endpoint is not ready.
5. A forward that fails before reaching a serving model (HTTP: the connection was refused;
   gRPC: UNAVAILABLE) is held again, within the deadline counted from its first arrival,
   at most MAX_REHOLDS times (`may_rehold`).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import math
from collections.abc import Iterator, Mapping

# Retry-After for a full queue: the queue drains as soon as the endpoint is ready, which is
# usually seconds away once a wake is under way, so ask clients to come back soon.
FULL_RETRY_AFTER_SECONDS = 5
# Retry-After after a wake deadline: the wake did not complete in the allowed time, so a
# retry is only useful once whatever blocked it (a node, an image) has had time to change.
DEADLINE_RETRY_AFTER_SECONDS = 30
# Re-holds per request after an upstream that went away: each one waits for the model to
# answer its ready probe again, so this only bounds a replica that passes the probe yet
# keeps failing calls (the client then gets the upstream's error, not a 15-minute wait).
MAX_REHOLDS = 3


@dataclasses.dataclass(frozen=True, order=True)
class EndpointKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> EndpointKey:
        """`namespace/name` -> key; raises ValueError on anything else."""
        namespace, sep, name = text.strip().partition("/")
        if not sep or not namespace or not name or "/" in name:
            raise ValueError(f"expected namespace/name, got {text!r}")
        return cls(namespace, name)


@dataclasses.dataclass(frozen=True)
class EndpointState:
    """What the activator knows about one InferenceService (from its spec and status)."""

    key: EndpointKey
    model: str
    ready_replicas: int = 0
    off_until: datetime.datetime | None = None
    max_held_requests: int = 1000
    wake_deadline_seconds: float = 900.0
    # Last known reason it is not ready (a Progressing/Ready condition message), quoted in
    # the deadline error so a user sees "waiting for a GPU node", not just "timeout".
    message: str = ""

    def off(self, now: datetime.datetime) -> bool:
        return self.off_until is not None and self.off_until > now


@dataclasses.dataclass(frozen=True)
class Forward:
    """Send the request to the endpoint's upstream now."""


@dataclasses.dataclass(frozen=True)
class Hold:
    """Queue the request until the endpoint is ready (or its deadline passes)."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Answer the request with an error instead of forwarding it."""

    status: int
    retry_after_seconds: int
    error: str
    details: Mapping[str, str | int | float] = dataclasses.field(default_factory=dict)

    def body(self) -> dict[str, str | int | float]:
        return {"error": self.error, **self.details}

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


Decision = Forward | Hold | Refusal


def route(
    state: EndpointState, *, now: datetime.datetime, held: int, model_ready: bool
) -> Decision:
    """Decide what to do with a request that just arrived for `state.key`."""
    if state.off(now):
        return off_refusal(state, now)
    if passes_through(state, held=held, model_ready=model_ready):
        return Forward()
    if held >= state.max_held_requests:
        return Refusal(
            status=429,
            retry_after_seconds=FULL_RETRY_AFTER_SECONDS,
            error=f"endpoint {state.key} is waking up and already holds "
            f"{held} requests (maxHeldRequests {state.max_held_requests}); retry later",
            details={"held": held, "maxHeldRequests": state.max_held_requests},
        )
    return Hold()


def passes_through(state: EndpointState, *, held: int, model_ready: bool) -> bool:
    """Rule 2 (outside an off window): a ready model and nobody queued ahead."""
    return state.ready_replicas > 0 and model_ready and held == 0


def off_refusal(state: EndpointState, now: datetime.datetime) -> Refusal:
    assert state.off_until is not None
    remaining = (state.off_until - now).total_seconds()
    until = state.off_until.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    return Refusal(
        status=503,
        retry_after_seconds=max(1, math.ceil(remaining)),
        error=f"endpoint {state.key} is off by schedule until {until}",
        details={"offUntil": until},
    )


def deadline_refusal(state: EndpointState, waited_seconds: float) -> Refusal:
    reason = state.message or (
        "no ready replica" if state.ready_replicas == 0 else f"model {state.model} not ready"
    )
    return Refusal(
        status=503,
        retry_after_seconds=DEADLINE_RETRY_AFTER_SECONDS,
        error=f"endpoint {state.key} did not become ready within "
        f"{state.wake_deadline_seconds:g} s: {reason}",
        details={"waitedSeconds": round(waited_seconds, 3)},
    )


def gone_refusal(key: EndpointKey) -> Refusal:
    """The InferenceService was deleted while requests were held for it."""
    return Refusal(
        status=503,
        retry_after_seconds=DEADLINE_RETRY_AFTER_SECONDS,
        error=f"endpoint {key} was deleted while the request was held",
    )


def unknown_refusal(key: EndpointKey) -> Refusal:
    return Refusal(
        status=404,
        retry_after_seconds=DEADLINE_RETRY_AFTER_SECONDS,
        error=f"no InferenceService {key} (or not watched by this activator)",
    )


def may_rehold(*, reholds: int, arrived: float, now: float, deadline_seconds: float) -> bool:
    """A forward that failed before reaching a serving model (the replica went away between
    the ready check and the forward) may be held again: within the wake deadline counted
    from the request's first arrival (a re-hold never extends it), and at most MAX_REHOLDS
    times."""
    return reholds < MAX_REHOLDS and now < arrived + deadline_seconds


def probe_delay(attempt: int, *, base: float = 0.02, cap: float = 0.1) -> float:
    """Seconds between model-ready probes while requests may be waiting: fast at first (a
    ready replica usually has its model loaded already), then capped low, because a probe
    is one cheap GET and every interval of delay is added to every held request's wait."""
    return float(min(cap, base * (2 ** min(attempt, 16))))


@dataclasses.dataclass(frozen=True)
class Ticket:
    """One held request. `seq` is its arrival number within its endpoint."""

    seq: int
    arrived: float
    deadline: float

    def remaining(self, now: float) -> float:
        return max(0.0, self.deadline - now)


class HeldQueue:
    """Bounded FIFO of held requests for one endpoint.

    Mutable on purpose: a wake can hold up to 100,000 requests and copying a tuple per
    arrival would be quadratic. It is still deterministic: the clock is an argument, and
    every ticket leaves exactly once, through `release`, `discard` or `drain`.
    """

    def __init__(self) -> None:
        self._tickets: collections.OrderedDict[int, Ticket] = collections.OrderedDict()
        self._next_seq = 0
        # When the current wake episode began (its first held request), for the cold-start
        # histogram; None when nothing has been held since the last release.
        self.episode_started: float | None = None

    def __len__(self) -> int:
        return len(self._tickets)

    def __iter__(self) -> Iterator[Ticket]:
        return iter(self._tickets.values())

    def admit(self, now: float, deadline_seconds: float, arrived: float | None = None) -> Ticket:
        """A new ticket at the back of the queue. `arrived` (default now) is when the request
        first reached the activator: a re-held request keeps its original deadline."""
        start = now if arrived is None else arrived
        ticket = Ticket(self._next_seq, start, start + deadline_seconds)
        self._next_seq += 1
        self._tickets[ticket.seq] = ticket
        if self.episode_started is None:
            self.episode_started = now
        return ticket

    def oldest_age(self, now: float) -> float:
        if not self._tickets:
            return 0.0
        return max(0.0, now - next(iter(self._tickets.values())).arrived)

    def release(self, now: float) -> tuple[list[Ticket], float | None]:
        """All held tickets in arrival order, and the cold-start seconds of this wake
        episode (first held request -> now, the first forward); the queue is then empty."""
        cold_start = None if self.episode_started is None else max(0.0, now - self.episode_started)
        tickets = list(self._tickets.values())
        self._tickets.clear()
        self.episode_started = None
        return tickets, cold_start

    def drain(self) -> list[Ticket]:
        """All held tickets, to be refused (off window opened, endpoint deleted)."""
        tickets = list(self._tickets.values())
        self._tickets.clear()
        self.episode_started = None
        return tickets

    def discard(self, ticket: Ticket) -> bool:
        """Remove one ticket (deadline passed, client gone). False if it had already left,
        in which case whoever took it out owns its answer."""
        found = self._tickets.pop(ticket.seq, None) is not None
        if not self._tickets:
            # Nobody waits any more: a later request starts a new wake episode.
            self.episode_started = None
        return found

    def expired(self, now: float) -> list[Ticket]:
        """Tickets whose deadline has passed, removed from the queue, oldest first."""
        gone = [t for t in self._tickets.values() if t.deadline <= now]
        for ticket in gone:
            del self._tickets[ticket.seq]
        if not self._tickets:
            self.episode_started = None
        return gone
