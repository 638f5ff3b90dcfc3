"""The right-sizing loop: every few minutes, for all endpoints at once.

One Prometheus query per signal (grouped by namespace/name), one list of InferenceServices,
Nodes and predictor Pods; then the pure advisor per endpoint; then a status apply (field
manager tideserve-rightsizing) only where something changed, an Event when the
recommendation changed materially, and the cost gauges. Blocking work (the clients, the
catalog file) runs in a thread; what one pass hands the next lives in State.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from tideserve import kube
from tideserve import settings as settings_mod
from tideserve.api import resource
from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.rightsizing import (
    accelerators,
    advisor,
    fit,
    metrics,
    probing,
    quantities,
    recommender,
    signals,
)
from tideserve.rightsizing import catalog as catalog_mod

log = logging.getLogger(__name__)

FIELD_MANAGER = "tideserve-rightsizing"
# Measured profiles (a profiling run's output) live in this annotation as a JSON list of
# {"option", "maxRequestsPerSecond", "p99LatencyMs"}; they win over declared ones.
PROFILES_ANNOTATION = f"{resource.LABEL_PREFIX}/measured-profiles"
PREDICTOR_LABELS = "app.kubernetes.io/name=tideserve-predictor"
ENDPOINT_LABEL = f"{resource.LABEL_PREFIX}/inferenceservice"
EVENT_REASON = "RightSizing"
FAILED_REASON = "RightSizingFailed"


@dataclasses.dataclass(frozen=True)
class Config:
    interval_seconds: float = 180.0
    window: signals.Window = dataclasses.field(default_factory=signals.Window)


@dataclasses.dataclass(frozen=True)
class Result:
    """What one pass did (for tests and logs)."""

    endpoints: int = 0
    written: tuple[tuple[str, str], ...] = ()
    events: tuple[tuple[str, str], ...] = ()
    advice: Mapping[tuple[str, str], advisor.Advice] = dataclasses.field(default_factory=dict)
    # Endpoints whose cost gauges this pass set: the next pass forgets the ones gone.
    published: frozenset[tuple[str, str]] = frozenset()


# The catalog file's version: a changed file (a ConfigMap update swaps the mounted file)
# has a new modification time or size; a missing file is a version of its own.
Stamp = tuple[int, int]
MISSING: Stamp = (0, -1)


@dataclasses.dataclass(frozen=True)
class State:
    """What the loop carries from one pass to the next."""

    catalog: catalog_mod.Catalog = catalog_mod.DEFAULT
    catalog_stamp: Stamp | None = None  # the version last read, good or bad
    published: frozenset[tuple[str, str]] = frozenset()


def _stamp(path: str) -> Stamp:
    try:
        stat = pathlib.Path(path).stat()
    except OSError:
        return MISSING
    return (stat.st_mtime_ns, stat.st_size)


def refresh_catalog(state: State, path: str) -> State:
    """The catalog, read again only when its file changed (blocking: call in a thread).
    A file that cannot be read or parsed keeps the catalog in use (the built-in one at
    start) and is reported once per version of the file."""
    if not path:
        return state
    stamp = _stamp(path)
    if stamp == state.catalog_stamp:
        return state
    try:
        catalog = catalog_mod.load(path)
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        # Prices from a default are better than no right-sizing at all, but say so.
        kept = "the built-in one" if state.catalog is catalog_mod.DEFAULT else "the last good one"
        log.error("cannot read the catalog %s (%s); using %s", path, exc, kept)
        return dataclasses.replace(state, catalog_stamp=stamp)
    log.info("catalog %s: %d options", path, len(catalog_mod.options(catalog)))
    return dataclasses.replace(state, catalog=catalog, catalog_stamp=stamp)


def measured_profiles(body: Mapping[str, Any]) -> list[accelerators.Profile]:
    """The profiles of the measured-profiles annotation, each read as a declared profile
    is (spec.resources.rightSizing.profiles[]): the annotation is written by hand (`tideserve
    profile` prints the command) and no schema checks it, so an entry the CRD would refuse
    in the spec (option cpu-nan, a rate of 0 or 1e999) is left out, and said so."""
    raw = ((body.get("metadata") or {}).get("annotations") or {}).get(PROFILES_ANNOTATION)
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        items = None
    if not isinstance(items, list):
        log.warning("ignoring malformed %s annotation", PROFILES_ANNOTATION)
        return []
    out = []
    for item in items:
        try:
            p = spec_api.DeclaredProfile.model_validate(item)
        except pydantic.ValidationError as exc:
            log.warning(
                "ignoring an entry of the %s annotation: %s",
                PROFILES_ANNOTATION,
                resource.describe_error(exc).removeprefix("spec"),
            )
            continue
        out.append(
            accelerators.profile_on(
                p.option, p.max_requests_per_second, p.p99_latency_ms, accelerators.Source.MEASURED
            )
        )
    return out


def host_cores_lookup(
    pods: list[dict[str, Any]], nodes: list[dict[str, Any]]
) -> Callable[[str, str], float]:
    """Cores of the node each predictor pod runs on (Triton's CPU figures are host-wide)."""
    capacity = {
        n["metadata"]["name"]: quantities.parse(
            ((n.get("status") or {}).get("capacity") or {}).get("cpu", "0")
        )
        for n in nodes
    }
    where = {
        (p["metadata"].get("namespace", ""), p["metadata"]["name"]): (p.get("spec") or {}).get(
            "nodeName"
        )
        for p in pods
    }
    # Not a pod we know (a Triton outside the cluster, as in the local test bed): it runs
    # on a host like this one.
    fallback = float(os.cpu_count() or 1)

    def cores(namespace: str, pod: str) -> float:
        node = where.get((namespace, pod))
        return capacity.get(node or "", 0.0) or fallback

    return cores


def ooms_from_pods(pods: list[dict[str, Any]]) -> dict[tuple[str, str], list[recommender.Oom]]:
    """OOM kills the API server reports on predictor pods (no kube-state-metrics needed):
    the container's last termination, at the memory limit it had."""
    found: dict[tuple[str, str], list[recommender.Oom]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        name = (meta.get("labels") or {}).get(ENDPOINT_LABEL)
        if not name:
            continue
        limits = {
            c.get("name"): ((c.get("resources") or {}).get("limits") or {}).get("memory")
            for c in (pod.get("spec") or {}).get("containers") or []
        }
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            ended = ((status.get("lastState") or {}).get("terminated")) or {}
            limit = limits.get(status.get("name"))
            if ended.get("reason") != "OOMKilled" or not limit:
                continue
            try:
                when = datetime.datetime.fromisoformat(
                    str(ended.get("finishedAt", "")).replace("Z", "+00:00")
                ).timestamp()
            except ValueError:
                continue
            key = (str(meta.get("namespace")), name)
            found.setdefault(key, []).append(recommender.Oom(when, quantities.parse(limit)))
    return found


def with_ooms(observation: advisor.Observation, ooms: list[recommender.Oom]) -> advisor.Observation:
    if not ooms:
        return observation
    usage = observation.usage
    merged = tuple(sorted({*usage.ooms, *ooms}, key=lambda o: o.time))
    return dataclasses.replace(observation, usage=dataclasses.replace(usage, ooms=merged))


def tick(
    settings: settings_mod.Settings,
    catalog: catalog_mod.Catalog,
    prometheus: signals.Prometheus,
    config: Config = Config(),
    now: datetime.datetime | None = None,
    published: frozenset[tuple[str, str]] = frozenset(),
) -> Result:
    """One pass over every endpoint (blocking; the async loop runs it in a thread).
    `published`: the endpoints the previous pass set cost gauges for."""
    now = now or datetime.datetime.now(datetime.UTC)
    bodies = kube.list_in(resource.KIND, settings.watch_namespaces)
    node_bodies = kube.list_objects("Node")
    nodes = [fit.node_from_api(n) for n in node_bodies]
    pods = kube.list_in("Pod", settings.watch_namespaces, PREDICTOR_LABELS)
    observations = signals.gather(
        prometheus, now.timestamp(), config.window, host_cores_lookup(pods, node_bodies)
    )
    killed = ooms_from_pods(pods)
    written, events, advices = [], [], {}
    seen = set()
    parsed: dict[tuple[str, str], tuple[dict[str, Any], resource.InferenceService]] = {}
    for body in bodies:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        seen.add(key)
        try:
            isvc = resource.InferenceService.model_validate(body)
        except pydantic.ValidationError:
            continue  # the reconciler reports an invalid spec
        parsed[key] = (body, isvc)
        try:
            advice = advisor.advise(
                isvc.spec,
                isvc.status,
                with_ooms(observations.get(key, advisor.Observation()), killed.get(key, [])),
                catalog,
                nodes=nodes,
                now=now,
                measured=measured_profiles(body),
            )
        except Exception as exc:  # this endpoint's advice only; the others carry on
            log.exception("right-sizing could not advise %s/%s", *key)
            with contextlib.suppress(Exception):
                kube.post_event(body, "Warning", FAILED_REASON, f"right-sizing failed: {exc!r}")
            continue
        advices[key] = advice
        rec = advice.recommendation
        metrics.publish(
            *key,
            advice.cost.per_hour,
            advice.cost.per_1k_inferences,
            rec.cost_per_hour_recommended if rec else None,
        )
        patch = advisor.status_patch(advice, isvc.status, meta.get("generation"), now)
        try:
            if patch is not None:
                kube.apply_status(key[0], key[1], patch, manager=FIELD_MANAGER)
                written.append(key)
            if advice.changed and rec is not None:
                kube.post_event(body, "Normal", EVENT_REASON, _event_message(rec))
                events.append(key)
        except Exception:  # one endpoint's failure must not stop the others
            log.exception("right-sizing could not update %s/%s", *key)
    for key in published - seen:
        metrics.forget(*key)
    try:  # automatic profiling: shadows started, probed and removed (rightsizing.probing)
        probing.run(
            settings.watch_namespaces,
            {k: b for k, (b, _) in parsed.items()},
            {k: i for k, (_, i) in parsed.items()},
            advices,
            settings.triton_image,
            now,
            fetch_images=settings.fetch_images,
        )
    except Exception:
        log.exception("automatic profiling failed this pass; retrying next pass")
    return Result(len(bodies), tuple(written), tuple(events), advices, frozenset(seen))


def step(
    settings: settings_mod.Settings,
    state: State,
    prometheus: signals.Prometheus,
    config: Config = Config(),
) -> tuple[State, Result]:
    """The catalog if its file changed, then one pass (blocking: the loop's thread)."""
    state = refresh_catalog(state, settings.catalog_file)
    result = tick(settings, state.catalog, prometheus, config, published=state.published)
    return dataclasses.replace(state, published=result.published), result


def _event_message(rec: status_api.Recommendation) -> str:
    parts = [f"recommend {rec.accelerator}", f"cpu {rec.cpu}", f"memory {rec.memory}"]
    if rec.cost_per_hour_now is not None and rec.cost_per_hour_recommended is not None:
        parts.append(
            f"cost/replica-hour {rec.cost_per_hour_now:.3f} -> {rec.cost_per_hour_recommended:.3f}"
        )
    return ", ".join(parts) + (f": {rec.reason}" if rec.reason else "")


async def run(
    settings: settings_mod.Settings, stop: asyncio.Event, config: Config = Config()
) -> None:
    """Until `stop` is set: a pass every config.interval_seconds."""
    state = await asyncio.to_thread(refresh_catalog, State(), settings.catalog_file)
    prometheus = signals.Prometheus(settings.prometheus_url)
    log.info(
        "right-sizing loop: every %ss, %d catalog options, prometheus %s",
        config.interval_seconds,
        len(catalog_mod.options(state.catalog)),
        settings.prometheus_url,
    )
    try:
        while not stop.is_set():
            try:
                state, result = await asyncio.to_thread(step, settings, state, prometheus, config)
                metrics.TICKS.labels(result="ok").inc()
                log.debug(
                    "right-sizing: %d endpoints, %d written", result.endpoints, len(result.written)
                )
            except Exception:
                metrics.TICKS.labels(result="error").inc()
                log.exception("right-sizing pass failed; retrying next interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=config.interval_seconds)
    finally:
        prometheus.close()
