"""Automatic profiling in the right-sizing pass: start, probe and remove shadow replicas.

`decide` is pure: from the endpoints' advice and the shadow Deployments that exist, what
to start, what to measure (its pod is Ready) and what to give up on (past the deadline).
`run` is the thin shell the loop calls once per pass (blocking, in the loop's thread):
it applies shadows (field manager tideserve-profiling), runs the load probe
(rightsizing.profiling, Triton's HTTP protocol) against a Ready shadow pod, writes
status.profiles under its own field manager (so the right-sizing pass's own status apply
never drops them) and deletes the shadow.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tideserve import kube
from tideserve.api import resource
from tideserve.render import names, storage
from tideserve.rightsizing import accelerators, advisor, autoprofile, profiling, shadow

log = logging.getLogger(__name__)

FIELD_MANAGER = "tideserve-profiling"
EVENT_REASON = "Profiling"
Key = tuple[str, str]
# (address host:port, model, option, SLO ms, seconds per level) -> profile or None
ProbeFn = Callable[[str, str, str, float | None, float], accelerators.Profile | None]


@dataclasses.dataclass(frozen=True)
class Shadow:
    option: str
    started: datetime.datetime
    address: str | None  # host:port of its Ready pod, None while not ready


@dataclasses.dataclass(frozen=True)
class Actions:
    start: tuple[tuple[Key, autoprofile.Probe], ...] = ()
    measure: tuple[tuple[Key, Shadow], ...] = ()
    expire: tuple[tuple[Key, Shadow], ...] = ()
    orphans: tuple[Key, ...] = ()  # shadows of endpoints gone or no longer profiling


def _profiling(isvc: resource.InferenceService) -> bool:
    resources = isvc.spec.resources
    return resources.right_sizing.profiling_enabled(resources.accelerator)


def decide(
    isvcs: Mapping[Key, resource.InferenceService],
    advices: Mapping[Key, advisor.Advice],
    shadows: Mapping[Key, Shadow],
    now: datetime.datetime,
    limits: autoprofile.Limits = autoprofile.DEFAULT_LIMITS,
) -> Actions:
    """What this pass does about profiling (pure)."""
    measure, expire, orphans = [], [], []
    for key, found in sorted(shadows.items()):
        isvc = isvcs.get(key)
        if isvc is None or not _profiling(isvc):
            orphans.append(key)
        elif now - found.started > limits.deadline:
            expire.append((key, found))
        elif found.address is not None:
            measure.append((key, found))
    running = len(shadows) - len(measure) - len(expire) - len(orphans)
    start = []
    for key in sorted(isvcs):
        if running >= limits.concurrent:
            break
        advice = advices.get(key)
        if key in shadows or advice is None or advice.current is None:
            continue
        rec = advice.recommendation
        probe = autoprofile.next_probe(
            isvcs[key].spec,
            isvcs[key].status,
            advice.candidates,
            advice.current_cost_per_hour,
            float(rec.gpu_memory_bytes) if rec and rec.gpu_memory_bytes else None,
            now,
            current=advice.current,
            peak_rps=advice.peak_rps,
        )
        if probe is not None:
            start.append((key, probe))
            running += 1
    return Actions(tuple(start), tuple(measure), tuple(expire), tuple(orphans))


def _probe(
    address: str, model: str, option: str, slo_ms: float | None, seconds: float
) -> accelerators.Profile | None:
    profile, _ = profiling.probe(address, model, option, slo_ms, seconds=seconds)
    return profile


def shadows_found(namespaces: Sequence[str]) -> dict[Key, Shadow]:
    """The shadow Deployments and the address of each one's Ready pod."""
    deployments = kube.list_in("Deployment", namespaces, shadow.LABEL_SELECTOR)
    pods = kube.list_in("Pod", namespaces, shadow.LABEL_SELECTOR)
    ready: dict[Key, str] = {}
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        of = (meta.get("labels") or {}).get(shadow.PROBE_OF_LABEL)
        if of and status.get("podIP") and conditions.get("Ready") == "True":
            ready[(str(meta.get("namespace")), of)] = f"{status['podIP']}:{names.HTTP_PORT}"
    out = {}
    for body in deployments:
        meta = body.get("metadata") or {}
        of = (meta.get("labels") or {}).get(shadow.PROBE_OF_LABEL)
        made = shadow.started(body)
        if of and made:
            key = (str(meta.get("namespace")), of)
            out[key] = Shadow(made[0], made[1], ready.get(key))
    return out


def run(
    namespaces: Sequence[str],
    bodies: Mapping[Key, dict[str, Any]],
    isvcs: Mapping[Key, resource.InferenceService],
    advices: Mapping[Key, advisor.Advice],
    image: str,
    now: datetime.datetime,
    probe: ProbeFn | None = None,
    limits: autoprofile.Limits = autoprofile.DEFAULT_LIMITS,
    fetch_images: storage.FetchImages = storage.DEFAULT_FETCH_IMAGES,
) -> Actions:
    """One pass of automatic profiling (blocking)."""
    wanted = {k: v for k, v in isvcs.items() if _profiling(v)}
    found = shadows_found(namespaces)
    if not wanted and not found:
        return Actions()
    probe = probe or _probe
    actions = decide(wanted, advices, found, now, limits)
    for key in actions.orphans:
        _remove(key)
    for key, gone in actions.expire:
        _record(bodies[key], isvcs[key], gone.option, None, now, "no Ready shadow in time")
        _remove(key)
    for key, ready in actions.measure:
        spec = isvcs[key].spec
        assert ready.address is not None
        seconds = float(spec.resources.right_sizing.profiling.probe_seconds)
        try:
            result = probe(
                ready.address, spec.model.name, ready.option, spec.slo.latency_ms, seconds
            )
        except Exception as exc:  # a failed probe is a result, not a crash
            log.warning("probe of %s/%s on %s failed: %s", *key, ready.option, exc)
            result = None
        _record(bodies[key], isvcs[key], ready.option, result, now, "probe done")
        _remove(key)
    for key, wanted_probe in actions.start:
        body, isvc = bodies[key], isvcs[key]
        rec = advices[key].recommendation
        owner = names.Owner.from_body(body)
        cpu, memory = (rec.cpu, rec.memory) if rec else (None, None)
        config = shadow.config_map(owner, isvc.spec, wanted_probe.option, cpu, memory)
        if config is not None:  # first: the shadow's pod mounts it
            kube.apply(config, manager=FIELD_MANAGER)
        manifest = shadow.build(
            owner, isvc.spec, wanted_probe.option, cpu, memory, image, now, fetch_images
        )
        kube.apply(manifest, manager=FIELD_MANAGER)
        kube.post_event(
            body,
            "Normal",
            EVENT_REASON,
            f"measuring {wanted_probe.option}: {wanted_probe.why}"[:1024],
        )
    return actions


def _remove(key: Key) -> None:
    """The shadow Deployment and its config override, if any."""
    kube.delete("Deployment", key[0], shadow.name_of(key[1]))
    kube.delete("ConfigMap", key[0], shadow.config_name_of(key[1]))


def _record(
    body: dict[str, Any],
    isvc: resource.InferenceService,
    option: str,
    result: accelerators.Profile | None,
    now: datetime.datetime,
    what: str,
) -> None:
    profiles = autoprofile.record(isvc.status, result, option, now)
    meta = body.get("metadata") or {}
    kube.apply_status(
        str(meta.get("namespace")),
        str(meta.get("name")),
        {"profiles": [p.dump() for p in profiles]},
        manager=FIELD_MANAGER,
    )
    figure = (
        f"{result.max_rps:g} rps/replica within the SLO, p99 {result.p99_latency_ms} ms"
        if result
        else "never within the SLO"
    )
    kube.post_event(body, "Normal", EVENT_REASON, f"measured {option} ({what}): {figure}")
