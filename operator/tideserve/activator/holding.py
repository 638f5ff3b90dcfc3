"""The async shell around the held queues: endpoint state in, one answer per request out.

One `Activator` per process, used from the event loop thread only (the watch thread hands
it updates with `loop.call_soon_threadsafe`). Each held request waits on a future that is
resolved exactly once: by a release (forward), an off window or deletion (refusal), or
by its own deadline, whichever comes first; the queue's `discard` decides races.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tideserve.activator import metrics as metrics_mod
from tideserve.activator import queueing

log = logging.getLogger(__name__)

# probe(key, model) -> True when Triton's /v2/models/<model>/ready answers 200.
Probe = Callable[[queueing.EndpointState], Awaitable[bool]]


@dataclasses.dataclass(frozen=True)
class Released:
    """A held request may go now; its ticket tells how long it waited and its place."""

    ticket: queueing.Ticket
    forward_seq: int
    held_seconds: float


Outcome = queueing.Forward | Released | queueing.Refusal

FORWARD = queueing.Forward()
# Retry-After 1: another activator pod (or this endpoint's replica, once ready) answers.
SHUTTING_DOWN = queueing.Refusal(503, 1, "activator is shutting down; retry")
DRAINING = queueing.Refusal(503, 1, "activator is shutting down and holds no new requests; retry")


@dataclasses.dataclass
class Endpoint:
    state: queueing.EndpointState
    queue: queueing.HeldQueue = dataclasses.field(default_factory=queueing.HeldQueue)
    waiters: dict[int, asyncio.Future[Outcome]] = dataclasses.field(default_factory=dict)
    # True once Triton's per-model ready endpoint answered 200 since the endpoint last had
    # a ready replica; only then does traffic pass straight through.
    model_ready: bool = False
    prober: asyncio.Task[None] | None = None
    forwarded: int = 0


def _wall() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Activator:
    def __init__(
        self,
        probe: Probe,
        metrics: metrics_mod.Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = _wall,
    ) -> None:
        self._probe = probe
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        self.endpoints: dict[queueing.EndpointKey, Endpoint] = {}
        self.synced = asyncio.Event()
        # Draining (SIGTERM): held requests still go out when a replica becomes ready, but
        # no new request is held here; `close` then answers whatever is left.
        self.draining = False
        self._drained = asyncio.Event()  # set once draining and nothing is held
        self._closing = False

    # ---- state from the watch -------------------------------------------------------

    def replace(self, states: Iterable[queueing.EndpointState], namespace: str | None) -> None:
        """A full listing (of one namespace, or of all when namespace is None)."""
        fresh = {s.key: s for s in states}
        for key in list(self.endpoints):
            if key not in fresh and (namespace is None or key.namespace == namespace):
                self.remove(key)
        for state in fresh.values():
            self.upsert(state)
        self.synced.set()

    def upsert(self, state: queueing.EndpointState) -> None:
        endpoint = self.endpoints.get(state.key)
        if endpoint is None:
            endpoint = self.endpoints[state.key] = Endpoint(state)
            self._export_zeros(state.key)
        previous, endpoint.state = endpoint.state, state
        self._metrics.max_held.labels(state.key.namespace, state.key.name).set(
            state.max_held_requests
        )
        if state.ready_replicas == 0 or state.model != previous.model:
            endpoint.model_ready = False
        if state.off(self._wall()):
            self._refuse_all(endpoint, queueing.off_refusal(state, self._wall()))
        self._ensure_prober(endpoint)

    def remove(self, key: queueing.EndpointKey) -> None:
        endpoint = self.endpoints.pop(key, None)
        if endpoint is None:
            return
        if endpoint.prober:
            endpoint.prober.cancel()
        self._refuse_all(endpoint, queueing.gone_refusal(key))
        # The gauge child may never have been created (nothing was ever held).
        for gauge in (self._metrics.held, self._metrics.max_held):
            with contextlib.suppress(KeyError):
                gauge.remove(key.namespace, key.name)

    # ---- requests -------------------------------------------------------------------

    def now(self) -> float:
        """The clock tickets are stamped with (arrival times passed back to `admit`)."""
        return self._clock()

    async def admit(self, key: queueing.EndpointKey, *, arrived: float | None = None) -> Outcome:
        """Forward now, wait and then forward, or refuse; never waits past the deadline.
        `arrived` (from `now()`): when a re-held request first arrived; its deadline counts
        from then."""
        endpoint = self.endpoints.get(key)
        if endpoint is None:
            if not self.synced.is_set() and not self._closing:
                return queueing.Refusal(503, 1, "activator is starting: endpoints not listed yet")
            return queueing.unknown_refusal(key)
        if self._closing:
            return SHUTTING_DOWN
        state = endpoint.state
        if state.off_until is None and queueing.passes_through(
            state, held=len(endpoint.queue), model_ready=endpoint.model_ready
        ):
            # What `route` answers here, without building a datetime for a window that
            # is not set: this is every pass-through request's path.
            return FORWARD
        decision = queueing.route(
            endpoint.state,
            now=self._wall(),
            held=len(endpoint.queue),
            model_ready=endpoint.model_ready,
        )
        if not isinstance(decision, queueing.Hold):
            return decision
        if self.draining and arrived is None:
            # A new request would wait on a pod that is going away: another activator pod
            # holds it with a full deadline. (A re-hold is a request already accepted.)
            return DRAINING
        ticket = endpoint.queue.admit(
            self._clock(), endpoint.state.wake_deadline_seconds, arrived=arrived
        )
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        endpoint.waiters[ticket.seq] = future
        self._set_gauge(endpoint)
        self._ensure_prober(endpoint)
        try:
            return await asyncio.wait_for(
                asyncio.shield(future), timeout=ticket.remaining(self._clock())
            )
        except TimeoutError:
            if endpoint.queue.discard(ticket):
                endpoint.waiters.pop(ticket.seq, None)
                self._set_gauge(endpoint)
                waited = self._clock() - ticket.arrived
                self._hold(endpoint, "expired").observe(waited)
                return queueing.deadline_refusal(endpoint.state, waited)
            # Released (or refused) in the same instant: that answer stands.
            return future.result()
        except asyncio.CancelledError:
            # The client went away: free its place so it neither counts nor blocks.
            if endpoint.queue.discard(ticket):
                endpoint.waiters.pop(ticket.seq, None)
                self._set_gauge(endpoint)
            raise

    def upstream_failed(self, key: queueing.EndpointKey, *, arrived: float, reholds: int) -> bool:
        """A forward failed before reaching a serving model (refused connection, gRPC
        UNAVAILABLE): stop passing traffic through until the model answers its ready probe
        again (a replica that went away, a stale status). True when the request may be held
        again (queueing.may_rehold); the caller then calls `admit` with `arrived`."""
        endpoint = self.endpoints.get(key)
        if endpoint is None:
            return False
        if endpoint.model_ready:
            endpoint.model_ready = False
            self._ensure_prober(endpoint)
        return queueing.may_rehold(
            reholds=reholds,
            arrived=arrived,
            now=self._clock(),
            deadline_seconds=endpoint.state.wake_deadline_seconds,
        )

    def demand(self) -> list[dict[str, str | int | float]]:
        now = self._clock()
        return [
            {
                "namespace": key.namespace,
                "name": key.name,
                "held": len(endpoint.queue),
                "oldestHeldSeconds": round(endpoint.queue.oldest_age(now), 3),
            }
            for key, endpoint in sorted(self.endpoints.items())
            if len(endpoint.queue)
        ]

    def describe(self) -> list[dict[str, object]]:
        """What the activator knows about each endpoint (GET /endpoints, for debugging)."""
        return [
            {
                "namespace": key.namespace,
                "name": key.name,
                "model": e.state.model,
                "readyReplicas": e.state.ready_replicas,
                "modelReady": e.model_ready,
                "offUntil": e.state.off_until.isoformat() if e.state.off_until else None,
                "maxHeldRequests": e.state.max_held_requests,
                "wakeDeadlineSeconds": e.state.wake_deadline_seconds,
                "held": len(e.queue),
                "message": e.state.message,
            }
            for key, e in sorted(self.endpoints.items())
        ]

    def held(self) -> int:
        """Requests held for all endpoints together."""
        return sum(len(e.queue) for e in self.endpoints.values())

    def drain(self) -> None:
        """SIGTERM: hold nothing new; what is held still goes out if a replica becomes ready."""
        self.draining = True
        if not self.held():
            self._drained.set()

    async def drained(self) -> None:
        """After `drain`: returns once nothing is held (the caller bounds the wait)."""
        await self._drained.wait()

    def close(self) -> None:
        """Shutting down: every held request gets a retryable 503 now, not a reset later."""
        self.draining = self._closing = True
        for endpoint in self.endpoints.values():
            if endpoint.prober:
                endpoint.prober.cancel()
            self._refuse_all(endpoint, SHUTTING_DOWN)

    # ---- waking ---------------------------------------------------------------------

    def _ensure_prober(self, endpoint: Endpoint) -> None:
        wanted = (
            endpoint.state.ready_replicas > 0 and not endpoint.model_ready and not self._closing
        )
        if wanted and (endpoint.prober is None or endpoint.prober.done()):
            endpoint.prober = asyncio.get_running_loop().create_task(self._wake(endpoint))
        elif endpoint.model_ready and len(endpoint.queue):
            self._release(endpoint)

    async def _wake(self, endpoint: Endpoint) -> None:
        """Probe the model until it is ready, then release everything held, in order.
        Runs once when a replica becomes ready (so the first request usually finds the
        model verified already), and for as long as requests are held."""
        attempt = 0
        while endpoint.state.ready_replicas > 0 and not endpoint.model_ready:
            try:
                ready = await self._probe(endpoint.state)
            except Exception as error:  # a probe failure is "not ready yet", never fatal
                log.debug("ready probe of %s failed: %s", endpoint.state.key, error)
                ready = False
            if ready:
                endpoint.model_ready = True
                break
            if not len(endpoint.queue):
                # Nobody waits: stop here rather than poll every endpoint forever; the
                # next request for it starts probing again.
                return
            await asyncio.sleep(queueing.probe_delay(attempt))
            attempt += 1
        if endpoint.model_ready and self.endpoints.get(endpoint.state.key) is endpoint:
            self._release(endpoint)

    def _release(self, endpoint: Endpoint) -> None:
        now = self._clock()
        tickets, cold_start = endpoint.queue.release(now)
        if cold_start is not None and tickets:
            key = endpoint.state.key
            self._metrics.cold_start.labels(key.namespace, key.name).observe(cold_start)
            log.info(
                "%s ready: releasing %d held requests, cold start %.3f s",
                key,
                len(tickets),
                cold_start,
            )
        # Resolving in arrival order schedules the waiting handlers in that order, so they
        # reach the upstream connection pool in arrival order too.
        hold = self._hold(endpoint, "forwarded")
        for ticket in tickets:
            future = endpoint.waiters.pop(ticket.seq)
            endpoint.forwarded += 1
            hold.observe(now - ticket.arrived)
            if not future.done():
                future.set_result(Released(ticket, endpoint.forwarded, now - ticket.arrived))
        self._set_gauge(endpoint)

    def _refuse_all(self, endpoint: Endpoint, refusal: queueing.Refusal) -> None:
        hold, now = self._hold(endpoint, "refused"), self._clock()
        for ticket in endpoint.queue.drain():
            future = endpoint.waiters.pop(ticket.seq)
            hold.observe(now - ticket.arrived)
            if not future.done():
                future.set_result(refusal)
        self._set_gauge(endpoint)

    def _export_zeros(self, key: queueing.EndpointKey) -> None:
        """Create the endpoint's counters at 0 before anything happens: Prometheus sees a
        series that appears at 20 as no increase at all (the first wake, the first 429s
        and held requests would be lost to rate() and increase())."""
        for outcome in ("forwarded", "expired", "refused"):
            self._metrics.hold.labels(key.namespace, key.name, outcome)
        self._metrics.cold_start.labels(key.namespace, key.name)
        self._metrics.requests.labels(key.namespace, key.name, "429")

    def _hold(self, endpoint: Endpoint, outcome: str) -> Any:
        """The hold-time histogram child for an endpoint and outcome (SLO attainment)."""
        key = endpoint.state.key
        return self._metrics.hold.labels(key.namespace, key.name, outcome)

    def _set_gauge(self, endpoint: Endpoint) -> None:
        key = endpoint.state.key
        self._metrics.held.labels(key.namespace, key.name).set(len(endpoint.queue))
        if self.draining and not len(endpoint.queue) and not self.held():
            self._drained.set()
