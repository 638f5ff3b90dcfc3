"""One endpoint under one autoscaler, in simpy: metric path, controller, replica lifecycle.

simpy drives the control plane (Triton refreshes, scrapes, controller ticks, replicas
becoming Ready); the request path runs inside dataplane.DataPlane and is advanced to
simpy's clock before anything reads or changes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import simpy

from tideserve.sim import dataplane, models, pipeline


class Policy(Protocol):
    """An autoscaler under test. `decide` returns the replicas it asks for."""

    name: str
    tick_s: float
    needs_concurrency: bool
    activator_cap: int | None
    initial_replicas: int

    def decide(self, view: pipeline.View) -> int: ...


@dataclasses.dataclass
class Replica:
    rid: int
    requested_at: float
    ready_at: float | None = None
    removed_at: float | None = None


@dataclasses.dataclass(frozen=True)
class SimConfig:
    node_provision_s: float = 0.0
    pipeline: pipeline.PipelineConfig = dataclasses.field(default_factory=pipeline.PipelineConfig)
    max_replicas: int = 64


@dataclasses.dataclass
class EndpointRun:
    """Everything measured in one run of one endpoint."""

    duration_s: float
    plane: dataplane.DataPlane
    replicas: list[Replica]
    # (time, replicas asked for, ready) after each change; starts at t=0.
    timeline: list[tuple[float, int, int]]
    actions: int
    kinds: dict[str, int]


class Endpoint:
    def __init__(
        self,
        arrivals: npt.NDArray[np.float64],
        work: npt.NDArray[np.float64] | None,
        duration_s: float,
        model: models.ModelClass,
        slo: models.Slo,
        policy: Policy,
        config: SimConfig,
    ) -> None:
        self.env = simpy.Environment()
        self.duration_s = duration_s
        self.model = model
        self.policy = policy
        self.config = config
        self.cold_s = models.cold_start_s(model, config.node_provision_s)
        self.plane = dataplane.DataPlane(arrivals, work, model, slo, policy.activator_cap)
        self.series = pipeline.Series(config.pipeline)
        self.replicas: list[Replica] = []
        self.timeline: list[tuple[float, int, int]] = []
        self.actions = 0
        self.kinds: dict[str, int] = {}
        self._snapshot: pipeline.Sample | None = None
        self._active: dict[int, Replica] = {}

    # -- lifecycle -----------------------------------------------------------------------

    def active(self) -> list[Replica]:
        return list(self._active.values())

    def run(self) -> EndpointRun:
        # Same start state for every policy, the oracle included: nothing Ready at t=0.
        # A policy with a floor above zero (HPA's minReplicas 1) asks for it at t=0 and
        # waits a cold start like everyone else.
        self._record()
        if self.policy.initial_replicas > 0:
            self.scale_to(self.policy.initial_replicas)
        env, cfg = self.env, self.config.pipeline
        env.process(self._every(cfg.triton_interval_s, 0.0, self._triton))
        env.process(self._every(cfg.scrape_s, 0.5, self._scrape))
        if self.policy.needs_concurrency:
            env.process(self._every(cfg.concurrency_sample_s, 0.25, self._queue_proxy))
        env.process(self._every(self.policy.tick_s, 1.0, self._tick))
        env.run(until=self.duration_s)
        slo = self.plane.slo
        self.plane.finish_run(self.duration_s + slo.client_timeout_s + 60.0)
        for r in self.replicas:
            if r.removed_at is None and r.rid in self.plane.removed_at:
                r.removed_at = self.plane.removed_at[r.rid]
        return EndpointRun(
            self.duration_s, self.plane, self.replicas, self.timeline, self.actions, self.kinds
        )

    def _every(
        self, period: float, offset: float, fn: Any
    ) -> Generator[simpy.events.Event, Any, None]:
        yield self.env.timeout(offset)
        while True:
            fn()
            yield self.env.timeout(period)

    def _triton(self) -> None:
        now = self.env.now
        self.plane.advance(now)
        p = self.plane
        self._snapshot = pipeline.Sample(
            now, now, p.queued, p.cum_success, p.cum_queue_s, p.cum_busy_s, p.n_ready
        )

    def _scrape(self) -> None:
        if self._snapshot is not None:
            self.series.add_sample(dataclasses.replace(self._snapshot, scraped_at=self.env.now))

    def _queue_proxy(self) -> None:
        now = self.env.now
        self.plane.advance(now)
        self.series.add_concurrency(now, self.plane.concurrency)

    def _tick(self) -> None:
        now = self.env.now
        self.plane.advance(now)
        current = len(self._active)
        view = pipeline.View(now, current, self.plane.n_ready, self.plane.held, self.series)
        desired = max(0, min(self.config.max_replicas, self.policy.decide(view)))
        kind = getattr(self.policy, "last_kind", None)
        if isinstance(kind, str):
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if desired != current:
            self.actions += 1
            self.scale_to(desired)

    def scale_to(self, desired: int) -> None:
        now = self.env.now
        active = self.active()
        if desired > len(active):
            for _ in range(desired - len(active)):
                r = Replica(len(self.replicas), now)
                self.replicas.append(r)
                self._active[r.rid] = r
                self.env.process(self._start(r))
        else:
            # Kubernetes deletes not-ready pods first, then the newest; Triton drains.
            loading = [r for r in active if r.ready_at is None]
            ready = [r for r in active if r.ready_at is not None]
            idle = set(self.plane.idle)
            ready.sort(key=lambda r: (r.rid in idle, r.requested_at))
            victims = (loading[::-1] + ready[::-1])[: len(active) - desired]
            for r in victims:
                del self._active[r.rid]
                if r.ready_at is None:
                    r.removed_at = now
                else:
                    self.plane.remove_replica(r.rid, now)
        self._record()

    def _start(self, r: Replica) -> Generator[simpy.events.Event, Any, None]:
        yield self.env.timeout(self.cold_s)
        if r.rid not in self._active:
            return
        r.ready_at = self.env.now
        self.plane.add_replica(r.rid, self.env.now)
        self._record()

    def _record(self) -> None:
        self.timeline.append((self.env.now, len(self._active), self.plane.n_ready))
