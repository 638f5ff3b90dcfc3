"""`tideserve activator`: wire the watch, the held queues, the proxy and control ports.

Ports: 8080 HTTP proxy (KServe v2 REST), 8081 gRPC unary pass-through, 9090 control
(GET /demand, /metrics, /healthz, /readyz). Flags default to the environment variables
the chart sets (tideserve.settings.ActivatorSettings, validated once, a bad value named).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from tideserve import kubeconfig
from tideserve import settings as settings_mod
from tideserve.activator import (
    edge,
    grpc_passthrough,
    holding,
    limits,
    proxy,
    queueing,
    routing,
    upstream,
    watch,
)
from tideserve.activator import metrics as metrics_mod

log = logging.getLogger("tideserve.activator")

HELD_BODY_BUFFER = 1 << 16
# After the drain (settings.drain_seconds): how long responses still being written
# (forwards in flight, the final 503s) get before connections are cut.
FINISH_SECONDS = 5.0


def parse_args(argv: Sequence[str], env: Mapping[str, str]) -> argparse.Namespace:
    """Flags over the environment's settings. Raises settings.SettingsError (naming the
    variable) for a bad environment value; argparse names a bad flag itself."""
    settings = settings_mod.activator_from_env(env)
    parser = argparse.ArgumentParser(
        prog="tideserve activator",
        description="Hold requests for InferenceServices at zero, wake them, forward in order.",
    )
    parser.add_argument(
        "--host",
        default=settings.host,
        help="address to listen on (env TIDESERVE_ACTIVATOR_HOST)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=settings.http_port,
        help="KServe v2 REST proxy port (env TIDESERVE_ACTIVATOR_HTTP_PORT)",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=settings.grpc_port,
        help="gRPC unary pass-through port, 0 to disable (env TIDESERVE_ACTIVATOR_GRPC_PORT)",
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=settings.control_port,
        help="/demand, /metrics, /healthz, /readyz (env TIDESERVE_ACTIVATOR_CONTROL_PORT)",
    )
    parser.add_argument(
        "--kubeconfig",
        default=settings.kubeconfig or None,
        help="kubeconfig file; in a pod the service account is used",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch only this namespace (repeatable; env "
        "TIDESERVE_WATCH_NAMESPACES, comma-separated); default all",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        help="ns/name=http://host:port: Triton HTTP base URL for an endpoint "
        "instead of its predictor Service (repeatable; env "
        "TIDESERVE_ACTIVATOR_UPSTREAMS, comma-separated)",
    )
    parser.add_argument(
        "--grpc-upstream",
        action="append",
        default=[],
        help="ns/name=host:port: Triton gRPC address for an endpoint (env "
        "TIDESERVE_ACTIVATOR_GRPC_UPSTREAMS)",
    )
    parser.add_argument(
        "--static",
        action="append",
        default=[],
        help="ns/name=model: an endpoint that is always ready, without the "
        "API server (benchmarks, local use); with only --static no watch runs",
    )
    parser.add_argument(
        "--no-watch", action="store_true", help="do not watch InferenceServices (use with --static)"
    )
    parser.add_argument(
        "--default-max-held",
        type=int,
        default=settings.max_held_requests,
        help="maxHeldRequests for objects that do not set it "
        "(env TIDESERVE_ACTIVATOR_MAX_HELD_REQUESTS)",
    )
    parser.add_argument(
        "--default-wake-deadline",
        type=float,
        default=settings.wake_deadline_seconds,
        help="wakeDeadlineSeconds for objects that do not set it "
        "(env TIDESERVE_ACTIVATOR_WAKE_DEADLINE_SECONDS)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=settings.drain_seconds,
        help="on SIGTERM, keep forwarding held requests for up to this long while a replica "
        "becomes ready, then answer the rest 503; keep it below the pod's "
        f"terminationGracePeriodSeconds minus {FINISH_SECONDS:g} "
        "(env TIDESERVE_ACTIVATOR_DRAIN_SECONDS)",
    )
    parser.add_argument(
        "--upstream-connections",
        type=int,
        default=settings.upstream_connections,
        help="keep-alive connections to each upstream Triton, at most "
        "(env TIDESERVE_ACTIVATOR_UPSTREAM_CONNECTIONS)",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default=settings.loop,
        help="event loop: uvloop when installed (auto), or force one",
    )
    parser.add_argument(
        "--log-level",
        default=settings.log_level,
        type=_log_level,
        help="(env TIDESERVE_LOG_LEVEL)",
    )
    limits.add_arguments(parser)
    args = parser.parse_args(list(argv))
    try:
        args.limits = limits.resolve(args, settings)
    except limits.SettingError as error:
        parser.error(str(error))
    if args.namespace is None:
        args.namespace = list(settings.watch_namespaces)
    args.upstream += settings.upstreams
    args.grpc_upstream += settings.grpc_upstreams
    return args


def _log_level(value: str) -> str:
    if value.upper() not in logging.getLevelNamesMapping():
        raise argparse.ArgumentTypeError(f"not a logging level: {value!r}")
    return value


def static_states(items: Sequence[str]) -> list[queueing.EndpointState]:
    states = []
    for key, model in routing.parse_overrides(items).items():
        states.append(queueing.EndpointState(key=key, model=model, ready_replicas=1))
    return states


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    # Before anything is opened: without an API server there is nothing to serve.
    api = None if args.no_watch else watch.api_client(args.kubeconfig)
    metrics = metrics_mod.Metrics()
    upstreams = routing.parse_overrides(args.upstream)
    connector = aiohttp.TCPConnector(
        limit=args.upstream_connections, limit_per_host=0, ttl_dns_cache=10, keepalive_timeout=30
    )
    # No total timeout: inference may legitimately take long; a stuck connect may not.
    timeout = aiohttp.ClientTimeout(total=None, connect=10)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        skip_auto_headers=["User-Agent", "Accept-Encoding", "Accept"],
        cookie_jar=aiohttp.DummyCookieJar(),  # a proxy must not keep users' cookies
    )
    client_limits: limits.Limits = args.limits
    pool = upstream.Pool(
        limit=args.upstream_connections, head_timeout=client_limits.upstream_head_timeout_seconds
    )
    activator = holding.Activator(proxy.make_probe(session, upstreams), metrics)

    def to_state(obj: dict[str, Any]) -> queueing.EndpointState:
        return routing.state_from_object(
            obj,
            default_max_held=args.default_max_held,
            default_wake_deadline=args.default_wake_deadline,
        )

    for state in static_states(args.static):
        activator.upsert(state)

    watcher = None
    if args.no_watch:
        activator.synced.set()
    else:

        def on_snapshot(items: list[dict[str, Any]], namespace: str | None) -> None:
            states = [to_state(i) for i in items]
            loop.call_soon_threadsafe(activator.replace, states, namespace)

        def on_event(kind: str, obj: dict[str, Any]) -> None:
            state = to_state(obj)
            if kind == "DELETED":
                loop.call_soon_threadsafe(activator.remove, state.key)
            else:
                loop.call_soon_threadsafe(activator.upsert, state)

        watcher = watch.Watcher(api, args.namespace, on_snapshot, on_event)
        watcher.start()

    def request_factory(
        message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        # The low-level server's default caps bodies at 1 MiB; tensors can be larger.
        return web.BaseRequest(
            message,
            payload,
            protocol,
            writer,
            task,
            loop,
            client_max_size=client_limits.max_body_bytes,
        )

    proxy_server = edge.Server(
        proxy.Proxy(activator, pool, metrics, upstreams, client_limits),
        header_timeout=client_limits.header_timeout_seconds,
        keepalive_timeout=client_limits.idle_timeout_seconds,
        request_factory=request_factory,
        handler_cancellation=True,
        access_log=None,
        # Bodies pass through as the client encoded them (Content-Encoding kept).
        auto_decompress=False,
        # What a held request's body may occupy in memory before aiohttp stops reading
        # its socket (the rest waits in kernel buffers): 1,000 held x 64 KiB = 64 MiB.
        read_bufsize=HELD_BODY_BUFFER,
    )
    runners: list[web.BaseRunner] = [
        web.ServerRunner(proxy_server, shutdown_timeout=FINISH_SECONDS),
        web.AppRunner(
            proxy.control_app(activator, metrics),
            access_log=None,
            shutdown_timeout=FINISH_SECONDS,
        ),
    ]
    sites = []
    for runner, port in zip(runners, (args.http_port, args.control_port), strict=True):
        await runner.setup()
        sites.append(web.TCPSite(runner, args.host, port, backlog=2048))
        await sites[-1].start()
    grpc_server = None
    if args.grpc_port:
        grpc_server = await grpc_passthrough.start(
            activator,
            metrics,
            routing.parse_overrides(args.grpc_upstream),
            f"{args.host}:{args.grpc_port}",
        )
    log.info(
        "activator listening: http %s:%d grpc %s control %d",
        args.host,
        args.http_port,
        args.grpc_port or "off",
        args.control_port,
    )
    await stop.wait()
    await drain(activator, proxy_server, sites[0], grpc_server, args.drain_seconds)
    if watcher:
        watcher.stop.set()
    for runner in runners:
        await runner.cleanup()
    await session.close()
    await pool.close()


async def drain(
    activator: holding.Activator,
    proxy_server: web.Server,
    proxy_site: web.TCPSite,
    grpc_server: Any,
    seconds: float,
) -> None:
    """SIGTERM: readiness fails and no new connection or held request is taken; held
    requests still go out if a replica becomes ready within `seconds`; the rest get 503
    with Retry-After. The control port keeps serving /demand meanwhile, so the autoscaler
    still sees the held requests and wakes their endpoints."""
    loop = asyncio.get_running_loop()
    log.info("SIGTERM: draining %d held requests for up to %.0f s", activator.held(), seconds)
    activator.drain()
    await proxy_site.stop()  # the listener closes: new connections are refused
    proxy_server.pre_shutdown()  # keep-alive connections close after their current request
    grpc_stopped = None
    if grpc_server is not None:
        # New calls are refused at once; calls in flight (held ones too) get until the
        # drain ends plus the time to write their answers.
        grpc_stopped = loop.create_task(grpc_server.stop(grace=seconds + FINISH_SECONDS))
    try:
        await asyncio.wait_for(activator.drained(), seconds)
    except TimeoutError:
        log.info("drain over: answering %d held requests with 503", activator.held())
    activator.close()
    if grpc_stopped is not None:
        await grpc_stopped


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv, os.environ)
    except settings_mod.SettingsError as error:
        print(f"tideserve activator: bad setting: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(args, stop)

    with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
        try:
            runner.run(run())
        except kubeconfig.NoCluster as error:
            print(f"tideserve activator: {error}", file=sys.stderr)
            return 1
    return 0


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The stdlib loop by default; uvloop on request (it is not a dependency, and on the
    test machine it was no faster: docs/benchmarks/activator.md compares both)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415  (optional dependency)
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
