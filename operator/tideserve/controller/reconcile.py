"""The reconciler: apply the rendered children, then keep status and routing current.

Two entry points, both idempotent:
- `Reconciler.apply(body)` (kopf create/update/resume): validate, check against the
  cluster, render, server-side apply, remember the facts status needs;
- `Reconciler.refresh(key)` (after apply, and on every watched child event): recompute
  status and the route EndpointSlice from the watch cache; write only what changed; apply
  again any child that was deleted or edited by hand (drift).
An unchanged plan (same digest as applied) is not applied again: a spec edit that renders
nothing new (spec.replicas in external mode) costs no child writes.
Both run in worker threads (the Kubernetes client blocks); `refresher.Refresher`
coalesces bursts of events into one refresh per object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import threading
from collections.abc import Mapping
from typing import Any

import kopf
import pydantic

from tideserve import kube
from tideserve import settings as settings_mod
from tideserve.api import resource
from tideserve.controller import checks, drift, metrics, routes, sizing, status, store
from tideserve.render import children, names, network
from tideserve.render import hardware as hardware_mod

SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"
# A blocking problem (missing Secret) is re-checked this often: a slow poll, not a hot loop.
BLOCKED_RETRY_SECONDS = 60.0
# Children whose existence a resume checks with one cached list per namespace (the
# Deployment carries the plan digest and is read on its own). The ServiceMonitor is not
# watched (its CRD is optional), so this is the one time a deleted one is noticed.
RESUME_CHECKED = ("ConfigMap", "Service", "PodDisruptionBudget", "ServiceMonitor")
# Children whose name another object may already hold (the watched kinds): tideserve's
# force apply would take such an object over and garbage collection would then delete it
# with the InferenceService; the planned deletion of an optional child would delete it.
NAME_CHECKED = ("ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy")

log = logging.getLogger("tideserve.controller")


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the last apply of one InferenceService decided, for status computation."""

    owner: names.Owner
    generation: int | None
    url: str
    accelerator: str
    problems: tuple[status.Problem, ...] = ()
    hardware: hardware_mod.Hardware | None = None  # what was applied
    fresh: bool = False  # created while this process ran: no route slice can exist yet
    plan: children.Plan | None = None  # the plan the children run (last applied in full)
    partial: bool = False  # an apply failed midway: the children match no plan


@dataclasses.dataclass(frozen=True)
class Record:
    """What the Reconciler keeps about one InferenceService between events: replaced as a
    whole (under the Reconciler's lock), never edited in place."""

    facts: Facts | None = None  # None: not applied by this process yet
    status: dict[str, Any] | None = None  # the status this process last wrote
    route: dict[str, Any] | None = None  # the route EndpointSlice this process last wrote
    # Per child: drift.Seen.mine of what tideserve's last apply left on it.
    applied: Mapping[drift.ChildKey, str] = dataclasses.field(default_factory=dict)
    # An apply and a drift repair of this object must not interleave (a repair of the old
    # plan landing after the new plan would stick: the fields stay tideserve's). The one
    # lock is carried from record to record.
    writing: threading.Lock = dataclasses.field(
        default_factory=threading.Lock, compare=False, repr=False
    )


def routed_to_activator(records: Mapping[store.Key, Record]) -> list[store.Key]:
    """Objects whose route follows the activator's pods: routed to it, or not routed yet
    (a new object's first slice is written once there is somewhere to route)."""
    return [
        key
        for key, record in records.items()
        if record.facts is not None
        and (
            record.route is None
            or record.route["metadata"]["annotations"].get(network.ROUTE_TARGET_ANNOTATION)
            != "predictor"
        )
    ]


def _peers(
    peers: settings_mod.NetworkPeers | None,
) -> tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...]] | None:
    return None if peers is None else (peers.serving, peers.metrics)


def _controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("controller") and r.get("uid") == uid for r in refs)


def _carry(previous: Facts | None) -> dict[str, Any]:
    """What a failed or blocked apply keeps: the children still run the last good plan."""
    if previous is None:
        return {}
    return {"hardware": previous.hardware, "plan": previous.plan, "partial": previous.partial}


class Reconciler:
    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self.store = store.Store()
        self._records: dict[store.Key, Record] = {}
        self._lock = threading.Lock()

    def _record(self, key: store.Key) -> Record:
        with self._lock:
            return self._records.get(key) or Record()

    def _update(self, key: store.Key, **changes: Any) -> None:
        with self._lock:
            self._records[key] = dataclasses.replace(self._records.get(key) or Record(), **changes)

    def _facts(self, key: store.Key) -> Facts | None:
        return self._record(key).facts

    def _writer(self, key: store.Key) -> threading.Lock:
        with self._lock:
            return self._records.setdefault(key, Record()).writing

    def _applied(self, key: store.Key, result: dict[str, Any]) -> None:
        """A child as an apply left it: cached at once (a drift check must not act on a
        stale copy from the watch), with the digest of the fields tideserve now owns."""
        child, seen = drift.key_of(result), drift.seen(result)
        self.store.put_child(key, *child, seen)
        with self._lock:
            record = self._records.get(key) or Record()
            applied = {**record.applied, child: seen.mine}
            self._records[key] = dataclasses.replace(record, applied=applied)

    def _children(
        self, key: store.Key
    ) -> tuple[dict[drift.ChildKey, drift.Seen | None], dict[drift.ChildKey, str]]:
        """(live children, their applied field digests). A child seen before any apply by
        this process (after a restart) is taken as applied the way it is first seen."""
        live = self.store.children_of(key)
        with self._lock:
            record = self._records.get(key) or Record()
            first_seen = {
                child: obj.mine
                for child, obj in live.items()
                if obj is not None and child not in record.applied
            }
            applied = {**record.applied, **first_seen}
            self._records[key] = dataclasses.replace(record, applied=applied)
            return live, dict(applied)

    # -- apply ---------------------------------------------------------------------------

    def apply(
        self,
        body: kopf.Body | dict[str, Any],
        logger: logging.Logger | Any,
        fresh: bool = False,
        resumed: bool = False,
    ) -> None:
        """Render and apply. `fresh`: a new object, so there are no stale children to delete.
        An unchanged plan (this process applied it, or the Deployment carries its digest)
        is not applied again. `resumed` is only for the log: seen again after a restart.
        """
        owner = names.Owner.from_body(body)
        key = (owner.namespace, owner.name)
        with metrics.RECONCILE_SECONDS.time():
            try:
                spec = resource.parse_spec(dict(body["spec"]))
            except pydantic.ValidationError as exc:
                message = resource.describe_error(exc)
                previous = self._facts(key)
                # The children of the last good generation keep running, so routing
                # (pods or activator) must keep following them: keep what was applied.
                invalid = (checks.invalid_spec(message),)
                self._remember(Facts(owner, owner.generation, "", "", invalid, **_carry(previous)))
                metrics.RECONCILES.labels(result="invalid").inc()
                raise kopf.PermanentError(f"invalid spec: {message}") from exc
            _, deployment, _ = self.store.snapshot(key)
            previous = self._facts(key)
            options = children.Options(
                triton_image=self.settings.triton_image,
                service_monitor=kube.crd_exists(SERVICE_MONITOR_CRD),
                hardware=sizing.effective(
                    spec, body.get("status"), deployment, previous.hardware if previous else None
                ),
                network_peers=_peers(self.settings.network_policy),
                fetch_images=self.settings.fetch_images,
            )
            hw = children.hardware(spec, options)
            url = names.url(owner, spec.runtime.protocol.value)
            problems = checks.hardware_problems(hw, kube.node_labels())
            ref = spec.model.storage_secret_ref
            secret_ok = ref is None or kube.get("Secret", owner.namespace, ref) is not None
            problems += checks.secret_problems(spec.model, secret_ok)
            blocking = [p for p in problems if p.blocking]
            if blocking:
                # Keep the last good generation: the children still run what it asked for.
                generation = previous.generation if previous else None
                self._remember(
                    Facts(owner, generation, url, hw.label, tuple(problems), **_carry(previous))
                )
                metrics.RECONCILES.labels(result="blocked").inc()
                raise kopf.TemporaryError(blocking[0].message, delay=BLOCKED_RETRY_SECONDS)
            try:
                plan = children.plan(owner, spec, options)
            except Exception as exc:
                # A spec the checks let through that the builders cannot render costs
                # this object only: SpecValid=False (RenderFailed), an Event, no retry loop.
                log.exception("%s/%s: rendering failed", *key)
                message = f"tideserve could not render the children: {exc!r}"
                failed = (status.Problem(status.SPEC_VALID, "RenderFailed", message, True),)
                self._remember(Facts(owner, owner.generation, url, hw.label, failed,
                                     **_carry(previous)))  # fmt: skip
                metrics.RECONCILES.labels(result="invalid").inc()
                raise kopf.PermanentError(message) from exc
            with self._writer(key):
                if not fresh and self._up_to_date(key, plan, self._facts(key)):
                    fresh = previous.fresh if previous else False
                    facts = Facts(owner, owner.generation, url, hw.label, tuple(problems), hw)
                    self._remember(dataclasses.replace(facts, fresh=fresh, plan=plan))
                    metrics.RECONCILES.labels(result="unchanged").inc()
                    logger.info(
                        "children already match generation %s%s",
                        owner.generation,
                        " (resumed)" if resumed else "",
                    )
                    return
                # Only before a write: an unchanged plan (a resume) costs no look-ups.
                taken = self._taken(owner, plan)
                if held := checks.names_taken(
                    {c: who for c, who in taken.items() if c in map(drift.key_of, plan.apply)}
                ):
                    generation = previous.generation if previous else None
                    self._remember(Facts(owner, generation, url, hw.label, (*problems, *held),
                                         **_carry(previous)))  # fmt: skip
                    metrics.RECONCILES.labels(result="blocked").inc()
                    raise kopf.TemporaryError(held[0].message, delay=BLOCKED_RETRY_SECONDS)
                if taken:  # only optional children to delete: another object's, left alone
                    plan = dataclasses.replace(
                        plan, delete=tuple(c for c in plan.delete if c not in taken)
                    )
                self._apply_plan(key, owner, plan, fresh, url, hw.label, previous)
                self._remember(
                    Facts(owner, owner.generation, url, hw.label, tuple(problems), hw, fresh, plan)
                )
            metrics.RECONCILES.labels(result="applied").inc()
            logger.info(
                "applied %d children (%s) for generation %s",
                len(plan.apply),
                hw.label,
                owner.generation,
            )

    def _apply_plan(
        self,
        key: store.Key,
        owner: names.Owner,
        plan: children.Plan,
        fresh: bool,
        url: str,
        label: str,
        previous: Facts | None,
    ) -> None:
        try:
            for manifest in plan.apply:
                result = kube.apply(manifest)
                metrics.CHILD_APPLIES.labels(kind=manifest["kind"], cause="plan").inc()
                self._applied(key, result)
            for kind, name in () if fresh else plan.delete:
                kube.delete(kind, owner.namespace, name)
        except kube.InvalidError as exc:
            message = f"the API server refused a child: {exc}"
            problem = checks.invalid_spec(message)
            carried = _carry(previous) | {"partial": True}
            self._remember(Facts(owner, owner.generation, url, label, (problem,), **carried))
            metrics.RECONCILES.labels(result="invalid").inc()
            raise kopf.PermanentError(message) from exc
        except kube.NotFoundError as exc:
            # A kind that went away (a CRD uninstalled) or a namespace being deleted:
            # cluster facts are re-read after the cache expires, so a retry can pass.
            self._remember(dataclasses.replace(previous, partial=True) if previous else None)
            raise kopf.TemporaryError(f"not found: {exc}", delay=15.0) from exc
        except BaseException:
            # Retried by kopf; meanwhile the children match no plan, so none is skipped.
            self._remember(dataclasses.replace(previous, partial=True) if previous else None)
            raise

    def _taken(self, owner: names.Owner, plan: children.Plan) -> dict[drift.ChildKey, str]:
        """Children of the plan (to apply or to delete) whose name an object that is not
        this InferenceService's holds: another InferenceService's child, or an object
        tideserve does not manage. The watch cache knows this one's and others' children;
        a name it does not know (a new object's children, mostly) is read, not looked up
        in a cached list: an object created a moment ago must not be taken over."""
        key = (owner.namespace, owner.name)
        taken: dict[drift.ChildKey, str] = {}
        for kind, name in [*map(drift.key_of, plan.apply), *plan.delete]:
            holder = self.store.holder(owner.namespace, (kind, name))
            if kind not in NAME_CHECKED or holder == key:
                continue
            if holder is not None:
                taken[(kind, name)] = f"InferenceService {holder[1]}'s"
                continue
            live = kube.get(kind, owner.namespace, name)
            labels = ((live or {}).get("metadata") or {}).get("labels") or {}
            if live is None or _controlled_by(live, owner.uid):
                continue
            if labels.get(names.MANAGED_BY_LABEL) != names.MANAGED_BY:
                taken[(kind, name)] = "not tideserve's"
            elif (other := labels.get(names.ISVC_LABEL)) != owner.name:
                taken[(kind, name)] = f"InferenceService {other}'s"
        return taken

    def _up_to_date(self, key: store.Key, plan: children.Plan, previous: Facts | None) -> bool:
        """Whether the children already run `plan` (deletions and hand edits since are
        drift, repaired by refresh)."""
        if previous is not None and previous.partial:
            return False
        if drift.stale(plan.apply, *self._children(key)):
            return False  # a child is gone or was edited: this apply repairs it
        if previous is not None and previous.plan is not None:
            return previous.plan.digest == plan.digest
        # Seen for the first time (after a restart): the children may have been deleted
        # while no watch looked, and the watches may not have listed them yet.
        _, deployment, _ = self.store.snapshot(key)
        if deployment is None:  # the watch may not have listed it yet: ask once
            deployment = kube.get("Deployment", key[0], names.predictor(key[1]))
        if children.applied_digest(deployment) != plan.digest:
            return False
        seen = self.store.children_of(key)
        selector = f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY}"
        return all(
            ((kind, name) in seen or name in kube.names_cached(kind, key[0], selector))
            and self.store.holder(key[0], (kind, name)) in (None, key)
            for kind, name in map(drift.key_of, plan.apply)
            if kind in RESUME_CHECKED
        )

    def _remember(self, facts: Facts | None) -> None:
        if facts is None:
            return
        self._update((facts.owner.namespace, facts.owner.name), facts=facts)

    def forget(self, key: store.Key) -> None:
        with self._lock:
            self._records.pop(key, None)

    def known(self) -> list[store.Key]:
        with self._lock:
            return [key for key, record in self._records.items() if record.facts is not None]

    def routed_to_activator(self) -> list[store.Key]:
        with self._lock:
            records = dict(self._records)
        return routed_to_activator(records)

    def observe_child(
        self, key: store.Key, kind: str, name: str, body: Mapping[str, Any] | None
    ) -> list[store.Key]:
        """Note a watched child (None: deleted); the InferenceServices to refresh for it:
        its own if it shows drift, and any other whose plan has a child of that name (two
        objects whose children share a name: the other one has just lost it, or may now
        have it back)."""
        self.store.put_child(key, kind, name, None if body is None else drift.seen(body))
        with self._lock:
            records = list(self._records.items())
        others = [
            other
            for other, record in records
            if other != key
            and other[0] == key[0]
            and record.facts is not None
            and record.facts.plan is not None
            and (kind, name) in map(drift.key_of, record.facts.plan.apply)
        ]
        for other in others:
            # Gone from the other one: its next refresh re-applies it, or says who has it.
            self.store.put_child(other, kind, name, None)
        return ([key] if self._drifted(key, kind, name) else []) + others

    def _drifted(self, key: store.Key, kind: str, name: str) -> bool:
        record = self._record(key)
        facts, written = record.facts, record.route
        if facts is None:
            return False  # not applied by this process yet: its first refresh checks
        manifests = list(facts.plan.apply) if facts.plan else []
        if written is not None:
            manifests.append(written)
        mine = [m for m in manifests if drift.key_of(m) == (kind, name)]
        return bool(mine and drift.stale(mine, *self._children(key)))

    # -- refresh -------------------------------------------------------------------------

    def refresh(self, key: store.Key) -> None:
        # Deleted while we looked: its DELETED event makes us forget it.
        with contextlib.suppress(kube.NotFoundError):
            self._refresh(key)

    def _refresh(self, key: store.Key) -> None:
        body, deployment, pods = self.store.snapshot(key)
        facts = self._facts(key)
        if body is None or facts is None:
            # Not seen yet, or deleted (children go with it by garbage collection), or
            # not applied yet by this process (resume will apply and then refresh).
            return
        if body["metadata"].get("uid") != facts.owner.uid:
            return  # deleted and re-created under the same name; the new apply follows
        # A blocked generation is observed too: its status says why it cannot run (Argo CD
        # and kstatus read an observedGeneration behind metadata.generation as "still in
        # progress", never as stalled), though the children still run the last good one.
        blocked = any(p.blocking for p in facts.problems)
        obs = status.Observed(
            generation=facts.owner.generation if blocked else facts.generation,
            selector=names.selector_string(facts.owner.name),
            url=facts.url,
            accelerator=facts.accelerator,
            deployment=deployment,
            pods=pods,
            problems=facts.problems,
            activator=self.settings.activator is not None,
        )
        self._write_status(key, body, obs)
        if facts.hardware is not None:  # children were applied at least once
            self._write_route(key, facts, pods)
            # A blocked or invalid generation is not re-applied on every event.
            if sizing.wants_auto(body) and not any(p.blocking for p in facts.problems):
                self._resize(body, deployment, facts.hardware)
            if self._repair(key):
                self._refresh(key)  # its status names the child another object holds now

    def _repair(self, key: store.Key) -> bool:
        """Apply again the children of the running plan that were deleted or hand-edited;
        whether that found a new problem (a child another InferenceService holds now).

        Only what tideserve applied is restored (never the Deployment's replicas, which
        it does not send), and only while the owner exists: the children of a deleted
        InferenceService go by garbage collection and must not come back.
        """
        with self._writer(key):
            facts = self._facts(key)
            if facts is None or facts.plan is None or facts.partial:
                return False
            found = drift.stale(facts.plan.apply, *self._children(key))
            if not found:
                return False
            owner = kube.get(resource.KIND, *key)
            meta = (owner or {}).get("metadata") or {}
            if meta.get("uid") != facts.owner.uid or meta.get("deletionTimestamp"):
                return False
            taken: dict[drift.ChildKey, str] = {}
            for manifest, why in found:
                kind, name = drift.key_of(manifest)
                holder = self.store.holder(key[0], (kind, name))
                if holder is not None and holder != key:
                    # Another InferenceService's child by that name now: taking it back
                    # would start a tug of war. Said in SpecValid instead.
                    taken[(kind, name)] = f"InferenceService {holder[1]}'s"
                    continue
                log.warning("%s/%s: %s %s was %s; applying it again", *key, kind, name, why)
                try:
                    result = kube.apply(dict(manifest))
                except kube.InvalidError as exc:
                    # Not retried on every event; the next spec change re-applies anyway.
                    log.error("%s/%s: %s %s not restored: %s", *key, kind, name, exc)
                    self._applied(key, dict(manifest))
                    continue
                metrics.CHILD_APPLIES.labels(kind=kind, cause="repair").inc()
                metrics.DRIFT_REPAIRS.labels(kind=kind).inc()
                self._applied(key, result)
            kept = tuple(p for p in facts.problems if p.reason != checks.NAME_TAKEN)
            problems = (*kept, *checks.names_taken(taken))
            if problems == facts.problems:
                return False
            self._remember(dataclasses.replace(facts, problems=problems))
            return True

    def _resize(
        self,
        body: dict[str, Any],
        deployment: dict[str, Any] | None,
        applied: hardware_mod.Hardware,
    ) -> None:
        """Re-apply when right-sizing (auto) now wants other hardware than was applied."""
        try:
            spec = resource.parse_spec(dict(body["spec"]))
        except pydantic.ValidationError:
            return
        wanted = sizing.effective(spec, body.get("status"), deployment, applied)
        if wanted is not None and wanted != applied:
            meta = body["metadata"]
            log.info(
                "%s/%s right-sizing: %s -> %s",
                meta["namespace"],
                meta["name"],
                applied.label,
                wanted.label,
            )
            self.apply(body, log)

    def _write_status(self, key: store.Key, body: dict[str, Any], obs: status.Observed) -> None:
        current = self._record(key).status or body.get("status") or {}
        now = datetime.datetime.now(datetime.UTC)
        wanted = status.desired(current, obs, now)
        if not status.changed(current, wanted):
            return
        namespace, name = key
        kube.apply_status(namespace, name, wanted)
        metrics.STATUS_WRITES.inc()
        self._update(key, status=wanted)
        if event := status.ready_transition(status.ready_of(current), status.ready_of(wanted)):
            self._ready_event(body, *event)

    def _ready_event(
        self, body: dict[str, Any], before: tuple[str, str, str] | None, after: tuple[str, str, str]
    ) -> None:
        ready, reason, message = after
        event_type = "Normal" if ready == "True" else "Warning"
        try:
            kube.post_event(body, event_type, reason, f"Ready={ready}: {message}")
        except (kopf.TemporaryError, kube.InvalidError) as exc:
            # Best effort: the status is written already, and a failed Event must not
            # skip this refresh's route write (or retry it for a minute on a 403).
            meta = body["metadata"]
            log.warning("%s/%s: Ready event not posted: %s", meta["namespace"], meta["name"], exc)
        raw = kopf.Body(body)  # type: ignore[arg-type]
        kopf.LocalObjectLogger(body=raw, settings=kopf.OperatorSettings()).info(
            "Ready %s -> %s (%s): %s", before[0] if before else "unset", ready, reason, message
        )

    def _write_route(self, key: store.Key, facts: Facts, pods: list[dict[str, Any]]) -> None:
        activator = None
        if self.settings.activator is not None:
            activator = routes.activator_backends(self._activator_slices(self.settings.activator))
        backends = network.choose_backends(routes.predictor_endpoints(pods), activator)
        wanted = network.route_slice(facts.owner, backends)
        written = self._record(key).route
        if written is not None and drift.stale([written], *self._children(key)):
            written = None  # deleted or edited by hand: write it again
        if written == wanted:
            return
        if written is None and facts.fresh and not wanted["endpoints"]:
            # A new object with nothing to route to yet: no slice means no endpoints too,
            # and skipping the empty one saves a write per object in a burst.
            return
        result = kube.apply(wanted)
        metrics.CHILD_APPLIES.labels(kind="EndpointSlice", cause="route").inc()
        self._applied(key, result)
        self._update(key, route=wanted)

    def _activator_slices(self, activator: tuple[str, str]) -> list[dict[str, Any]]:
        namespace, name = activator
        watched = self.settings.watch_namespaces
        if not watched or namespace in watched:
            return self.store.activator()  # fed by the watch (handlers.activator_event)
        # The activator lives outside the watched namespaces, so no watch sees its
        # slices: read them, at most every few seconds.
        return kube.list_objects_cached(
            "EndpointSlice", namespace, f"kubernetes.io/service-name={name}"
        )
