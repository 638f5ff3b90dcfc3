"""KEDA, Knative KPA and fixed keep-alive, from their documented algorithms and defaults.

- KEDA (keda.sh ScaledObject spec; pkg/scaling/executor): every pollingInterval (30 s)
  the operator asks the scaler whether the workload is active (metric > activation
  threshold); inactive for cooldownPeriod (300 s) -> 0, active at 0 -> 1. Between 1 and
  N an HPA (15 s sync) scales on the External metric with an AverageValue target. The
  metric is the HTTP add-on's: requests in flight through its interceptor (queued +
  executing, and held at zero), so KEDA can wake from zero at all.
- Knative KPA (knative/serving pkg/autoscaler/scaling/autoscaler.go, config defaults):
  2 s tick; per-second concurrency averaged over a 60 s stable and a 6 s panic window;
  target = container-concurrency-target x 70 % utilization; panic when the panic
  window's demand reaches 200 % of ready capacity, and no scale-down while panicking
  (until 60 s calm); max scale-up rate 1000x, scale-down rate 2x per tick; to zero
  30 s (grace period) after the stable window saw nothing; activator buffers at zero.
- Fixed keep-alive (AWS Lambda / Azure Functions style): scale out at once to carry the
  concurrency, keep every instance for a fixed time after it was last needed.
"""

from __future__ import annotations

import collections
import dataclasses
import math

from tideserve.sim import hpa, pipeline

UNLIMITED = 1_000_000


class KedaPolicy:
    tick_s = 15.0
    needs_concurrency = True
    activator_cap: int | None = UNLIMITED
    initial_replicas = 0

    def __init__(
        self,
        target: float,
        max_replicas: int,
        polling_s: float = 30.0,
        cooldown_s: float = 300.0,
        activation: float = 0.0,
        down_s: float = 300.0,
    ) -> None:
        self.name = f"keda(c={target:g},cd={cooldown_s:g},down={down_s:g})"
        self.target, self.polling_s = target, polling_s
        self.cooldown_s, self.activation = cooldown_s, activation
        # The HPA KEDA creates: its scale-down stabilization is advanced.horizontal...
        # behavior in a ScaledObject, swept like the cooldown.
        down = dataclasses.replace(hpa.DEFAULT_DOWN, stabilization_s=down_s)
        self.hpa = hpa.Hpa(1, max_replicas, down=down)
        self.last_poll = -math.inf
        self.last_active = -math.inf

    def decide(self, view: pipeline.View) -> int:
        series = view.series.concurrency
        metric = float(series[-1][1]) if series else None
        if view.now - self.last_poll >= self.polling_s - 1e-9:
            self.last_poll = view.now
            active = metric is not None and metric > self.activation
            if active:
                self.last_active = view.now
            if view.current == 0:
                return 1 if active else 0
            if not active and view.now - self.last_active >= self.cooldown_s:
                return 0
        if view.current == 0:
            return 0
        desired = None
        if metric is not None:
            desired = hpa.external_per_pod_replicas(view.current, metric, self.target)
        return self.hpa.sync(view.now, view.current, desired)


class KpaPolicy:
    tick_s = 2.0
    needs_concurrency = True
    activator_cap: int | None = UNLIMITED
    initial_replicas = 0

    def __init__(
        self,
        concurrency_target: float,
        max_replicas: int,
        utilization: float = 0.7,
        stable_s: float = 60.0,
        panic_s: float = 6.0,
        panic_threshold: float = 2.0,
        grace_s: float = 30.0,
    ) -> None:
        self.name = f"kpa(c={concurrency_target:g},grace={grace_s:g})"
        self.target = concurrency_target * utilization
        self.max_replicas = max_replicas
        self.stable_s, self.panic_s = stable_s, panic_s
        self.panic_threshold, self.grace_s = panic_threshold, grace_s
        self.panic_since: float | None = None
        self.max_panic_pods = 0
        self.zero_since: float | None = None

    def decide(self, view: pipeline.View) -> int:
        now = view.now
        stable = view.series.mean_concurrency(now, self.stable_s)
        panic = view.series.mean_concurrency(now, self.panic_s)
        ready = max(1.0, float(view.ready))
        max_up = math.ceil(1000.0 * ready)
        max_down = math.floor(ready / 2.0)
        want_stable = min(max(math.ceil(stable / self.target), max_down), max_up)
        want_panic = min(max(math.ceil(panic / self.target), max_down), max_up)
        over = panic / ready / self.target >= self.panic_threshold
        if over:
            self.panic_since = now
        elif self.panic_since is not None and now - self.panic_since > self.stable_s:
            self.panic_since = None
            self.max_panic_pods = 0
        desired = want_stable
        if self.panic_since is not None:
            self.max_panic_pods = max(self.max_panic_pods, want_panic, view.current)
            desired = self.max_panic_pods
        if view.held > 0:
            desired = max(desired, 1)  # the activator's poke: wake on the first request
        if desired == 0 and view.current > 0:
            if self.zero_since is None:
                self.zero_since = now
            if now - self.zero_since < self.grace_s:
                return view.current
        else:
            self.zero_since = None
        return min(desired, self.max_replicas)


class KeepAlivePolicy:
    tick_s = 1.0
    needs_concurrency = True
    activator_cap: int | None = UNLIMITED
    initial_replicas = 0

    def __init__(self, keep_s: float, per_replica: float, max_replicas: int) -> None:
        self.name = f"keepalive({keep_s / 60:g}m)"
        self.keep_s, self.per_replica, self.max_replicas = keep_s, per_replica, max_replicas
        # Sliding-window maximum: (time, need) with needs strictly decreasing.
        self.window: collections.deque[tuple[float, int]] = collections.deque()

    def decide(self, view: pipeline.View) -> int:
        now = view.now
        # Concurrency counts the activator's held requests too (see DataPlane).
        conc = view.series.concurrency[-1][1] if view.series.concurrency else 0
        need = math.ceil(conc / self.per_replica)
        window = self.window
        while window and window[0][0] <= now - self.keep_s:
            window.popleft()
        if need > 0:
            while window and window[-1][1] <= need:
                window.pop()
            window.append((now, need))
        return min(self.max_replicas, window[0][1] if window else 0)
