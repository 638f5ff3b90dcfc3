"""The test bed's loopback ports come from below the kernel's ephemeral range, where no
outgoing connection can take one between its hand-out and the server's bind."""

from __future__ import annotations

import random
import socket

import pytest
from tideserve_testbed import procs

pytestmark = pytest.mark.unit


def test_ports_are_outside_the_ephemeral_and_nodeport_ranges_distinct_and_free() -> None:
    low, _ = procs._ephemeral_range()
    ports = [procs.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        assert port < min(low, 30000)
        assert port >= 10000
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", procs.free_port()))
        held.listen()
        busy: int = held.getsockname()[1]
        procs._HANDED_OUT.discard(busy)  # as if another process had bound it
        free = procs.free_port()
        procs._HANDED_OUT.discard(free)
        offered = iter([busy, busy, free])

        class Fixed:
            def randrange(self, start: int, stop: int) -> int:
                return next(offered)

        monkeypatch.setattr(random, "SystemRandom", Fixed)
        assert procs.free_port() == free
