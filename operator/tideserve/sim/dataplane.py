"""Requests through replicas: one FIFO queue, dynamic batching, timeouts, an activator.

This is the hot loop of the simulator, so it is an exact event loop over *batches*
rather than a simpy process per request: arrivals are a sorted array consumed lazily,
and the loop only stops where something happens (a replica frees up, or an idle
replica gets work). The control plane (simpy, in endpoint.py) calls `advance(now)`
before it looks or acts, so both sides see one consistent clock.

Every arrival ends exactly once: SERVED (met the SLO or not, see `met`), TIMED_OUT
(waited past the client timeout, in Triton's queue or in the activator) or REFUSED
(no ready replica and no room in the activator).
"""

from __future__ import annotations

import collections
import heapq
import math

import numpy as np
import numpy.typing as npt

from tideserve.sim import models

PENDING, SERVED, TIMED_OUT, REFUSED = 0, 1, 2, 3
INF = math.inf


class DataPlane:
    """One endpoint's request path. Replicas are opaque integer ids given by the caller."""

    def __init__(
        self,
        arrivals: npt.NDArray[np.float64],
        work: npt.NDArray[np.float64] | None,
        model: models.ModelClass,
        slo: models.Slo,
        activator_cap: int | None,
    ) -> None:
        self.arr: list[float] = arrivals.tolist()
        self.work: list[float] | None = None if work is None else work.tolist()
        self.n = len(self.arr)
        self.model = model
        self.slo = slo
        # None: no activator, requests at zero are refused.
        self.activator_cap = activator_cap
        self.t = 0.0
        self.next = 0  # first arrival not yet in the queue
        self.queue: collections.deque[int] = collections.deque()
        self.idle: list[int] = []
        self.busy: list[tuple[float, int, int, float]] = []  # (free_at, rid, size, waits)
        self.draining: set[int] = set()
        self.removed_at: dict[int, float] = {}
        self.n_ready = 0
        self.inflight = 0
        # Triton's counters: nv_inference_request_success, nv_inference_queue_duration_us.
        self.cum_success = 0
        self.cum_queue_s = 0.0
        # Busy time summed over replicas: what nv_gpu_utilization / DCGM integrate.
        self.cum_busy_s = 0.0
        self.outcome = bytearray(self.n)
        self.start = np.full(self.n, np.nan)
        self.finish = np.full(self.n, np.nan)
        self.at_zero = bytearray(self.n)  # arrived with no ready replica (hit a cold start)

    # -- what the metrics pipeline reads ------------------------------------------------

    @property
    def queued(self) -> int:
        """Requests inside Triton's queue (0 when no replica is ready: they are held)."""
        return len(self.queue) if self.n_ready else 0

    @property
    def held(self) -> int:
        """Requests the activator holds while no replica is ready."""
        return 0 if self.n_ready else len(self.queue)

    @property
    def concurrency(self) -> int:
        """Requests in the system, as Knative's queue-proxy and activator count them."""
        return len(self.queue) + self.inflight

    # -- control plane -------------------------------------------------------------------

    def add_replica(self, rid: int, now: float) -> None:
        self.advance(now)
        self.idle.append(rid)
        self.n_ready += 1

    def remove_replica(self, rid: int, now: float) -> None:
        """Take a ready replica out of rotation; a busy one finishes its batch first."""
        self.advance(now)
        self.n_ready -= 1
        if rid in self.idle:
            self.idle.remove(rid)
            self.removed_at[rid] = now
        else:
            self.draining.add(rid)
        if self.n_ready == 0 and self.activator_cap is None:
            self._refuse_queue()

    def advance(self, until: float) -> None:
        """Run the request path up to `until` with the current replicas."""
        if until < self.t:
            return
        arr, busy, idle, queue = self.arr, self.busy, self.idle, self.queue
        model = self.model
        b_max, delay = model.max_batch, model.max_queue_delay_s
        while True:
            t_busy = busy[0][0] if busy else INF
            t_idle = INF
            if idle:
                if queue:
                    head_t, qlen = arr[queue[0]], len(queue)
                elif self.next < self.n:
                    head_t, qlen = arr[self.next], 0
                else:
                    head_t, qlen = INF, 0
                if head_t < INF:
                    if delay > 0.0 and qlen < b_max:
                        j = self.next + (b_max - qlen) - 1
                        full_t = arr[j] if j < self.n else INF
                        t_idle = max(self.t, min(head_t + delay, full_t))
                    else:
                        t_idle = max(self.t, head_t)
            if t_busy <= t_idle:
                if t_busy > until:
                    break
                self._complete(heapq.heappop(busy))
            else:
                if t_idle > until:
                    break
                self._start_batch(t_idle)
        self.t = until
        self._enqueue(until)
        self._expire(until)

    def finish_run(self, horizon: float) -> None:
        """Serve what can be served by `horizon`, then close every open request."""
        self.advance(horizon)
        while self.queue:
            i = self.queue.popleft()
            self.outcome[i] = TIMED_OUT
        for i in range(self.next, self.n):
            self.outcome[i] = REFUSED
        self.next = self.n

    # -- internals ---------------------------------------------------------------------

    def _complete(self, item: tuple[float, int, int, float]) -> None:
        free_at, rid, size, waits = item
        self.t = free_at
        self.inflight -= size
        self.cum_success += size
        self.cum_queue_s += waits
        if rid in self.draining:
            self.draining.discard(rid)
            self.removed_at[rid] = free_at
        else:
            self.idle.append(rid)

    def _start_batch(self, now: float) -> None:
        self.t = now
        self._enqueue(now)
        self._expire(now)
        queue = self.queue
        if not queue:
            return
        k = min(self.model.max_batch, len(queue))
        idx = [queue.popleft() for _ in range(k)]
        work = float(k) if self.work is None else sum(self.work[i] for i in idx)
        done = now + self.model.batch_seconds(work)
        arr = self.arr
        waits = 0.0
        timeout = self.slo.client_timeout_s
        for i in idx:
            waits += now - arr[i]
            # The client stops waiting at its timeout even if Triton is still working.
            self.outcome[i] = SERVED if done - arr[i] <= timeout else TIMED_OUT
        self.start[idx] = now
        self.finish[idx] = done
        self.inflight += k
        rid = self.idle.pop()
        self.cum_busy_s += done - now
        heapq.heappush(self.busy, (done, rid, k, waits))

    def _enqueue(self, now: float) -> None:
        """Move arrivals up to `now` into the queue (or the activator, or refuse them)."""
        arr = self.arr
        j = self.next
        if j >= self.n or arr[j] > now:
            return
        end = j
        # Bisect by hand on the list: cheaper than numpy for the short hops we make.
        hi = self.n
        lo = j
        while lo < hi:
            mid = (lo + hi) // 2
            if arr[mid] <= now:
                lo = mid + 1
            else:
                hi = mid
        end = lo
        if self.n_ready:
            self.queue.extend(range(j, end))
        elif self.activator_cap is None:
            for i in range(j, end):
                self.outcome[i] = REFUSED
                self.at_zero[i] = 1
        else:
            cap, queue, timeout = self.activator_cap, self.queue, self.slo.client_timeout_s
            for i in range(j, end):
                self.at_zero[i] = 1
                while queue and arr[queue[0]] < arr[i] - timeout:
                    self.outcome[queue.popleft()] = TIMED_OUT
                if len(queue) >= cap:
                    self.outcome[i] = REFUSED
                else:
                    queue.append(i)
        self.next = end

    def _expire(self, now: float) -> None:
        queue, arr, limit = self.queue, self.arr, now - self.slo.client_timeout_s
        while queue and arr[queue[0]] < limit:
            self.outcome[queue.popleft()] = TIMED_OUT

    def _refuse_queue(self) -> None:
        while self.queue:
            self.outcome[self.queue.popleft()] = REFUSED


def met_slo(plane: DataPlane, arrivals: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Per request: served within the queue-wait and end-to-end objectives."""
    served = np.frombuffer(bytes(plane.outcome), dtype=np.uint8) == SERVED
    wait = plane.start - arrivals
    e2e = plane.finish - arrivals
    with np.errstate(invalid="ignore"):
        ok = (wait <= plane.slo.queue_wait_s + 1e-9) & (e2e <= plane.slo.e2e_s + 1e-9)
    result: npt.NDArray[np.bool_] = served & ok
    return result
