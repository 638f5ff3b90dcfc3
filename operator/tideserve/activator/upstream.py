"""A lean HTTP/1.1 client for the pass-through hop to Triton, with keep-alive pooling.

aiohttp's ClientSession spent about 225 µs of CPU per request on the test machine, most
of what the activator added per pass-through request; this client writes the request in
one call and parses the response head itself, at about 80 µs. It speaks only what the
hop needs: one request per connection at a time, Content-Length or chunked or
read-to-close bodies, `Connection: close`. The model-ready probe keeps using aiohttp.

Re-sending: a kept-alive connection the upstream closed before answering is ambiguous
(an idle close crossing our request, or a crash while processing it). Connections
already seen closed while idle are dropped before use; after that, only idempotent
methods (RFC 9110 9.2.2) are re-sent, once, on a fresh connection: one re-send covers
the idle-close race, and a second failure on a new connection is the upstream failing.
A POST (every inference call) is never re-sent: it may have run; the client decides.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import typing
from collections.abc import AsyncIterator, Iterable

# Responses up to this size are read whole; larger ones are streamed in chunks.
CHUNK = 1 << 16
MAX_HEAD = 64 * 1024
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))


class ConnectError(Exception):
    """The upstream could not be reached: the request was never sent (safe to retry)."""


class ProtocolError(Exception):
    """The upstream answered something that is not HTTP/1.x, or closed without answering."""


class HeadTimeout(ProtocolError):
    """The upstream did not start its answer within the head timeout (answered 504)."""


class ClosedBeforeAnswer(ProtocolError):
    """A reused connection closed before any answer byte and the method is not idempotent,
    so the request was not sent again: it may have been processed."""


class Head(typing.NamedTuple):
    """A response's status line and headers. A NamedTuple, not a frozen dataclass: one is
    built per forwarded request, and a frozen dataclass's __init__ costs ~5x more."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    content_length: int | None
    chunked: bool
    keep_alive: bool


def parse_head(raw: bytes, *, method: str) -> Head:
    """Pure: the status line and headers of a response -> Head."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: list[tuple[str, str]] = []
    length: int | None = None
    chunked = False
    keep_alive = parts[0] != "HTTP/1.0"
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line: {line[:80]!r}")
        name, value = name.strip(), value.strip()
        lower = name.lower()
        if lower == "content-length":
            if not (value.isascii() and value.isdigit()):
                raise ProtocolError(f"malformed Content-Length: {value[:80]!r}")
            length = int(value)
        elif lower == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif lower == "connection":
            tokens = {t.strip().lower() for t in value.split(",")}
            keep_alive = ("keep-alive" in tokens) if not keep_alive else ("close" not in tokens)
        headers.append((name, value))
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        length, chunked = 0, False
    if chunked:
        length = None
    return Head(status, parts[2] if len(parts) > 2 else "", headers, length, chunked, keep_alive)


def request_bytes(
    method: str, target: str, host: str, headers: Iterable[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """Pure: one HTTP/1.1 request. Headers come as the client sent them (raw bytes, already
    stripped of hop-by-hop ones): no decoding and re-encoding on the way through."""
    parts = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts += (b"\r\n", body)
    return b"".join(parts)


@dataclasses.dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()

    def closed_while_idle(self) -> bool:
        """The upstream's FIN (or an error) arrived while the connection sat in the pool."""
        reader = self.reader
        return reader.at_eof() or reader.exception() is not None or self.writer.is_closing()


class Response:
    """An upstream response whose head has been read; the body is read or streamed next.
    `release()` must be called once (the Pool's `request` context does it)."""

    def __init__(self, head: Head, connection: _Connection, pool: _HostPool) -> None:
        self.head = head
        self._connection = connection
        self._pool = pool
        self._done = False
        self._reusable = False

    async def read(self) -> bytes:
        head = self.head
        if head.content_length is None:
            return b"".join([chunk async for chunk in self.iter_chunks()])
        # The common case (a sized answer read whole) without the async generators.
        try:
            body = await self._connection.reader.readexactly(head.content_length)
        except (OSError, asyncio.IncompleteReadError) as error:
            raise ProtocolError(f"upstream body failed: {error!r}") from error
        self._reusable = head.keep_alive
        self._done = True
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks; a reset, truncation or bad chunk framing from the upstream
        is a ProtocolError (answered 502), never an uncaught error (500)."""
        try:
            async for chunk in self._chunks():
                yield chunk
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            raise ProtocolError(f"upstream body failed: {error!r}") from error
        except ValueError as error:  # a chunk-size line that is not hexadecimal
            raise ProtocolError(f"upstream sent a malformed chunked body: {error}") from error

    async def _chunks(self) -> AsyncIterator[bytes]:
        reader = self._connection.reader
        head = self.head
        if head.content_length is not None:
            remaining = head.content_length
            while remaining:
                chunk = await reader.read(min(CHUNK, remaining))
                if not chunk:
                    raise ProtocolError("upstream closed the connection mid-body")
                remaining -= len(chunk)
                yield chunk
            self._reusable = head.keep_alive
        elif head.chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # Trailers (rare) end with an empty line.
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                yield await reader.readexactly(size)
                await reader.readexactly(2)
            self._reusable = head.keep_alive
        else:  # no length: the body ends when the upstream closes
            while chunk := await reader.read(CHUNK):
                yield chunk
        self._done = True

    def release(self) -> None:
        if self._done and self._reusable:
            self._pool.put(self._connection)
        else:
            self._connection.close()
        self._pool.slots.release()


class _HostPool:
    def __init__(self, host: str, port: int, limit: int, head_timeout: float) -> None:
        self.host, self.port = host, port
        self.head_timeout = head_timeout
        self.idle: collections.deque[_Connection] = collections.deque()
        # FIFO: asyncio.Semaphore wakes waiters in order, so held requests released
        # together reach the upstream in their arrival order.
        self.slots = asyncio.Semaphore(limit)

    def put(self, connection: _Connection) -> None:
        self.idle.append(connection)

    async def connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=MAX_HEAD), timeout=10
            )
        except (OSError, TimeoutError) as error:
            raise ConnectError(f"{self.host}:{self.port}: {error}") from error
        return _Connection(reader, writer)


class Pool:
    """Keep-alive connections per upstream host:port, at most `limit` in use per host."""

    def __init__(self, limit: int = 512, *, head_timeout: float = 300.0) -> None:
        self._limit = limit
        self._head_timeout = head_timeout
        self._hosts: dict[tuple[str, int], _HostPool] = {}

    def _host(self, host: str, port: int) -> _HostPool:
        pool = self._hosts.get((host, port))
        if pool is None:
            pool = _HostPool(host, port, self._limit, self._head_timeout)
            self._hosts[(host, port)] = pool
        return pool

    async def send(
        self,
        host: str,
        port: int,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Response:
        """Send one request and read the response head. Raises ConnectError when nothing
        was sent, HeadTimeout when no head came in time, ClosedBeforeAnswer when a reused
        connection closed unanswered and the method may not be re-sent. The caller must
        `release()` the response."""
        pool = self._host(host, port)
        await pool.slots.acquire()
        try:
            payload = request_bytes(method, target, f"{host}:{port}", headers, body)
            connection = _take_idle(pool)
            if connection is not None:
                head = await _exchange(connection, payload, method, pool.head_timeout, reused=True)
                if head is not None:
                    return Response(head, connection, pool)
                connection.close()
                if method not in IDEMPOTENT:
                    raise ClosedBeforeAnswer(
                        f"upstream closed a kept-alive connection before answering; {method} "
                        "is not idempotent, so it was not sent again (it may have run)"
                    )
            connection = await pool.connect()
            head = await _exchange(connection, payload, method, pool.head_timeout, reused=False)
            assert head is not None
            return Response(head, connection, pool)
        except BaseException:
            pool.slots.release()
            raise

    async def close(self) -> None:
        for pool in self._hosts.values():
            while pool.idle:
                pool.idle.popleft().close()


def _take_idle(pool: _HostPool) -> _Connection | None:
    """The most recently used idle connection not already seen closed (those are dropped:
    nothing was sent on them, so that is no re-send)."""
    while pool.idle:
        connection = pool.idle.pop()
        if not connection.closed_while_idle():
            return connection
        connection.close()
    return None


async def _exchange(
    connection: _Connection, payload: bytes, method: str, head_timeout: float, *, reused: bool
) -> Head | None:
    """Write the request, read the head. None: a reused connection closed before any
    answer byte (the caller decides whether the request may be sent again)."""
    try:
        connection.writer.write(payload)
        async with asyncio.timeout(head_timeout):
            raw = await connection.reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as error:
        partial = isinstance(error, asyncio.IncompleteReadError) and error.partial
        if reused and not partial:
            return None
        connection.close()
        raise ProtocolError(f"upstream closed the connection: {error}") from error
    except TimeoutError as error:
        connection.close()
        raise HeadTimeout(f"no response head within {head_timeout:g} s") from error
    except asyncio.LimitOverrunError as error:
        connection.close()
        raise ProtocolError("response head too large") from error
    except BaseException:
        connection.close()
        raise
    try:
        return parse_head(raw[:-4], method=method)
    except (ProtocolError, ValueError):
        connection.close()
        raise
