"""The HTTP side: aiohttp handlers for the proxy port (KServe v2 REST) and the control port.

The proxy handler asks the Activator what to do, then either answers with the refusal or
forwards the request to the endpoint's Triton through the keep-alive pool of
tideserve.activator.upstream (the model-ready probe uses an aiohttp ClientSession).
Request bodies are read only once a request may go (held requests leave their bodies in
the socket buffers instead of in memory); response bodies are streamed when large.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import yarl
from aiohttp import web
from multidict import CIMultiDict

from tideserve.activator import holding, limits, queueing, routing, upstream
from tideserve.activator import metrics as metrics_mod

log = logging.getLogger(__name__)

# RFC 9110 hop-by-hop headers, plus the ones aiohttp recomputes for the new message.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        routing.ENDPOINT_HEADER,
    )
)
HOP_BY_HOP_RAW = frozenset(h.encode("latin-1") for h in HOP_BY_HOP)
# Responses up to this size are read whole (one write, a Content-Length); larger ones are
# streamed chunk by chunk so the activator never buffers a big tensor.
BUFFER_LIMIT = 1 << 20
# Distinct (X-Tideserve-Endpoint, Host) pairs remembered by the proxy.
KEY_CACHE_SIZE = 4096

ACTIVATOR_KEY = web.AppKey("activator", holding.Activator)
METRICS_KEY = web.AppKey("metrics", metrics_mod.Metrics)

NO_ENDPOINT = queueing.Refusal(
    400,
    0,
    "cannot tell which endpoint this request is for: call "
    "<name>.<namespace>.svc or set X-Tideserve-Endpoint: <namespace>/<name>",
)


def refusal_response(refusal: queueing.Refusal, *, close: bool = False) -> web.Response:
    response = web.Response(
        status=refusal.status,
        headers=refusal.headers,
        content_type="application/json",
        text=json.dumps(refusal.body()),
    )
    if close:  # the rest of the request (an unread body) is not worth reading
        response.force_close()
    return response


def too_large(max_bytes: int) -> queueing.Refusal:
    return queueing.Refusal(413, 0, f"request body larger than {max_bytes} bytes")


class _ClientFailed(Exception):
    """The client's own request failed while its body was read (too large, too slow)."""

    def __init__(self, refusal: queueing.Refusal) -> None:
        super().__init__(refusal.error)
        self.refusal = refusal


class Proxy:
    """The proxy port's only handler. It runs on aiohttp's low-level server (no router,
    no middlewares): every request takes the same path, and each microsecond saved here
    is a microsecond less added to every pass-through request."""

    def __init__(
        self,
        activator: holding.Activator,
        pool: upstream.Pool,
        metrics: metrics_mod.Metrics,
        upstreams: Mapping[queueing.EndpointKey, str],
        client_limits: limits.Limits | None = None,
    ) -> None:
        self._limits = client_limits or limits.defaults()
        self._activator = activator
        self._pool = pool
        self._metrics = metrics
        self._upstreams = upstreams
        self._addresses: dict[queueing.EndpointKey, tuple[str, int]] = {}
        self._keys: dict[tuple[str | None, str | None], queueing.EndpointKey | None] = {}
        # labels() takes a lock and builds a key each call; keep the children.
        self._counters: dict[tuple[queueing.EndpointKey | None, int], Any] = {}

    def _count(self, key: queueing.EndpointKey | None, code: int) -> None:
        counter = self._counters.get((key, code))
        if counter is None:
            namespace, name = (key.namespace, key.name) if key else ("", "")
            counter = self._metrics.requests.labels(namespace, name, str(code))
            self._counters[(key, code)] = counter
        counter.inc()

    def _address(self, key: queueing.EndpointKey) -> tuple[str, int]:
        address = self._addresses.get(key)
        if address is None:
            url = yarl.URL(routing.http_upstream(key, self._upstreams))
            address = self._addresses[key] = (url.host or "", url.port or 80)
        return address

    def _endpoint(self, headers: Mapping[str, str]) -> queueing.EndpointKey | None:
        """routing.endpoint_for, remembered per (header, Host) pair: clients send the same
        few values again and again, and parsing them was a visible part of each request."""
        raw = (headers.get(routing.ENDPOINT_HEADER), headers.get("Host"))
        try:
            return self._keys[raw]
        except KeyError:
            pass
        if len(self._keys) >= KEY_CACHE_SIZE:  # arbitrary Host headers cannot grow it
            self._keys.clear()
        key = self._keys[raw] = routing.endpoint_for(headers)
        return key

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        key = self._endpoint(request.headers)
        if key is None:
            self._count(None, 400)
            return refusal_response(NO_ENDPOINT)
        length = request.content_length
        if length is not None and length > self._limits.max_body_bytes:
            # Refused before it is held: a body it could never forward takes no place.
            self._count(key, 413)
            return refusal_response(too_large(self._limits.max_body_bytes), close=True)
        # When the upstream refuses the connection the request was never sent, so holding
        # it again until the model answers its probe is safe and invisible (within the
        # deadline of its first arrival: queueing.may_rehold).
        arrived = self._activator.now()
        reholds = 0
        while True:
            outcome = await self._activator.admit(key, arrived=arrived if reholds else None)
            if isinstance(outcome, queueing.Refusal):
                self._count(key, outcome.status)
                return refusal_response(outcome)
            try:
                response = await self._forward(request, key, outcome)
            except upstream.ConnectError as error:
                if self._activator.upstream_failed(key, arrived=arrived, reholds=reholds):
                    reholds += 1
                    continue
                return self._bad_gateway(key, f"endpoint {key} upstream unreachable: {error}")
            except _ClientFailed as failed:
                self._count(key, failed.refusal.status)
                return refusal_response(failed.refusal, close=True)
            except upstream.HeadTimeout as error:
                self._count(key, 504)
                message = f"endpoint {key} did not answer in time: {error}"
                return refusal_response(queueing.Refusal(504, 0, message))
            except upstream.ProtocolError as error:
                return self._bad_gateway(key, f"endpoint {key} upstream failed: {error}")
            self._count(key, response.status)
            return response

    def _bad_gateway(self, key: queueing.EndpointKey, message: str) -> web.Response:
        self._count(key, 502)
        return refusal_response(queueing.Refusal(502, 1, message))

    async def _forward(
        self,
        request: web.BaseRequest,
        key: queueing.EndpointKey,
        outcome: queueing.Forward | holding.Released,
    ) -> web.StreamResponse:
        host, port = self._address(key)
        body = await self._read_body(request)
        headers = [(k, v) for k, v in request.raw_headers if k.lower() not in HOP_BY_HOP_RAW]
        started = time.perf_counter()
        answer = await self._pool.send(host, port, request.method, request.raw_path, headers, body)
        try:
            self._metrics.proxy_seconds.observe(time.perf_counter() - started)
            head = answer.head
            out = CIMultiDict([(k, v) for k, v in head.headers if k.lower() not in HOP_BY_HOP])
            if isinstance(outcome, holding.Released):
                # Say that (and how long) the request was held, as KEDA's interceptor does
                # with X-KEDA-HTTP-Cold-Start; sequence numbers let tests check the order.
                out["X-Tideserve-Held-Seconds"] = f"{outcome.held_seconds:.3f}"
                out["X-Tideserve-Held-Seq"] = str(outcome.ticket.seq)
                out["X-Tideserve-Forward-Seq"] = str(outcome.forward_seq)
            length = head.content_length
            if length is not None and length <= BUFFER_LIMIT:
                return web.Response(
                    status=head.status, reason=head.reason, headers=out, body=await answer.read()
                )
            streamed = web.StreamResponse(status=head.status, reason=head.reason, headers=out)
            if length is not None:
                streamed.content_length = length
            await streamed.prepare(request)
            try:
                async for chunk in answer.iter_chunks():
                    await streamed.write(chunk)
            except upstream.ProtocolError as error:
                # The head is already sent: a 502 is no longer possible. Cut the client's
                # connection so it sees a truncated response, not a complete wrong one.
                log.warning("endpoint %s upstream failed mid-body: %s", key, error)
                if request.transport is not None:
                    request.transport.close()
                return streamed
            await streamed.write_eof()
            return streamed
        finally:
            answer.release()

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        try:
            async with asyncio.timeout(self._limits.body_timeout_seconds):
                return await request.read()
        except web.HTTPRequestEntityTooLarge as error:  # chunked: no length to check first
            raise _ClientFailed(too_large(self._limits.max_body_bytes)) from error
        except TimeoutError as error:
            seconds = self._limits.body_timeout_seconds
            refusal = queueing.Refusal(408, 0, f"request body not received within {seconds:g} s")
            raise _ClientFailed(refusal) from error


def make_probe(
    session: aiohttp.ClientSession, upstreams: dict[queueing.EndpointKey, str]
) -> holding.Probe:
    async def probe(state: queueing.EndpointState) -> bool:
        url = f"{routing.http_upstream(state.key, upstreams)}/v2/models/{state.model}/ready"
        timeout = aiohttp.ClientTimeout(total=2)
        async with session.get(url, timeout=timeout) as response:
            return response.status == 200

    return probe


# ---- control port ---------------------------------------------------------------------


async def _demand(request: web.Request) -> web.Response:
    return web.json_response({"endpoints": request.app[ACTIVATOR_KEY].demand()})


async def _endpoints(request: web.Request) -> web.Response:
    return web.json_response({"endpoints": request.app[ACTIVATOR_KEY].describe()})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS_KEY].exposition(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _readyz(request: web.Request) -> web.Response:
    """Ready once endpoints are listed; not ready again from SIGTERM on (draining), so the
    pod leaves the route before its listener closes."""
    activator = request.app[ACTIVATOR_KEY]
    synced, draining = activator.synced.is_set(), activator.draining
    ok = synced and not draining
    return web.json_response({"synced": synced, "draining": draining}, status=200 if ok else 503)


def control_app(activator: holding.Activator, metrics: metrics_mod.Metrics) -> web.Application:
    app = web.Application()
    app[ACTIVATOR_KEY] = activator
    app[METRICS_KEY] = metrics
    app.router.add_get("/demand", _demand)
    app.router.add_get("/endpoints", _endpoints)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app
