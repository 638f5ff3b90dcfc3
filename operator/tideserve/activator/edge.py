"""The client-facing HTTP server: aiohttp's low-level server plus a request-head timeout.

aiohttp closes a connection that stays idle past its keep-alive timeout, but a client
that sends a head one byte at a time (slowloris) keeps a connection, its buffers and a
place in the accept budget for as long as it likes. Here a head has
`header_timeout_seconds` from its first byte to its last; a slower client gets
408 Request Timeout and the connection closes. Malformed heads are aiohttp's parser's
business: it answers 400 and closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web, web_protocol

_TIMEOUT_BODY = b'{"error": "request head not received in time"}'
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class Server(web.Server):
    """web.Server whose connections time out slow request heads."""

    def __init__(self, handler: Any, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._header_timeout = header_timeout

    def __call__(self) -> web_protocol.RequestHandler:
        timeout = self._header_timeout
        return _Connection(self, loop=self._loop, header_timeout=timeout, **self._kwargs)


class _Connection(web_protocol.RequestHandler):
    """One client connection. The timer is armed when bytes arrive while no request is
    being handled (the start of a head) and disarmed when a head is complete or its
    request starts; when it fires, nothing has completed since it was armed."""

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._disarm()
        elif data and self._head_timer is None and not self._request_in_progress:
            self._head_timer = self._loop.call_later(
                self._header_timeout, self._head_timed_out, heads
            )

    async def _handle_request(self, *args: Any, **kwargs: Any) -> Any:
        self._disarm()  # whatever arrived before was this request's body, not a new head
        return await super()._handle_request(*args, **kwargs)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self, heads: int) -> None:
        self._head_timer = None
        transport = self.transport
        if self._request_count != heads or self._request_in_progress or transport is None:
            return
        transport.write(REQUEST_TIMEOUT)
        self.force_close()  # closes the transport once the 408 is flushed
