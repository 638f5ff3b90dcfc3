"""The pass-through pool against an upstream on loopback that misbehaves on purpose:
what is re-sent after a kept-alive connection closes unanswered, and the head timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tideserve.activator import upstream

pytestmark = pytest.mark.unit

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Upstream:
    """Answers the first request on each connection; on the second it closes the
    connection without a byte of answer (a crash mid-request, or an idle close crossing
    the request), or never answers (`stall`). Counts the requests it received."""

    def __init__(self, *, stall: bool = False) -> None:
        self.stall = stall
        self.received: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.received.append(head.split(b"\r\n", 1)[0])
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if self.stall:  # until the client gives up and closes
                    await reader.read()
                    break
                if served == 1:
                    break
                writer.write(OK)
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(handler: Upstream) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler.handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _call(pool: upstream.Pool, port: int, method: str) -> bytes:
    response = await pool.send("127.0.0.1", port, method, "/v2/x", [], b"{}")
    try:
        return await response.read()
    finally:
        response.release()


async def test_a_post_is_not_sent_again_when_a_reused_connection_closes_unanswered() -> None:
    handler = Upstream()
    pool = upstream.Pool(limit=4)
    async with serving(handler) as port:
        assert await _call(pool, port, "POST") == b"ok"
        with pytest.raises(upstream.ClosedBeforeAnswer, match="not sent again"):
            await _call(pool, port, "POST")
    assert len(handler.received) == 2  # the second POST reached the upstream exactly once
    await pool.close()


@pytest.mark.parametrize("method", sorted(upstream.IDEMPOTENT - {"HEAD"}))
async def test_an_idempotent_request_is_sent_once_more_on_a_fresh_connection(method: str) -> None:
    handler = Upstream()
    pool = upstream.Pool(limit=4)
    async with serving(handler) as port:
        assert await _call(pool, port, method) == b"ok"
        assert await _call(pool, port, method) == b"ok"
    assert len(handler.received) == 3  # first, the unanswered one, its single re-send
    await pool.close()


async def test_a_connection_seen_closed_while_idle_is_dropped_without_sending() -> None:
    """The upstream closes idle connections (its keep-alive timeout): the pool notices the
    FIN before reuse, so even a POST goes out once, on a new connection."""

    class ClosesWhenIdle(Upstream):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            self.received.append(head.split(b"\r\n", 1)[0])
            await reader.readexactly(2)
            writer.write(OK)
            await writer.drain()
            writer.close()

    handler = ClosesWhenIdle()
    pool = upstream.Pool(limit=4)
    async with serving(handler) as port:
        assert await _call(pool, port, "POST") == b"ok"
        [idle] = pool._host("127.0.0.1", port).idle
        async with asyncio.timeout(5):  # the FIN reaches the idle connection's reader
            while not idle.closed_while_idle():  # noqa: ASYNC110 (no event for a FIN)
                await asyncio.sleep(0.01)
        assert await _call(pool, port, "POST") == b"ok"
    assert len(handler.received) == 2
    await pool.close()


async def test_an_upstream_that_never_starts_its_answer_times_out() -> None:
    handler = Upstream(stall=True)
    pool = upstream.Pool(limit=4, head_timeout=0.2)
    async with serving(handler) as port:
        with pytest.raises(upstream.HeadTimeout, match=r"0\.2 s"):
            await _call(pool, port, "POST")
        # The slot was given back: the pool is not wedged by the timed-out request.
        with pytest.raises(upstream.HeadTimeout):
            await asyncio.wait_for(_call(pool, port, "GET"), 5)
    await pool.close()
