"""The activator's client edge against hostile and broken clients: the real `tideserve
activator` process on loopback, raw sockets, and an upstream that parses what reaches it
with h11 (strict HTTP/1.1), so a request the activator should have refused but forwarded
is caught. No API server is needed (--no-watch, one static endpoint), so the limits are
tested without the rest of the test bed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator

import h11
import httpx
import hypothesis
import pytest
from hypothesis import strategies as st
from tideserve_testbed import fixtures, procs

pytestmark = pytest.mark.e2e

TIDESERVE = str(procs.REPO / ".venv" / "bin" / "tideserve")
ENDPOINT = b"X-Tideserve-Endpoint: fuzz/ep\r\n"
MAX_BODY = 65536
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
IDLE_TIMEOUT = 3.0
HEAD_TIMEOUT = 1.0
# Longest a well-behaved activator may take to answer or close any one connection here.
DEADLINE = HEADER_TIMEOUT + BODY_TIMEOUT + HEAD_TIMEOUT + IDLE_TIMEOUT + 3.0
# What a client may legitimately get: the upstream's 200, or a refusal of its request.
ALLOWED = {200, 400, 404, 405, 408, 411, 413, 414, 417, 431, 501, 505}


@dataclasses.dataclass
class Upstream:
    """A strict HTTP/1.1 server (h11): 200 to every well-formed request, stalls on /stall;
    counts what reached it and every request it could not parse."""

    port: int = 0
    received: int = 0
    malformed: list[str] = dataclasses.field(default_factory=list)


def _upstream_handler(state: Upstream) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn = h11.Connection(h11.SERVER)
            sock: socket.socket = self.request
            try:
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = sock.recv(65536)
                        conn.receive_data(data)
                        if not data and conn.their_state is h11.IDLE:
                            return
                        continue
                    if isinstance(event, h11.Request):
                        state.received += 1
                        target, method = event.target, event.method
                    elif isinstance(event, h11.EndOfMessage):
                        if target.startswith(b"/stall"):
                            sock.recv(1)  # until the activator gives up and closes
                            return
                        body = b'{"ok": true}'
                        sock.sendall(
                            conn.send(
                                h11.Response(
                                    status_code=200,
                                    headers=[
                                        ("Content-Length", str(len(body))),
                                        ("Content-Type", "application/json"),
                                    ],
                                )
                            )
                            + (b"" if method == b"HEAD" else conn.send(h11.Data(data=body)))
                            + conn.send(h11.EndOfMessage())
                        )
                        conn.start_next_cycle()
                    elif isinstance(event, h11.ConnectionClosed):
                        return
            except h11.RemoteProtocolError as error:
                state.malformed.append(repr(error))
            except OSError:
                pass

    return Handler


@contextlib.contextmanager
def upstream_server() -> Iterator[Upstream]:
    state = Upstream()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _upstream_handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclasses.dataclass
class Activator:
    proc: subprocess.Popen[bytes]
    port: int
    control: str

    def alive(self) -> bool:
        return self.proc.poll() is None

    def established(self) -> int:
        """Client connections the activator holds open on its proxy port (/proc/net/tcp)."""
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError), open(table) as f:
                for line in f.readlines()[1:]:
                    local, state = line.split()[1], line.split()[3]
                    if int(local.rsplit(":", 1)[1], 16) == self.port and state == "01":
                        count += 1
        return count


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with upstream_server() as state:
        yield state


@pytest.fixture(scope="module")
def activator(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Activator]:
    port, control = procs.free_port(), procs.free_port()
    env = dict(
        os.environ,
        TIDESERVE_ACTIVATOR_MAX_BODY_BYTES=str(MAX_BODY),
        TIDESERVE_ACTIVATOR_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        TIDESERVE_ACTIVATOR_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        TIDESERVE_ACTIVATOR_IDLE_TIMEOUT_SECONDS=str(IDLE_TIMEOUT),
        TIDESERVE_ACTIVATOR_UPSTREAM_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
    )
    cmd = [
        TIDESERVE,
        "activator",
        "--host=127.0.0.1",
        f"--http-port={port}",
        "--grpc-port=0",
        f"--control-port={control}",
        "--no-watch",
        "--static=fuzz/ep=tiny",
        f"--upstream=fuzz/ep=http://127.0.0.1:{upstream.port}",
    ]
    with (tmp_path_factory.mktemp("activator") / "activator.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        running = Activator(proc, port, f"http://127.0.0.1:{control}")
        try:
            fixtures.eventually(
                lambda: (
                    running.alive() and httpx.get(f"{running.control}/readyz").status_code == 200
                ),
                30,
                "activator /readyz",
            )
            yield running
        finally:
            proc.terminate()
            proc.wait(30)


@dataclasses.dataclass
class Outcome:
    status: int | None  # None: the connection closed without a complete answer
    seconds: float
    hung: bool = False


def exchange(
    port: int, payload: bytes, *, half_close: bool = False, method: bytes = b"POST"
) -> Outcome:
    """Send raw bytes; wait for one complete response or the connection's end, up to
    DEADLINE (past it the connection is hung)."""
    started = time.monotonic()
    client = h11.Connection(h11.CLIENT)
    # h11 parses a response only after a request: declare one (its bytes are not sent),
    # HEAD when the raw request is one, so a bodiless answer is read as such.
    client.send(
        h11.Request(
            method=method if method == b"HEAD" else b"GET", target="/", headers=[("Host", "x")]
        )
    )
    client.send(h11.EndOfMessage())
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        status = None
        while True:
            remaining = DEADLINE - (time.monotonic() - started)
            if remaining <= 0:
                return Outcome(status, time.monotonic() - started, hung=True)
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            try:
                client.receive_data(data)
                while (event := client.next_event()) is not h11.NEED_DATA:
                    if isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        return Outcome(status, time.monotonic() - started)
            except h11.RemoteProtocolError:
                # A truncated answer: the connection ended; not hung, but no status.
                return Outcome(None, time.monotonic() - started)
            if not data:
                return Outcome(status, time.monotonic() - started)


def request(
    method: bytes = b"POST",
    target: bytes = b"/v2/models/tiny/infer",
    headers: bytes = b"",
    body: bytes = b"{}",
) -> bytes:
    length = (
        b"Content-Length: %d\r\n" % len(body) if b"content-length" not in headers.lower() else b""
    )
    if b"transfer-encoding" in headers.lower():
        length = b""
    return (
        method
        + b" "
        + target
        + b" HTTP/1.1\r\nHost: a\r\n"
        + ENDPOINT
        + headers
        + length
        + b"\r\n"
        + body
    )


def test_a_well_formed_request_passes_through(activator: Activator) -> None:
    assert exchange(activator.port, request()).status == 200


def test_a_declared_oversized_body_is_refused_413_before_it_is_read(
    activator: Activator, upstream: Upstream
) -> None:
    before = upstream.received
    head = request(headers=b"Content-Length: %d\r\n" % (MAX_BODY + 1), body=b"")
    outcome = exchange(activator.port, head, half_close=False)
    assert outcome.status == 413
    assert outcome.seconds < HEADER_TIMEOUT  # answered at once, not after a body timeout
    assert upstream.received == before


def test_a_chunked_oversized_body_is_refused_413(activator: Activator, upstream: Upstream) -> None:
    before = upstream.received
    chunk = b"x" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
    outcome = exchange(
        activator.port, request(headers=b"Transfer-Encoding: chunked\r\n", body=body)
    )
    assert outcome.status == 413
    assert upstream.received == before


def test_a_body_of_exactly_the_limit_is_forwarded(activator: Activator) -> None:
    assert exchange(activator.port, request(body=b"x" * MAX_BODY)).status == 200


def test_a_slow_request_head_gets_408_at_the_header_timeout(activator: Activator) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", activator.port), timeout=DEADLINE) as sock:
        sock.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: a\r\n")
        # One header byte at a time, each well inside any per-read timeout: the head as a
        # whole is what is limited.
        with contextlib.suppress(OSError):
            for byte in b"X-Slow: " + b"a" * 40:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT <= elapsed < HEADER_TIMEOUT + 2


def test_a_slow_body_gets_408_at_the_body_timeout(activator: Activator, upstream: Upstream) -> None:
    before = upstream.received
    head = request(headers=b"Content-Length: 100\r\n", body=b"{")
    outcome = exchange(activator.port, head, half_close=False)
    assert outcome.status == 408
    assert BODY_TIMEOUT <= outcome.seconds < BODY_TIMEOUT + 2
    assert upstream.received == before


def test_an_idle_connection_is_closed_without_an_answer(activator: Activator) -> None:
    outcome = exchange(activator.port, b"", half_close=False)
    assert (outcome.status, outcome.hung) == (None, False)
    assert IDLE_TIMEOUT - 0.5 <= outcome.seconds < IDLE_TIMEOUT + 2


def test_an_upstream_that_never_answers_gets_504(activator: Activator) -> None:
    outcome = exchange(activator.port, request(target=b"/stall/v2/models/tiny/infer"))
    assert outcome.status == 504
    assert HEAD_TIMEOUT <= outcome.seconds < HEAD_TIMEOUT + 2


MALFORMED = {
    "not-http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "bad-request-line": b"POST /v2 HTTP/1.1 extra\r\nHost: a\r\n\r\n",
    "space-in-header-name": request(headers=b"Bad Name: x\r\n"),
    "cr-in-header-value": request(headers=b"X-A: a\rb\r\n"),
    "no-colon": request(headers=b"NoColonHere\r\n"),
    "negative-length": request(headers=b"Content-Length: -1\r\n", body=b""),
    "length-not-a-number": request(headers=b"Content-Length: 1x\r\n", body=b""),
    "two-lengths": request(headers=b"Content-Length: 2\r\nContent-Length: 3\r\n"),
    "length-and-chunked": request(
        headers=b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", body=b"0\r\n\r\n"
    ),
    "bad-chunk-size": request(headers=b"Transfer-Encoding: chunked\r\n", body=b"zz\r\nab\r\n"),
    "header-too-long": request(headers=b"X-Big: " + b"a" * 100_000 + b"\r\n"),
    "target-too-long": request(target=b"/" + b"a" * 100_000),
    "http-2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "nul-in-target": request(target=b"/v2/\x00"),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_400_and_reaches_nothing(
    activator: Activator, upstream: Upstream, payload: bytes
) -> None:
    before = upstream.received
    outcome = exchange(activator.port, payload)
    assert outcome.status in {400, 413, 431, 505}, outcome
    assert upstream.received == before
    assert activator.alive()


# ---- fuzzing ----------------------------------------------------------------------------

TOKEN = st.text(
    st.sampled_from(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~"
    ),
    min_size=1,
    max_size=12,
)
METHODS = st.one_of(
    st.sampled_from([b"POST", b"GET", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"]),
    TOKEN.map(str.encode),
    st.binary(min_size=1, max_size=8),
)
TARGETS = st.one_of(
    st.just(b"/v2/models/tiny/infer"),
    st.builds(lambda s: b"/v2/" + s, st.binary(max_size=30)),
    st.binary(max_size=40),
)
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.9", b"HTTP/11", b""])
HEADER_LINES = st.one_of(
    st.builds(lambda n, v: n.encode() + b": " + v, TOKEN, st.binary(max_size=30)),
    st.builds(
        lambda v: b"Content-Length: " + v,
        st.one_of(
            st.integers(-5, 2 * MAX_BODY).map(lambda i: str(i).encode()), st.binary(max_size=6)
        ),
    ),
    st.sampled_from(
        [
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Transfer-Encoding: identity",
            b"Connection: close",
            b"Connection: keep-alive",
            b"Expect: 100-continue",
            b"Upgrade: websocket",
            b"Content-Encoding: gzip",
            b"X-Tideserve-Endpoint: other/ns",
            b"Host: b",
            b" folded",
            b"\tfolded",
        ]
    ),
    st.binary(max_size=20),
)


VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
VALID_HEADERS = st.one_of(
    st.builds(lambda n, v: f"X-{n}: {v}".encode(), TOKEN, VALUE),
    st.sampled_from(
        [
            b"Content-Type: application/json",
            b"Connection: close",
            b"Accept: */*",
            b"Inference-Header-Content-Length: 2",
            b"Expect: 100-continue",
        ]
    ),
)


@st.composite
def raw_requests(draw: st.DrawFn) -> tuple[bytes, bool, bytes]:
    """Half are well-formed requests for the endpoint (any method, valid headers, a body of
    the declared length) so the forwarding path is fuzzed too; half are built from
    garbage-prone parts. Then, often, one mutation: truncation, inserted bytes, a flipped
    byte."""
    if draw(st.booleans()):
        method = draw(st.sampled_from([b"POST", b"GET", b"PUT", b"DELETE", b"HEAD", b"PATCH"]))
        target = b"/v2/models/tiny/" + draw(TOKEN).encode()
        body = draw(st.binary(max_size=draw(st.sampled_from([0, 64, 4096]))))
        lines = draw(st.lists(VALID_HEADERS, max_size=4))
        if draw(st.booleans()):
            lines.append(b"Content-Length: %d" % len(body))
        else:
            lines.append(b"Transfer-Encoding: chunked")
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        head = method + b" " + target + b" HTTP/1.1\r\nHost: a\r\n" + ENDPOINT
    else:
        method = draw(METHODS)
        head = method + b" " + draw(TARGETS) + b" " + draw(VERSIONS) + b"\r\nHost: a\r\n"
        if draw(st.booleans()):
            head += ENDPOINT
        lines = draw(st.lists(HEADER_LINES, max_size=5))
        body = draw(
            st.one_of(
                st.binary(max_size=64),
                st.builds(
                    lambda n: b"%x\r\n" % n + b"a" * n + b"\r\n0\r\n\r\n", st.integers(0, 64)
                ),
            )
        )
    raw = head + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body
    mutation = draw(st.sampled_from(["none", "none", "truncate", "insert", "flip"]))
    if mutation != "none":
        at = draw(st.integers(0, len(raw) - 1))
        if mutation == "truncate":
            raw = raw[:at]
        elif mutation == "insert":
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
        else:
            raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
    # Half-closing after sending: aiohttp then closes at once (no answer); rarely, so
    # most connections test the answers.
    return raw, draw(st.integers(0, 4)) == 0, method


@dataclasses.dataclass
class Tally:
    sent: int = 0
    hung: int = 0
    statuses: dict[int | None, int] = dataclasses.field(default_factory=dict)


def test_fuzzed_requests_crash_nothing_and_hang_no_connection(
    activator: Activator, upstream: Upstream
) -> None:
    """Mostly-HTTP bytes, mutated: every connection is answered with an allowed status or
    closed within DEADLINE, the process stays up, nothing malformed reaches the upstream,
    and once the clients are gone the activator holds no connection open."""
    tally = Tally()

    @hypothesis.settings(
        max_examples=int(os.environ.get("TIDESERVE_FUZZ_EXAMPLES", "150")),
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        database=None,
    )
    @hypothesis.given(raw_requests())
    def one(case: tuple[bytes, bool, bytes]) -> None:
        raw, half_close, method = case
        outcome = exchange(activator.port, raw, half_close=half_close, method=method)
        tally.sent += 1
        tally.hung += outcome.hung
        tally.statuses[outcome.status] = tally.statuses.get(outcome.status, 0) + 1
        assert not outcome.hung, f"connection hung: {raw[:200]!r}"
        assert outcome.status in ALLOWED | {None}, f"{outcome.status} for {raw[:200]!r}"
        assert activator.alive(), f"activator died on {raw[:200]!r}"

    one()
    print(f"fuzz: {tally.sent} connections, {tally.hung} hung, statuses {tally.statuses}")
    assert upstream.malformed == []
    fixtures.eventually(
        lambda: activator.established() == 0, IDLE_TIMEOUT + 5, "activator connections closed"
    )
    assert httpx.get(f"{activator.control}/healthz").status_code == 200
