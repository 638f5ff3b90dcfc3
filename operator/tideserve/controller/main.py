"""`tideserve run`: the operator process (kopf + metrics + the autoscaler loop)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys

import kopf
import prometheus_client

from tideserve import kube, kubeconfig
from tideserve import settings as settings_mod
from tideserve.autoscaler import loop as autoscaler_loop
from tideserve.controller import handlers, leader, metrics, reconcile
from tideserve.rightsizing import loop as rightsizing_loop

# The loops started beside kopf, by name (for --without). This module is the composition
# root: the one place in the controller that knows the autoscaler and right-sizing.
LOOPS: dict[str, handlers.Loop] = {
    "autoscaler": autoscaler_loop.run,
    "rightsizing": rightsizing_loop.run,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tideserve run", description="Run the tideserve operator against the cluster."
    )
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="watch only this namespace (repeatable); default: TIDESERVE_WATCH_NAMESPACES, "
        "else the whole cluster",
    )
    parser.add_argument(
        "--peering",
        action="store_true",
        help="enable kopf peering (default: standalone; tideserve runs as one replica)",
    )
    parser.add_argument(
        "--bind",
        # In a pod the probes and Prometheus come from outside; tests pass 127.0.0.1.
        default="0.0.0.0",  # noqa: S104
        help="address for the metrics and liveness servers",
    )
    parser.add_argument(
        "--without",
        action="append",
        choices=sorted(LOOPS),
        default=[],
        help="do not start this in-process loop (repeatable); e.g. to test the reconciler alone",
    )
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster or $KUBECONFIG")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--log-format", choices=["plain", "full", "json"], default="full")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        settings = settings_mod.from_env()
    except settings_mod.SettingsError as error:
        print(f"tideserve run: bad setting: {error}", file=sys.stderr)
        return 2
    kopf.configure(
        verbose=args.verbose,
        debug=args.debug,
        log_format=kopf.LogFormat[args.log_format.upper()],
    )
    log = logging.getLogger("tideserve.controller")
    # httpx logs every request at INFO (the autoscaler polls the activator each tick).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(handlers.QuietWatchHandlers())
    try:
        kube.configure(args.kubeconfig)
    except kubeconfig.NoCluster as error:
        print(f"tideserve run: {error}", file=sys.stderr)
        return 1
    namespaces = tuple(args.namespace or settings.watch_namespaces)
    # The loops started beside kopf (autoscaler, right-sizing) see the same namespaces.
    settings = settings.model_copy(update={"watch_namespaces": namespaces})
    registry = kopf.OperatorRegistry()
    loops = {name: run for name, run in LOOPS.items() if name not in args.without}
    handlers.register(registry, reconcile.Reconciler(settings), loops)
    if settings.metrics_port:
        # Repair counters start at 0: a series born at 1 is no increase to Prometheus, and
        # the drift alert would miss the first repair of each kind.
        for kind in ("Deployment", *(kind for *_, kind in handlers.CHILD_KINDS)):
            metrics.DRIFT_REPAIRS.labels(kind=kind)
        prometheus_client.start_http_server(settings.metrics_port, addr=args.bind)
    elector: leader.Elector | None = None
    if settings.leader_election:
        # Only the leader starts kopf: standbys never run a handler or a loop.
        identity = settings.pod_name or f"{socket.gethostname()}-{os.getpid()}"
        elector = leader.Elector(settings.lease_namespace, settings.lease_name, identity)
        log.info(
            "standby until this process (%s) holds Lease %s/%s",
            identity,
            settings.lease_namespace,
            settings.lease_name,
        )
        if not leader.wait_for_leadership(elector, args.bind, settings.health_port):
            log.info("stopped while standby")
            return 0
        elector.start_renewing()
    else:
        # Without election this process is the only writer: the leader, for the
        # "no leader" alert and the dashboard.
        metrics.LEADER.set(1)
    liveness = (
        f"http://{args.bind}:{settings.health_port}/healthz" if settings.health_port else None
    )
    log.info(
        "tideserve operator: namespaces=%s, standalone=%s, metrics :%s, liveness %s, leader %s",
        ",".join(namespaces) or "(cluster-wide)",
        not args.peering,
        settings.metrics_port,
        liveness,
        "elected" if elector else "(no election)",
    )
    try:
        return _run_kopf(registry, args.peering, namespaces, liveness)
    finally:
        if elector is not None:
            # kopf has stopped (handlers and loops are done): hand over at once.
            elector.release()


def _run_kopf(
    registry: kopf.OperatorRegistry,
    peering: bool,
    namespaces: tuple[str, ...],
    liveness: str | None,
) -> int:
    try:
        kopf.run(
            registry=registry,
            standalone=not peering,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness,
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
    return 0
