"""The HTTP side: aiohttp handlers for the proxy port (KServe v2 REST) and the control port.

The proxy handler asks the Activator what to do, then either answers with the refusal or
forwards the request to the endpoint's Triton through one pooled aiohttp ClientSession.
Request bodies are read only once a request may go (held requests leave their bodies in
the socket buffers instead of in memory); response bodies are streamed when large.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping

import aiohttp
import yarl
from aiohttp import web
from multidict import CIMultiDict

from tideserve.activator import holding, queueing, routing
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
# Responses up to this size are read whole (one write, a Content-Length); larger ones are
# streamed chunk by chunk so the activator never buffers a big tensor.
BUFFER_LIMIT = 1 << 20

ACTIVATOR_KEY = web.AppKey("activator", holding.Activator)
METRICS_KEY = web.AppKey("metrics", metrics_mod.Metrics)

NO_ENDPOINT = queueing.Refusal(
    400,
    0,
    "cannot tell which endpoint this request is for: call "
    "<name>.<namespace>.svc or set X-Tideserve-Endpoint: <namespace>/<name>",
)


def _forward_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP])


def refusal_response(refusal: queueing.Refusal) -> web.Response:
    return web.Response(
        status=refusal.status,
        headers=refusal.headers,
        content_type="application/json",
        text=json.dumps(refusal.body()),
    )


class Proxy:
    """The proxy port's only handler. It runs on aiohttp's low-level server (no router,
    no middlewares): every request takes the same path, and each microsecond saved here
    is a microsecond less added to every pass-through request."""

    def __init__(
        self,
        activator: holding.Activator,
        session: aiohttp.ClientSession,
        metrics: metrics_mod.Metrics,
        upstreams: Mapping[queueing.EndpointKey, str],
    ) -> None:
        self._activator = activator
        self._session = session
        self._metrics = metrics
        self._upstreams = upstreams

    def _count(self, key: queueing.EndpointKey | None, code: int) -> None:
        namespace, name = (key.namespace, key.name) if key else ("", "")
        self._metrics.requests.labels(namespace, name, str(code)).inc()

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        key = routing.endpoint_for(request.headers)
        if key is None:
            self._count(None, 400)
            return refusal_response(NO_ENDPOINT)
        # One retry when the upstream refused the connection: the request was never sent,
        # so holding it again until the model answers its probe is safe and invisible.
        for attempt in range(2):
            outcome = await self._activator.admit(key)
            if isinstance(outcome, queueing.Refusal):
                self._count(key, outcome.status)
                return refusal_response(outcome)
            try:
                response = await self._forward(request, key, outcome)
            except aiohttp.ClientConnectorError as error:
                self._activator.upstream_failed(key)
                if attempt == 0:
                    continue
                self._count(key, 502)
                return refusal_response(
                    queueing.Refusal(502, 1, f"endpoint {key} upstream unreachable: {error}")
                )
            self._count(key, response.status)
            return response
        raise AssertionError("unreachable")

    async def _forward(
        self,
        request: web.BaseRequest,
        key: queueing.EndpointKey,
        outcome: queueing.Forward | holding.Released,
    ) -> web.StreamResponse:
        url = routing.http_upstream(key, self._upstreams) + request.raw_path
        body = await request.read()
        started = time.perf_counter()
        async with self._session.request(
            request.method,
            yarl.URL(url, encoded=True),
            data=body,
            headers=_forward_headers(request.headers),
            allow_redirects=False,
        ) as upstream:
            self._metrics.proxy_seconds.observe(time.perf_counter() - started)
            headers = _forward_headers(upstream.headers)
            if isinstance(outcome, holding.Released):
                # Say that (and how long) the request was held, as KEDA's interceptor does
                # with X-KEDA-HTTP-Cold-Start; sequence numbers let tests check the order.
                headers["X-Tideserve-Held-Seconds"] = f"{outcome.held_seconds:.3f}"
                headers["X-Tideserve-Held-Seq"] = str(outcome.ticket.seq)
                headers["X-Tideserve-Forward-Seq"] = str(outcome.forward_seq)
            length = upstream.content_length
            if length is not None and length <= BUFFER_LIMIT:
                return web.Response(
                    status=upstream.status,
                    reason=upstream.reason,
                    headers=headers,
                    body=await upstream.read(),
                )
            streamed = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=headers
            )
            if length is not None:
                streamed.content_length = length
            await streamed.prepare(request)
            async for chunk in upstream.content.iter_any():
                await streamed.write(chunk)
            await streamed.write_eof()
            return streamed


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
    synced = request.app[ACTIVATOR_KEY].synced.is_set()
    return web.json_response({"synced": synced}, status=200 if synced else 503)


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
