"""The autoscaler: ONE asyncio loop over all endpoints inside the operator process.

Every tick: list the InferenceServices and their predictor Deployments (one list call
each), read the signals once for all endpoints, decide per endpoint (pure policy, in a
worker thread so a thousand decisions never stall kopf's event loop), then patch the
replicas that change, post an Event per scale and write the status fields that change.
Policy state lives in memory, one frozen `Record` per endpoint that the pure `decide`
takes and returns; what it learned of an endpoint (capacity, cold starts,
idle gaps) is also kept in status.learned (learned_status: at most once a minute, on
change) and restored on the first sight of the endpoint, so a restart or a failover
keeps the derived target, scale-down window and idle period. The rest restarts
conservatively (no scale down on the first ticks, idle timers restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pydantic

from tideserve import prometheus
from tideserve import settings as settings_mod
from tideserve.api import resource
from tideserve.api import spec as spec_api
from tideserve.autoscaler import actuation, learned_status, metrics, policy, report, signals, slo

log = logging.getLogger("tideserve.autoscaler")

Key = tuple[str, str]
WRITE_CONCURRENCY = 16


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One endpoint as read this tick."""

    key: Key
    body: dict[str, Any]
    spec: spec_api.InferenceServiceSpec
    current: int
    ready: int


@dataclasses.dataclass(frozen=True)
class Action:
    """What one endpoint's decision asks the API for."""

    endpoint: Endpoint
    decision: policy.Decision
    scale: bool
    status: dict[str, Any] | None
    relearn: bool = False  # the model, runtime or hardware changed: learning again
    warning: str | None = None  # a Warning Event (reason DecisionFailed) with this message


@dataclasses.dataclass(frozen=True)
class Record:
    """What the loop carries for one endpoint from one tick to the next: passed in to
    `decide` and returned by it, never edited in place."""

    state: policy.PolicyState
    # learned_status.basis_of(spec, accelerator), with the spec object and accelerator it
    # was computed for (recomputed only when either changed).
    basis: tuple[object, str | None, str]
    # status.learned as last written (or restored), and when.
    learned: learned_status.Written | None
    # When a stale status.learned (a CRD that prunes it) was last written again.
    learned_tried: datetime.datetime | None = None
    # status.learned of the last figures: (spec, figures, shown), recomputed on change.
    snapshot: tuple[object, tuple[object, ...], dict[str, Any] | None] | None = None
    # status.lastScaling of this process's last scale.
    last_scaling: dict[str, Any] | None = None
    # SLO attainment: the last hour of counted intervals (tideserve.autoscaler.slo).
    slo: slo.Ledger | None = None


@dataclasses.dataclass
class TickReport:
    endpoints: int = 0
    scaled: int = 0
    status_writes: int = 0
    failures: int = 0
    prometheus_ok: bool = True
    seconds: float = 0.0
    phases: dict[str, float] = dataclasses.field(default_factory=dict)


def _spec(body: dict[str, Any]) -> spec_api.InferenceServiceSpec | None:
    try:
        return resource.parse_spec(body.get("spec") or {})
    except pydantic.ValidationError:
        return None  # the reconciler reports it (SpecValid=False); nothing to scale


def signals_of(
    key: Key,
    table: dict[Key, policy.Signals] | None,
    fallback: dict[Key, policy.Signals] | None,
) -> policy.Signals | None:
    """One endpoint's signals this tick: from Prometheus' table (no series: NO_SERIES),
    or, with Prometheus down (table None), the activator's held count alone."""
    if table is not None:
        return table.get(key, signals.NO_SERIES)
    return (fallback or {}).get(key)


def _basis(
    record: Record | None, spec: spec_api.InferenceServiceSpec, accelerator: str | None
) -> str:
    """learned_status.basis_of, recomputed only when the spec or accelerator changed."""
    if record is not None and record.basis[0] is spec and record.basis[1] == accelerator:
        return record.basis[2]
    return learned_status.basis_of(spec, accelerator)


def _snapshot(
    record: Record,
    spec: spec_api.InferenceServiceSpec,
    state: policy.PolicyState,
    basis: str,
) -> tuple[tuple[object, tuple[object, ...], dict[str, Any] | None], dict[str, Any] | None]:
    """(cache entry, status.learned) for this state, recomputed only when the figures or
    the spec changed (~30 us per endpoint otherwise, every tick; specs are cached objects)."""
    capacity, observed = state.capacity, state.observed
    figures = (capacity.per_replica, capacity.measured, capacity.peak,
               observed.cold_starts, observed.gaps, observed.gap_wake,
               observed.gap_cycle, observed.profile.per_slot, basis)  # fmt: skip
    cached = record.snapshot
    if cached is not None and cached[0] is spec and cached[1] == figures:
        return cached, cached[2]
    shown = learned_status.dump(learned_status.snapshot(state, spec.scaling, spec.slo, basis))
    return (spec, figures, shown), shown


def decide(
    endpoint: Endpoint,
    record: Record | None,
    sig: policy.Signals | None,
    now: datetime.datetime,
    prometheus_ok: bool = True,
) -> tuple[Action, Record]:
    """One endpoint, one tick (pure): what to ask the API for, and the record to carry.

    `record` None: first sight of the endpoint; it starts from what its status.learned
    says. `prometheus_ok` False: Prometheus failed this tick (MetricsAvailable says so)."""
    previous = endpoint.body.get("status") or {}
    accelerator = previous.get("accelerator")
    basis = _basis(record, endpoint.spec, accelerator)
    relearn = False
    if record is None:
        figures = learned_status.parse(previous.get("learned"))
        restored = learned_status.Written(learned_status.dump(figures), now)
        record = Record(learned_status.restore(figures, basis), ("", None, basis), restored)
    elif record.basis[2] != basis:
        relearn = True
        record = dataclasses.replace(record, state=learned_status.rebase(record.state))
    decision, state = policy.decide(
        endpoint.spec.scaling,
        sig,
        endpoint.current,
        endpoint.ready,
        now,
        record.state,
        endpoint.spec.slo,
    )
    snapshot, fresh = _snapshot(record, endpoint.spec, state, basis)
    written = learned_status.due(record.learned, fresh, now)
    if decision.kind == "External" and endpoint.spec.replicas is not None:
        # The CRD refuses more than maxReplicas; an object stored before it did is capped
        # here, not scaled to whatever it says (2147483647 is a valid int32).
        wanted = min(endpoint.spec.replicas, endpoint.spec.scaling.max_replicas)
        reason = f"external scaler: spec.replicas {endpoint.spec.replicas}"
        if wanted < endpoint.spec.replicas:
            reason += f", capped at scaling.maxReplicas {wanted}"
        decision = dataclasses.replace(decision, desired=wanted, reason=reason)
    scale = decision.desired != endpoint.current
    last_scaling = record.last_scaling
    if scale:
        last_scaling = report.last_scaling(decision, endpoint.current, now)
    wanted_status = report.status(
        decision,
        metrics=report.metrics_condition(sig, prometheus_ok=prometheus_ok),
        scaling=last_scaling or previous.get("lastScaling"),
        previous=previous,
        generation=(endpoint.body.get("metadata") or {}).get("generation"),
        now=now,
        learned=written.value if written is not None else None,
        slo=slo.summary(record.slo) if record.slo is not None else None,
    )
    changed = report.changed(previous, wanted_status)
    learned_tried = record.learned_tried
    if learned_status.stale(written, previous.get("learned"), learned_tried, now):
        changed = True
        learned_tried = now
    action = Action(endpoint, decision, scale, wanted_status if changed else None, relearn)
    return action, Record(
        state=state,
        basis=(endpoint.spec, accelerator, basis),
        learned=written,
        learned_tried=learned_tried,
        snapshot=snapshot,
        last_scaling=last_scaling,
        slo=record.slo,
    )


def _failed(endpoint: Endpoint, exc: Exception, now: datetime.datetime) -> Action:
    """The action for an endpoint whose decision raised: hold, condition, Warning."""
    log.error("%s/%s: autoscaler decision failed", *endpoint.key, exc_info=exc)
    metrics.DECISIONS.labels(*endpoint.key, report.DECISION_FAILED).inc()
    previous = endpoint.body.get("status") or {}
    generation = (endpoint.body.get("metadata") or {}).get("generation")
    wanted = report.failed(exc, previous=previous, generation=generation, now=now)
    changed = report.changed(previous, wanted)
    hold = policy.Decision(endpoint.current, "decision failed", report.DECISION_FAILED)
    message = wanted["conditions"][-1]["message"] if changed else None
    return Action(endpoint, hold, False, wanted if changed else None, warning=message)


class Autoscaler:
    def __init__(
        self,
        settings: settings_mod.Settings,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.prometheus = signals.prometheus_client(settings.prometheus_url)
        self.http = httpx.AsyncClient()
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        # One record per endpoint seen last tick; rebuilt every tick, so an endpoint that
        # is gone (deleted, invalid, its Deployment missing) is forgotten with it.
        self.records: dict[Key, Record] = {}
        # Validated specs by (uid, generation): a cache of parsing, rebuilt every tick.
        self.specs: dict[tuple[str, int], spec_api.InferenceServiceSpec | None] = {}
        self.slo_last: float | None = None  # when the last SLO interval ended
        self.slo_counters: slo.Counters | None = None  # the counters last read

    async def close(self) -> None:
        await self.http.aclose()
        self.prometheus.close()

    async def _activator_urls(self) -> list[str]:
        if self.settings.activator_url:
            return [self.settings.activator_url.rstrip("/") + "/demand"]
        if self.settings.activator is None:
            return []
        try:
            slices = await asyncio.to_thread(actuation.activator_slices, self.settings.activator)
        except Exception as exc:
            log.warning("cannot find the activator's pods: %s", exc)
            return []
        return signals.demand_urls(slices)

    async def _read(self) -> tuple[list[Endpoint], dict[Key, policy.Signals] | None, Any]:
        namespaces = self.settings.watch_namespaces
        bodies, predictors, urls = await asyncio.gather(
            asyncio.to_thread(actuation.list_inference_services, namespaces),
            asyncio.to_thread(actuation.list_predictors, namespaces),
            self._activator_urls(),
        )
        table, demand = await signals.read(self.prometheus, self.http, urls)
        endpoints = await asyncio.to_thread(self._endpoints, bodies, predictors)
        if table is None:
            # Prometheus failed: only the activator's counts are known (they still wake
            # endpoints at zero); everything else holds.
            table = {
                key: policy.Signals(None, None, None, held=n, age_s=math.inf)
                for key, n in demand.held.items()
            }
            return endpoints, None, table
        return endpoints, table, None

    def _endpoints(
        self, bodies: Sequence[dict[str, Any]], predictors: dict[Key, tuple[int, int]]
    ) -> list[Endpoint]:
        """Validated specs (cached per uid and generation: a spec only changes with it)."""
        endpoints = []
        cache: dict[tuple[str, int], spec_api.InferenceServiceSpec | None] = {}
        for body in bodies:
            meta = body.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            if key not in predictors:
                continue  # its Deployment is not there yet
            version = (str(meta.get("uid")), int(meta.get("generation") or 0))
            spec = self.specs.get(version) if version in self.specs else _spec(body)
            cache[version] = spec
            if spec is None:
                continue  # invalid: the reconciler says so in SpecValid
            current, ready = predictors[key]
            endpoints.append(Endpoint(key, body, spec, current, ready))
        self.specs = cache
        return endpoints

    def _decide(
        self,
        endpoints: Sequence[Endpoint],
        table: dict[Key, policy.Signals] | None,
        fallback: dict[Key, policy.Signals] | None,
        now: datetime.datetime,
    ) -> list[Action]:
        """`decide` for every endpoint; the records of this tick replace the last ones."""
        actions, records = [], {}
        for endpoint in endpoints:
            key = endpoint.key
            record = self.records.get(key)
            try:
                sig = signals_of(key, table, fallback)
                action, records[key] = decide(endpoint, record, sig, now, table is not None)
            except Exception as exc:
                # One endpoint's failure (a bug, a spec the checks let through) holds its
                # replicas and says why in its status; the others decide.
                action = _failed(endpoint, exc, now)
                if record is not None:
                    records[key] = record
                actions.append(action)
                continue
            if record is None:
                log.debug("%s/%s: first sight; restored learned figures %s", *key,
                          (endpoint.body.get("status") or {}).get("learned"))  # fmt: skip
                # The SLO counters exist at 0 before their first count: rate() and
                # increase() ignore a series' first value, so requests counted in the
                # sample that creates it would never reach the burn-rate alerts.
                metrics.SLO_REQUESTS.labels(*key)
                metrics.SLO_GOOD.labels(*key)
            if action.relearn:
                log.info("%s/%s: model, runtime or hardware changed: learning capacity and "
                         "cold starts again", *key)  # fmt: skip
            actions.append(action)
            namespace, name = key
            decision = action.decision
            metrics.DECISIONS.labels(namespace, name, decision.kind).inc()
            metrics.DESIRED.labels(namespace, name).set(decision.desired)
            metrics.CURRENT.labels(namespace, name).set(endpoint.current)
            metrics.SIGNAL_AGE.labels(namespace, name).set(sig.age_s if sig else math.inf)
        for key in self.records.keys() - records.keys():
            metrics.forget(*key)
        self.records = records
        return actions

    async def _account_slo(self, endpoints: Sequence[Endpoint], now: float) -> None:
        """Every settings.slo_interval_seconds: good and total requests of the interval
        since the last one, per endpoint with a target in spec.slo (tideserve.autoscaler.slo).
        The first pass only reads the counters to compare with; a failed query leaves the
        interval open, so the next one covers it."""
        last = self.slo_last
        if last is not None and now - last < self.settings.slo_interval_seconds:
            return
        if not any(slo.targets_ms(e.spec.slo) for e in endpoints):
            return  # nothing to measure: no queries
        try:
            rows = await asyncio.gather(
                *(asyncio.to_thread(self.prometheus.instant, q, now) for q in slo.QUERIES.values())
            )
        except prometheus.QueryError as exc:
            log.warning("SLO attainment: Prometheus query failed, counting later: %s", exc)
            return
        results, self.slo_counters = slo.advance(
            self.slo_counters, dict(zip(slo.QUERIES, rows, strict=True))
        )
        self.slo_last = now
        if last is None:
            return
        observed = slo.observe(results)
        for endpoint in endpoints:
            key = endpoint.key
            record = self.records.get(key)
            if record is None:
                continue  # not decided yet: its first interval starts with its record
            ledger = record.slo or slo.Ledger()
            owed = ledger.intervals[-1].owed if ledger.intervals else 0.0
            counted = slo.interval(
                observed.get(key, slo.Observed()), endpoint.spec.slo, now - last, now, owed
            )
            if counted is None:
                continue
            ledger = slo.add(ledger, counted)
            self.records[key] = dataclasses.replace(record, slo=ledger)
            metrics.SLO_REQUESTS.labels(*key).inc(counted.total)
            metrics.SLO_GOOD.labels(*key).inc(counted.good)
            shown = slo.summary(ledger)
            if shown is not None and "attainment" in shown:
                metrics.SLO_ATTAINMENT.labels(*key).set(shown["attainment"])

    async def _act(self, action: Action, limit: asyncio.Semaphore) -> tuple[bool, bool, bool]:
        """(scaled, status written, failed) for one endpoint."""
        (namespace, name), decision = action.endpoint.key, action.decision
        scaled = written = False
        async with limit:
            try:
                if action.scale:
                    await asyncio.to_thread(actuation.scale, namespace, name, decision.desired)
                    scaled = True
                    log.info(
                        "%s/%s: %d -> %d %s: %s",
                        namespace,
                        name,
                        action.endpoint.current,
                        decision.desired,
                        decision.kind,
                        decision.reason,
                    )
                    message = f"{action.endpoint.current} -> {decision.desired}: {decision.reason}"
                    try:
                        await asyncio.to_thread(
                            actuation.event, action.endpoint.body, decision.kind, message
                        )
                    except Exception as exc:
                        # Best effort: a refused Event must not skip the status write.
                        log.warning("%s/%s: scaling event not posted: %s", namespace, name, exc)
                if action.status is not None:
                    await asyncio.to_thread(actuation.write_status, namespace, name, action.status)
                    written = True
                if action.warning is not None:
                    await asyncio.to_thread(
                        actuation.event,
                        action.endpoint.body,
                        report.DECISION_FAILED,
                        action.warning,
                        "Warning",
                    )
            except Exception as exc:
                log.warning("%s/%s: autoscaler write failed: %s", namespace, name, exc)
                return scaled, written, True
        return scaled, written, False

    async def tick(self) -> TickReport:
        started = time.perf_counter()
        result = TickReport()
        endpoints, table, fallback = await self._read()
        now = self.clock()
        await self._account_slo(endpoints, now.timestamp())
        read_done = time.perf_counter()
        actions = await asyncio.to_thread(self._decide, endpoints, table, fallback, now)
        decided = time.perf_counter()
        limit = asyncio.Semaphore(WRITE_CONCURRENCY)
        # Scale patches first: after a restart every status is written once, and a
        # replica change must not queue behind a thousand status writes.
        pending = sorted((a for a in actions if a.scale or a.status is not None),
                         key=lambda a: not a.scale)  # fmt: skip
        outcomes = await asyncio.gather(*(self._act(a, limit) for a in pending))
        result.endpoints = len(endpoints)
        result.prometheus_ok = table is not None
        result.scaled = sum(1 for s, _, _ in outcomes if s)
        result.status_writes = sum(1 for _, w, _ in outcomes if w)
        result.failures = sum(1 for _, _, f in outcomes if f)
        finished = time.perf_counter()
        result.seconds = finished - started
        result.phases = {
            "read": read_done - started,
            "decide": decided - read_done,
            "write": finished - decided,
        }
        metrics.TICK_SECONDS.observe(result.seconds)
        return result


async def run(settings: settings_mod.Settings, stop: asyncio.Event) -> None:
    """Tick every settings.tick_seconds until `stop` is set."""
    autoscaler = Autoscaler(settings)
    log.info(
        "autoscaler: every %.1fs, Prometheus %s, field manager %s",
        settings.tick_seconds,
        settings.prometheus_url,
        resource.AUTOSCALER_FIELD_MANAGER,
    )
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                report_ = await autoscaler.tick()
                log.debug("tick: %s", report_)
            except Exception:
                # A failed list (API server away) skips this tick; the next one retries.
                log.exception("autoscaler tick failed")
            elapsed = time.monotonic() - started
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, settings.tick_seconds - elapsed))
    finally:
        await autoscaler.close()
