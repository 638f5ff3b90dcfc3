"""The pass-through client's pure parts: request bytes and response heads."""

from __future__ import annotations

import asyncio

import pytest

from tideserve.activator import upstream

pytestmark = pytest.mark.unit


def test_request_is_one_http11_message_with_host_and_length() -> None:
    raw = upstream.request_bytes(
        "POST",
        "/v2/models/m/infer?x=1",
        "10.0.0.1:8000",
        [(b"Content-Type", b"application/json")],
        b"{}",
    )
    assert raw == (
        b"POST /v2/models/m/infer?x=1 HTTP/1.1\r\nHost: 10.0.0.1:8000\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )


def test_get_without_body_sends_no_length() -> None:
    raw = upstream.request_bytes("GET", "/v2/health/ready", "h:1", [], b"")
    assert raw == b"GET /v2/health/ready HTTP/1.1\r\nHost: h:1\r\n\r\n"


def test_head_with_length_keeps_headers_in_order() -> None:
    head = upstream.parse_head(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 125\r\n"
        b"X-Multi: a\r\nX-Multi: b",
        method="POST",
    )
    assert (head.status, head.reason, head.content_length, head.chunked) == (200, "OK", 125, False)
    assert head.keep_alive
    assert head.headers[-2:] == [("X-Multi", "a"), ("X-Multi", "b")]


def test_chunked_head_has_no_length() -> None:
    head = upstream.parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", method="POST")
    assert head.chunked
    assert head.content_length is None


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0", True),
    ],
)
def test_connection_reuse_follows_the_version_and_connection_header(
    raw: bytes, keep_alive: bool
) -> None:
    assert upstream.parse_head(raw, method="GET").keep_alive is keep_alive


@pytest.mark.parametrize(("status", "method"), [(204, "POST"), (304, "GET"), (200, "HEAD")])
def test_bodiless_responses_have_length_zero(status: int, method: str) -> None:
    head = upstream.parse_head(f"HTTP/1.1 {status} X\r\nContent-Length: 10".encode(), method=method)
    assert head.content_length == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1 200 OK\r\nbad",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten",
    ],
)
def test_non_http_heads_are_protocol_errors(raw: bytes) -> None:
    with pytest.raises(upstream.ProtocolError):
        upstream.parse_head(raw, method="GET")


class _Slots:
    def release(self) -> None:
        pass


class _Pool:
    slots = _Slots()


def _body(raw: bytes, *, chunked: bool, length: int | None) -> upstream.Response:
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    head = upstream.Head(200, "OK", [], length, chunked, True)
    connection = upstream._Connection(reader, writer=None)  # type: ignore[arg-type]
    return upstream.Response(head, connection, _Pool())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "chunked", "length"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", True, None),  # chunk size not hexadecimal
        (b"5\r\nhel", True, None),  # connection closed inside a chunk
        (b"hel", False, 5),  # shorter than Content-Length
    ],
    ids=["bad-size", "truncated-chunk", "truncated-length"],
)
async def test_broken_bodies_are_protocol_errors(
    raw: bytes, chunked: bool, length: int | None
) -> None:
    with pytest.raises(upstream.ProtocolError):
        await _body(raw, chunked=chunked, length=length).read()


async def test_chunked_body_is_reassembled() -> None:
    raw = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert await _body(raw, chunked=True, length=None).read() == b"hello world"
