"""gRPC unary pass-through: any unary method of Triton's GRPCInferenceService (ModelInfer,
ModelReady, ModelMetadata, ...) is held and forwarded as opaque bytes, never decoded.

grpcio's generic handler sees every method name; with no (de)serializers, requests and
responses stay bytes, so the activator needs no Triton protobufs. Streaming methods
(ModelStreamInfer) are answered UNIMPLEMENTED: they cannot be told apart from unary ones
by name alone, except Triton's one known stream method, which is listed here.

Which endpoint: metadata `x-tideserve-endpoint: <namespace>/<name>`; else the model name
in the request (field 1 of Triton's requests) when exactly one watched endpoint serves
that model. grpcio does not expose the `:authority` the client dialled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]

from tideserve.activator import holding, queueing, routing
from tideserve.activator import metrics as metrics_mod

log = logging.getLogger(__name__)

STREAMING_METHODS = frozenset({"/inference.GRPCInferenceService/ModelStreamInfer"})
# HTTP status -> gRPC code for refusals, so clients see the usual retryable codes.
CODES = {
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    404: grpc.StatusCode.NOT_FOUND,
    400: grpc.StatusCode.INVALID_ARGUMENT,
    502: grpc.StatusCode.UNAVAILABLE,
}
# Upstream codes after which a call is held again (see `rehold`).
REHOLD_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
# A retired channel's calls in flight may still finish within this many seconds.
RETIRE_GRACE = 60.0
# Metadata that belongs to the hop, not the call.
DROPPED_METADATA = frozenset({"x-tideserve-endpoint", ":authority", "user-agent"})


class _Passthrough(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(
        self,
        activator: holding.Activator,
        metrics: metrics_mod.Metrics,
        upstreams: Mapping[queueing.EndpointKey, str],
    ) -> None:
        self._activator = activator
        self._metrics = metrics
        self._upstreams = upstreams
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        if method in STREAMING_METHODS:
            return None

        async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            return await self._call(method, request, context)

        return grpc.unary_unary_rpc_method_handler(unary)

    def _channel(self, target: str) -> grpc.aio.Channel:
        channel = self._channels.get(target)
        if channel is None:
            options = [
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
            ]
            channel = self._channels[target] = grpc.aio.insecure_channel(target, options=options)
        return channel

    async def _call(
        self, method: str, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        metadata = tuple(context.invocation_metadata() or ())
        headers = {str(k): str(v) for k, v in metadata}
        key = routing.endpoint_for(
            {routing.ENDPOINT_HEADER: headers.get("x-tideserve-endpoint", "")}
        )
        if key is None:
            model = routing.model_from_grpc_request(request)
            states = (e.state for e in self._activator.endpoints.values())
            key = routing.endpoint_for_model(model, states) if model else None
        if key is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "cannot tell which endpoint this call is for: set metadata "
                "x-tideserve-endpoint: <namespace>/<name> (the model name alone is "
                "ambiguous or unknown)",
            )
        assert key is not None
        forwarded = tuple((k, v) for k, v in metadata if k not in DROPPED_METADATA)
        target = routing.grpc_upstream(key, self._upstreams)
        arrived = self._activator.now()
        reholds = 0
        while True:
            outcome = await self._activator.admit(key, arrived=arrived if reholds else None)
            if isinstance(outcome, queueing.Refusal):
                self._metrics.requests.labels(key.namespace, key.name, str(outcome.status)).inc()
                context.set_trailing_metadata((("retry-after", str(outcome.retry_after_seconds)),))
                await context.abort(
                    CODES.get(outcome.status, grpc.StatusCode.UNAVAILABLE), outcome.error
                )
            channel = self._channel(target)
            try:
                response: bytes = await channel.unary_unary(method)(request, metadata=forwarded)
            except grpc.aio.AioRpcError as error:
                if rehold(error.code()):
                    # The channel may sit in reconnect back-off (up to minutes) after its
                    # replica went away; a fresh one connects at once when it is back.
                    self._retire(target, channel)
                    if self._activator.upstream_failed(key, arrived=arrived, reholds=reholds):
                        reholds += 1
                        continue
                self._metrics.requests.labels(key.namespace, key.name, "502").inc()
                await context.abort(error.code(), error.details() or "")
                raise
            self._metrics.requests.labels(key.namespace, key.name, "200").inc()
            return response

    def _retire(self, target: str, channel: grpc.aio.Channel) -> None:
        """Forget the channel to `target` (unless another failed call already replaced it);
        close it once the calls still on it are done."""
        current = self._channels.get(target)
        if current is None or current is not channel:
            return
        del self._channels[target]
        task = asyncio.get_running_loop().create_task(current.close(grace=RETIRE_GRACE))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def rehold(code: grpc.StatusCode) -> bool:
    """An upstream answer that means the call reached no serving model: the connection
    failed or Triton is unloading the model (replica shutting down). Either way, holding
    the call until the model answers its ready probe again is what the HTTP path does with
    a refused connection."""
    return code in REHOLD_CODES


async def start(
    activator: holding.Activator,
    metrics: metrics_mod.Metrics,
    upstreams: Mapping[queueing.EndpointKey, str],
    address: str,
) -> grpc.aio.Server:
    server = grpc.aio.server(
        handlers=[_Passthrough(activator, metrics, upstreams)],
        options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
    )
    server.add_insecure_port(address)
    await server.start()
    return server
