"""kopf handlers: thin. They unpack kopf's arguments and delegate to the Reconciler.

Resources are always named with group and version (a bare plural would also match
KServe's `inferenceservices`). No timers, daemons or delete handlers: children are
garbage-collected through ownerReferences, so kopf adds no finalizer to user objects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from tideserve import kube
from tideserve import settings as settings_mod
from tideserve.api import crd, resource
from tideserve.controller import metrics, persistence, reconcile, refresher, sizing, store
from tideserve.render import names

ISVC = (resource.GROUP, resource.VERSION, resource.PLURAL)
# A loop that runs inside the operator process, started after kopf is up: `run(settings,
# stop)`. main.py (the composition root) passes them in; the controller never imports
# the autoscaler or right-sizing itself.
Loop = Callable[[settings_mod.Settings, asyncio.Event], Awaitable[None]]
# Children watched for drift besides the Deployment: (group, version, plural, kind).
CHILD_KINDS = (
    ("", "v1", "services", "Service"),
    ("", "v1", "configmaps", "ConfigMap"),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
)
APPLY_THREADS = 16
REFRESH_THREADS = 8
# How long a stop waits for running applies and status writes (each bounded by the
# client's 30 s read timeout; this stays inside the pod's 30 s grace period).
POOL_JOIN_SECONDS = 20
# Watch timeouts: without them a watch can go silent for good after a network blip.
SERVER_TIMEOUT = 300
CLIENT_TIMEOUT = 330


class QuietWatchHandlers(logging.Filter):
    """Drop kopf's per-event "Handler 'watch-...' succeeded" lines: the watch handlers
    only feed the cache, and at hundreds of objects those lines drown everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not (message.startswith("Handler 'watch-") and message.endswith("succeeded."))


def watch_selectors(activator: bool) -> dict[tuple[str, str, str], str]:
    """Server-side label selectors per watched kind: only tideserve's children (and its
    predictor pods) stream to the operator, not every Service, ConfigMap or pod of the
    cluster. EndpointSlices only without an activator: its slices carry none of these
    labels, and selectors cannot OR across keys."""
    managed = f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY}"
    out = {
        ("apps", "v1", "deployments"): managed,
        ("", "v1", "pods"): f"app.kubernetes.io/name={names.PREDICTOR_APP}",
        **{(group, version, plural): managed for group, version, plural, _ in CHILD_KINDS},
    }
    if activator:
        del out[("discovery.k8s.io", "v1", "endpointslices")]
    return out


def configure(settings: kopf.OperatorSettings, activator: bool = False) -> None:
    """kopf's own settings: state in annotations (the status schema is strict)."""
    prefix = resource.LABEL_PREFIX
    settings.persistence.progress_storage = persistence.ProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = persistence.DiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{prefix}/finalizer"
    settings.watching.server_timeout = SERVER_TIMEOUT
    settings.watching.client_timeout = CLIENT_TIMEOUT
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 16
    for selector, labels in watch_selectors(activator).items():
        settings.watching.label_selectors[selector] = labels


async def check_crd(logger: logging.Logger | kopf.Logger) -> bool:
    """Say loudly, once at start, when the installed CRD is not this operator's.

    Not fatal: an older CRD still serves every field it has, and a crash loop would stop
    the endpoints that work; the log line and tideserve_crd_current say what to do."""
    name = f"{resource.PLURAL}.{resource.GROUP}"
    try:
        installed = await asyncio.to_thread(kube.get, "CustomResourceDefinition", None, name)
    except Exception as error:  # the check must never stop the operator
        logger.warning("could not read the CRD %s to check its version: %s", name, error)
        return False
    problem = crd.mismatch(installed)
    metrics.CRD_CURRENT.set(0 if problem else 1)
    if problem:
        logger.error("%s", problem)
    return problem is None


def _start_loop(
    name: str, run: Loop, settings: settings_mod.Settings, stop: asyncio.Event, logger: Any
) -> asyncio.Task[Any]:
    """Start `run(settings, stop)` as a task; a crash is logged, never kopf's."""

    async def guarded() -> None:
        try:
            await run(settings, stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the %s loop crashed; the operator keeps reconciling", name)

    logger.info("starting %s", run.__module__)
    return asyncio.get_running_loop().create_task(guarded(), name=name)


def register(
    registry: kopf.OperatorRegistry,
    rec: reconcile.Reconciler,
    loops_to_start: Mapping[str, Loop] | None = None,
) -> None:
    """Register every handler on `registry`, bound to one Reconciler."""
    refreshers: list[refresher.Refresher] = []
    # Separate pools: a burst of creations must not starve status and routing updates of
    # the objects already applied (the client blocks; these threads wait on the API).
    apply_pool = concurrent.futures.ThreadPoolExecutor(APPLY_THREADS, "tideserve-apply")
    refresh_pool = concurrent.futures.ThreadPoolExecutor(REFRESH_THREADS, "tideserve-refresh")
    stop = asyncio.Event()
    loops: list[asyncio.Task[Any]] = []

    def schedule(key: store.Key) -> None:
        if refreshers:
            refreshers[0].schedule(key)

    async def refresh(key: store.Key) -> None:
        await asyncio.get_running_loop().run_in_executor(refresh_pool, rec.refresh, key)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A private registry gets none of kopf's default login handlers.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
        configure(settings, activator=rec.settings.activator is not None)
        await check_crd(logger)
        refreshers.append(refresher.Refresher(refresh))
        for name, run in (loops_to_start or {}).items():
            loops.append(_start_loop(name, run, rec.settings, stop, logger))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(logger: kopf.Logger, **_: Any) -> None:
        stop.set()
        if loops:
            _done, pending = await asyncio.wait(loops, timeout=10)
            for task in pending:
                logger.warning("%s did not stop within 10s; cancelling", task.get_name())
                task.cancel()
        if refreshers:
            await refreshers[0].close()
        apply_pool.shutdown(wait=False, cancel_futures=True)
        refresh_pool.shutdown(wait=False, cancel_futures=True)
        # Let the writes already running finish before kopf returns: with leader election
        # main.py releases the Lease right after, and a standby may write at once.
        joined = asyncio.gather(
            asyncio.to_thread(apply_pool.shutdown, wait=True),
            asyncio.to_thread(refresh_pool.shutdown, wait=True),
        )
        try:
            await asyncio.wait_for(joined, timeout=POOL_JOIN_SECONDS)
        except TimeoutError:
            logger.warning("writes still running after %ss; stopping anyway", POOL_JOIN_SECONDS)

    @kopf.on.resume(*ISVC, id="apply", registry=registry)
    @kopf.on.create(*ISVC, id="apply", registry=registry)
    @kopf.on.update(*ISVC, field="spec", id="apply", registry=registry)
    async def apply(body: kopf.Body, reason: str, logger: kopf.Logger, **_: Any) -> None:
        key = (str(body.metadata.namespace), str(body.metadata.name))
        rec.store.put_isvc(key, body)
        try:
            work = functools.partial(
                rec.apply,
                dict(body),
                logger,
                fresh=reason == "create",
                resumed=reason == "resume",
            )
            await asyncio.get_running_loop().run_in_executor(apply_pool, work)
        finally:
            # Also after a failure: status then says why (invalid spec, missing Secret).
            schedule(key)

    @kopf.on.event(*ISVC, id="watch-inferenceservices", registry=registry)
    async def isvc_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        key = (str(body.metadata.namespace), str(body.metadata.name))
        if event["type"] == "DELETED":
            rec.store.put_isvc(key, None)
            rec.forget(key)
        else:
            rec.store.put_isvc(key, body)
            if sizing.wants_auto(body):
                schedule(key)  # a new recommendation in status may change the hardware

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        labels={names.MANAGED_BY_LABEL: names.MANAGED_BY},
        id="watch-deployments",
        registry=registry,
    )
    async def deployment_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        key = store.owner_key(body)
        if key is None:
            return
        live = None if event["type"] == "DELETED" else body
        rec.store.put_deployment(key, live)
        displaced = rec.observe_child(key, "Deployment", str(body.metadata.name), live)
        for other in {key, *displaced}:  # status follows the Deployment; drift on refresh
            schedule(other)

    # The other children are watched only to repair drift: a deleted or hand-edited
    # child is applied again. Their events are few (tideserve's own writes, hand edits).
    for group, version, plural, kind in CHILD_KINDS:

        @kopf.on.event(
            group,
            version,
            plural,
            labels={names.MANAGED_BY_LABEL: names.MANAGED_BY},
            id=f"watch-{plural}",
            param=kind,
            registry=registry,
        )
        async def child_event(
            event: kopf.RawEvent, body: kopf.Body, param: Any = None, **_: Any
        ) -> None:
            key = store.owner_key(body)
            if key is None:
                return
            kind, name = str(param), str(body.metadata.name)
            for other in rec.observe_child(
                key, kind, name, None if event["type"] == "DELETED" else body
            ):
                schedule(other)

    @kopf.on.event(
        "",
        "v1",
        "pods",
        labels={"app.kubernetes.io/name": names.PREDICTOR_APP},
        id="watch-pods",
        registry=registry,
    )
    async def pod_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        key = store.owner_key(body)
        if key is None:
            return
        pod_name = str(body.metadata.name)
        rec.store.put_pod(key, pod_name, None if event["type"] == "DELETED" else body)
        schedule(key)

    activator = rec.settings.activator
    if activator is not None:
        activator_ns, activator_name = activator

        @kopf.on.event(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            labels={"kubernetes.io/service-name": activator_name},
            id="watch-activator",
            registry=registry,
        )
        async def activator_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
            if body.metadata.namespace != activator_ns:
                return
            name = str(body.metadata.name)
            rec.store.put_activator_slice(name, None if event["type"] == "DELETED" else body)
            # Endpoints at zero route to the activator: their slices must follow its pods.
            # Those routed to their own pods do not care where the activator runs.
            for key in rec.routed_to_activator():
                schedule(key)
