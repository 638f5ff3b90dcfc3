"""Leader election against the real API server: two real `tideserve run` processes.

Only the Lease holder runs kopf (handlers, autoscaler and right-sizing loops); the other
waits. A SIGKILLed leader is replaced once its Lease expires (15 s on the standby's own
clock); a SIGTERMed one releases the Lease, so the standby takes over on its next poll.
Waits are fixtures.eventually with generous bounds: the figures are printed, not asserted.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tideserve_testbed import fixtures

pytestmark = pytest.mark.integration

TIDESERVE = pathlib.Path(sys.executable).parent / "tideserve"
LEASE = "tideserve-operator"
# Generous: lease duration 15 s + retry 2 s + kopf's start-up, on a loaded 2-CPU machine.
TAKEOVER_TIMEOUT = 120.0
TIMEOUT = 90.0


class Operator:
    """`tideserve run` with leader election on, watching one namespace."""

    def __init__(self, kube: fixtures.Kube, namespace: str, log: pathlib.Path) -> None:
        self.identity = f"op-{uuid.uuid4().hex[:6]}"
        self.kube = kube
        self.namespace = namespace
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = fixtures.free_port()

    def start(self) -> None:
        env = os.environ | {
            "KUBECONFIG": str(self.kube.kubeconfig),
            "TIDESERVE_METRICS_PORT": "0",
            "TIDESERVE_HEALTH_PORT": str(self.health_port),
            "TIDESERVE_TRITON_IMAGE": "triton:test",
            "TIDESERVE_LEADER_ELECTION": "true",
            "TIDESERVE_LEASE_NAMESPACE": self.namespace,
            "TIDESERVE_LEASE_NAME": LEASE,
            "POD_NAME": self.identity,
        }
        # The reconciler alone: the loops need Prometheus and add nothing to election.
        args = ["--without", "autoscaler", "--without", "rightsizing"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(TIDESERVE), "run", "--bind", "127.0.0.1", "-n", self.namespace, *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def text(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log.read_text(errors="replace")
        return ""

    def healthz(self) -> int:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)


@pytest.fixture
def pair(
    kube: fixtures.Kube, namespace: str, tmp_path: pathlib.Path
) -> Iterator[tuple[Operator, Operator]]:
    ops = (
        Operator(kube, namespace, tmp_path / "a.log"),
        Operator(kube, namespace, tmp_path / "b.log"),
    )
    try:
        yield ops
    finally:
        for op in ops:
            op.stop()
        for op in ops:
            print(f"--- {op.identity} ---\n" + "\n".join(op.text().splitlines()[-40:]))


def holder(kube: fixtures.Kube, namespace: str) -> str:
    lease = kube.get_json("-n", namespace, "lease", LEASE)
    return str(lease["spec"].get("holderIdentity") or "")


def reconciled(kube: fixtures.Kube, namespace: str, name: str) -> bool:
    obj: dict[str, Any] = kube.get_json("-n", namespace, "tisvc", name)
    generation = obj["metadata"]["generation"]
    return bool(obj.get("status", {}).get("observedGeneration") == generation)


def leads(kube: fixtures.Kube, namespace: str, op: Operator) -> None:
    """Start `op` alone and wait until the Lease names it (the other then starts second)."""
    op.start()
    fixtures.eventually(
        lambda: holder(kube, namespace) == op.identity, TIMEOUT, f"{op.identity} leads"
    )


def standing_by(op: Operator, leader: Operator) -> None:
    op.start()
    fixtures.eventually(
        lambda: f"standby: {leader.identity} leads" in op.text(), TIMEOUT, "standby"
    )


def test_exactly_one_leads_and_only_it_reconciles(
    kube: fixtures.Kube, namespace: str, pair: tuple[Operator, Operator]
) -> None:
    for op in pair:
        op.start()
    name = fixtures.eventually(lambda: holder(kube, namespace), TIMEOUT, "a holder")
    leader, standby = pair if pair[0].identity == name else pair[::-1]
    assert leader.identity == name
    kube.apply(fixtures.isvc("only-one", resources={"accelerator": "cpu"}), "-n", namespace)
    fixtures.eventually(lambda: reconciled(kube, namespace, "only-one"), TIMEOUT, "reconciled")
    fixtures.eventually(lambda: f"standby: {name} leads" in standby.text(), TIMEOUT, "standby")
    # The standby never started kopf: no handler ran there, so nothing was written by it.
    assert "Creation is processed" in leader.text()
    assert "kopf." not in standby.text()
    assert "tideserve operator: namespaces" not in standby.text()
    assert holder(kube, namespace) == name
    # Live while waiting, so the kubelet leaves it be.
    assert standby.healthz() == 200
    # A standby stops at once and cleanly, and leaves the Lease alone.
    standby.signal(signal.SIGTERM)
    assert standby.proc is not None and standby.proc.wait(60) == 0
    assert holder(kube, namespace) == name


def test_sigkill_of_the_leader_hands_over_after_the_lease_expires(
    kube: fixtures.Kube, namespace: str, pair: tuple[Operator, Operator]
) -> None:
    first, second = pair
    leads(kube, namespace, first)
    standing_by(second, first)
    killed = time.monotonic()
    first.signal(signal.SIGKILL)
    kube.apply(fixtures.isvc("after-kill", resources={"accelerator": "cpu"}), "-n", namespace)
    fixtures.eventually(
        lambda: holder(kube, namespace) == second.identity, TAKEOVER_TIMEOUT, "second leads"
    )
    took_over = time.monotonic()
    fixtures.eventually(
        lambda: reconciled(kube, namespace, "after-kill"), TAKEOVER_TIMEOUT, "taken over"
    )
    print(
        f"SIGKILL -> Lease names the standby {took_over - killed:.1f} s, "
        f"standby reconciled an object created after the kill {time.monotonic() - killed:.1f} s"
    )
    assert holder(kube, namespace) == second.identity
    lease = kube.get_json("-n", namespace, "lease", LEASE)
    assert lease["spec"]["leaseTransitions"] >= 1


def test_sigterm_releases_the_lease_at_once(
    kube: fixtures.Kube, namespace: str, pair: tuple[Operator, Operator]
) -> None:
    first, second = pair
    leads(kube, namespace, first)
    standing_by(second, first)
    terminated = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.proc is not None
    assert first.proc.wait(60) == 0
    exited = time.monotonic()
    # Released before the process ended: no standby has to wait out the lease.
    assert holder(kube, namespace) in {"", second.identity}
    fixtures.eventually(lambda: holder(kube, namespace) == second.identity, TIMEOUT, "second leads")
    took_over = time.monotonic()
    kube.apply(fixtures.isvc("after-term", resources={"accelerator": "cpu"}), "-n", namespace)
    fixtures.eventually(lambda: reconciled(kube, namespace, "after-term"), TIMEOUT, "reconciled")
    print(
        f"SIGTERM -> leader exited {exited - terminated:.1f} s, "
        f"Lease names the standby {took_over - terminated:.1f} s, "
        f"standby reconciled a new object {time.monotonic() - terminated:.1f} s"
    )


def test_a_leader_that_loses_its_lease_exits_non_zero(
    kube: fixtures.Kube, namespace: str, pair: tuple[Operator, Operator]
) -> None:
    first, _ = pair
    leads(kube, namespace, first)
    # Someone else's name in the Lease (as after a partition that outlived the lease):
    # the leader must stop writing at once; its pod then restarts as a standby.
    kube.kubectl(
        "patch",
        "-n",
        namespace,
        "lease",
        LEASE,
        "--type=merge",
        "-p",
        '{"spec":{"holderIdentity":"someone-else","leaseDurationSeconds":3600}}',
    )
    assert first.proc is not None
    assert first.proc.wait(60) == 1
    assert "leadership lost (the Lease is held by 'someone-else')" in first.text()
