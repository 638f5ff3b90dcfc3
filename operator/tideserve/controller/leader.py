"""Leader election over a coordination.k8s.io/v1 Lease: the thin loop around leader_rules.

`tideserve run` with election on first waits here as a standby (serving /healthz) until it
holds the Lease, and only then starts kopf, so only the leader ever runs handlers and the
autoscaler and right-sizing loops. A thread renews the Lease every retry period; when it
cannot renew within the renew deadline, or finds another holder, the process exits at once
(exit code 1, no graceful stop: a graceful stop could still write): the pod restarts as a
standby. On a clean shutdown the Lease is released so a standby takes over on its next poll.

Blocking and threaded on purpose: the renewer must keep its own pace even if kopf's event
loop is busy, and must be able to stop the process when it is not.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.server
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tideserve import kube
from tideserve.controller import leader_rules, metrics

log = logging.getLogger("tideserve.leader")

# A lease call must return before the renew deadline can pass unnoticed.
MAX_CALL_SECONDS = 5.0
MIN_CALL_SECONDS = 0.5


def _exit_now(reason: str) -> None:
    log.critical("leadership lost (%s): exiting so that only one operator writes", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(1)


@dataclasses.dataclass
class Elector:
    namespace: str
    name: str
    identity: str
    timing: leader_rules.Timing = dataclasses.field(default_factory=leader_rules.Timing)
    on_lost: Callable[[str], None] = _exit_now
    clock: Callable[[], float] = time.monotonic
    observed: leader_rules.Observed | None = None
    leading: bool = False
    _stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    _renewer: threading.Thread | None = None

    def _read(self, timeout: float) -> tuple[leader_rules.Record | None, str]:
        lease = kube.get("Lease", self.namespace, self.name, timeout)
        if lease is None:
            return None, ""
        record = leader_rules.from_spec(lease.get("spec"))
        return record, str(lease["metadata"]["resourceVersion"])

    def _write(
        self,
        action: leader_rules.Action,
        record: leader_rules.Record | None,
        version: str,
        timeout: float,
    ) -> leader_rules.Record:
        wall = datetime.datetime.now(datetime.UTC)
        new = leader_rules.next_record(action, record, self.identity, self.timing, wall)
        spec = leader_rules.to_spec(new)
        if action is leader_rules.Action.CREATE:
            kube.create_lease(self.namespace, self.name, spec, timeout)
        else:
            kube.replace_lease(self.namespace, self.name, version, spec, timeout)
        return new

    def try_acquire(self, timeout: float = MAX_CALL_SECONDS) -> bool:
        """One standby attempt: True when we hold the Lease afterwards."""
        # Our term is counted from before the request: the API server stores the record
        # later than this, so we always stop before a standby can count it expired.
        started = self.clock()
        record, version = self._read(timeout)
        self.observed = leader_rules.observe(self.observed, record, self.clock())
        action = leader_rules.decide(self.observed, self.clock(), self.identity)
        if action is leader_rules.Action.WAIT:
            return False
        new = self._write(action, record, version, timeout)
        self.observed = leader_rules.Observed(new, started)
        previous = record.holder if record else ""
        log.info(
            "acquired Lease %s/%s as %s (%s; previous holder %r)",
            self.namespace,
            self.name,
            self.identity,
            action.value,
            previous,
        )
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Wait as a standby until we lead (True) or `stop` is set (False)."""
        waiting_for: str | None = None
        while not stop.is_set():
            try:
                if self.try_acquire():
                    self.leading = True
                    metrics.LEADER.set(1)
                    return True
            except Exception as error:  # any failure: try again next period
                log.warning("leader election: cannot read or write the Lease: %s", error)
            holder = self.observed.record.holder if self.observed and self.observed.record else ""
            if holder and holder != waiting_for:
                log.info("standby: %s leads (Lease %s/%s)", holder, self.namespace, self.name)
                waiting_for = holder
            stop.wait(self.timing.retry_period)
        return False

    def renew_once(self, timeout: float) -> str | None:
        """One renewal: None when renewed, else why we no longer lead (the Lease names
        someone else, or is gone). Raises on API failures (the caller counts the time)."""
        started = self.clock()
        record, version = self._read(timeout)
        if record is None or record.holder != self.identity:
            return f"the Lease is held by {record.holder!r}" if record else "the Lease is gone"
        new = self._write(leader_rules.Action.RENEW, record, version, timeout)
        self.observed = leader_rules.Observed(new, started)
        return None

    def _renew_loop(self) -> None:
        # Counted from our last successful write, not from when this thread started.
        last_renewed = self.observed.since if self.observed else self.clock()
        while not self._stop.wait(self.timing.retry_period):
            left = self.timing.renew_deadline - (self.clock() - last_renewed)
            timeout = max(MIN_CALL_SECONDS, min(MAX_CALL_SECONDS, left))
            try:
                lost = self.renew_once(timeout)
            except Exception as error:  # counted against the renew deadline
                log.warning("leader election: renewal failed: %s", error)
                lost = None
            else:
                if lost is None:
                    last_renewed = self.clock()
                    continue
            if self._stop.is_set():
                return
            if lost is not None:
                self._lose(lost)
                return
            if leader_rules.should_give_up(last_renewed, self.clock(), self.timing):
                self._lose(f"no renewal for {self.timing.renew_deadline:g}s")
                return

    def _lose(self, reason: str) -> None:
        self.leading = False
        metrics.LEADER.set(0)
        self.on_lost(reason)

    def start_renewing(self) -> None:
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renewer", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and hand the Lease back (only if we still hold it)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(MAX_CALL_SECONDS + 1)
        if not self.leading:
            return
        self.leading = False
        metrics.LEADER.set(0)
        try:
            record, version = self._read(MAX_CALL_SECONDS)
            if record is None or record.holder != self.identity:
                return
            wall = datetime.datetime.now(datetime.UTC)
            spec = leader_rules.to_spec(leader_rules.released(record, wall))
            kube.replace_lease(self.namespace, self.name, version, spec, MAX_CALL_SECONDS)
        except Exception as error:  # a standby then waits out the lease
            log.warning(
                "could not release the Lease (a standby takes over when it expires): %s", error
            )
            return
        log.info("released Lease %s/%s", self.namespace, self.name)


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.split("?")[0] == "/healthz"
        body = b'{"standby": true}' if ok else b"not found"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json" if ok else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: probes come every few seconds
        return


def wait_for_leadership(elector: Elector, bind: str, health_port: int) -> bool:
    """Block as a standby: serve /healthz on the health port (kopf's liveness endpoint
    takes the port over once we lead) and poll the Lease. False on SIGTERM/SIGINT."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    server: http.server.ThreadingHTTPServer | None = None
    if health_port:
        server = http.server.ThreadingHTTPServer((bind, health_port), _Health)
        threading.Thread(target=server.serve_forever, name="standby-health", daemon=True).start()
    try:
        return elector.acquire(stop)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
