"""Leader election against the real API server: two real `tideserve run` processes.

Only the Lease holder runs kopf (handlers, autoscaler and right-sizing loops); the other
waits. A SIGKILLed leader is replaced once its Lease expires (15 s on the standby's own
clock); a SIGTERMed one releases the Lease, so the standby takes over on its next poll.
Waits are fixtures.eventually on the Lease and on each process's tideserve_leader gauge,
with generous bounds: the figures are printed, not asserted.
"""

from __future__ import annotations

import pathlib
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tideserve_testbed import fixtures, harness

pytestmark = pytest.mark.integration

LEASE = "tideserve-operator"
# Generous: lease duration 15 s + retry 2 s + kopf's start-up, on a loaded 2-CPU machine.
TAKEOVER_TIMEOUT = 120.0
TIMEOUT = 90.0


def elected(kube: fixtures.Kube, namespace: str, log: pathlib.Path) -> harness.Operator:
    """`tideserve run` with leader election on (the reconciler alone: the loops need
    Prometheus and add nothing to election)."""
    identity = f"op-{uuid.uuid4().hex[:6]}"
    return harness.Operator(
        kube.kubeconfig,
        namespace,
        log,
        harness.RECONCILER_ONLY,
        TIDESERVE_LEADER_ELECTION="true",
        TIDESERVE_LEASE_NAMESPACE=namespace,
        TIDESERVE_LEASE_NAME=LEASE,
        POD_NAME=identity,
    )


def leading(op: harness.Operator) -> float | None:
    """tideserve_leader as the process exports it: 1 leading, 0 standing by."""
    return op.metric("tideserve_leader")


def reconciles(op: harness.Operator) -> float:
    return op.metric("tideserve_reconciles_total") or 0.0


@pytest.fixture
def pair(
    kube: fixtures.Kube, namespace: str, tmp_path: pathlib.Path
) -> Iterator[tuple[harness.Operator, harness.Operator]]:
    ops = (
        elected(kube, namespace, tmp_path / "a.log"),
        elected(kube, namespace, tmp_path / "b.log"),
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


def leads(kube: fixtures.Kube, namespace: str, op: harness.Operator) -> None:
    """Start `op` alone and wait until the Lease names it (the other then starts second)."""
    op.start()
    fixtures.eventually(
        lambda: holder(kube, namespace) == op.identity, TIMEOUT, f"{op.identity} leads"
    )


def standing_by(op: harness.Operator, leader: harness.Operator) -> None:
    """Start `op` second and wait until it is up (live, its metrics served) and not leading."""
    op.start()
    fixtures.eventually(
        lambda: op.healthz() == 200 and leading(op) == 0, TIMEOUT, f"{op.identity} standing by"
    )
    assert leading(leader) == 1


def test_exactly_one_leads_and_only_it_reconciles(
    kube: fixtures.Kube, namespace: str, pair: tuple[harness.Operator, harness.Operator]
) -> None:
    for op in pair:
        op.start()
    name = fixtures.eventually(lambda: holder(kube, namespace), TIMEOUT, "a holder")
    leader, standby = pair if pair[0].identity == name else pair[::-1]
    assert leader.identity == name
    kube.apply(fixtures.isvc("only-one", resources={"accelerator": "cpu"}), "-n", namespace)
    fixtures.eventually(lambda: reconciled(kube, namespace, "only-one"), TIMEOUT, "reconciled")
    fixtures.eventually(lambda: leading(standby) == 0, TIMEOUT, "the standby's metrics")
    # The leader says so and reconciled; the standby never started kopf: it leads nothing
    # and reconciled nothing.
    assert leading(leader) == 1
    assert reconciles(leader) >= 1
    assert reconciles(standby) == 0
    assert holder(kube, namespace) == name
    # Live while waiting, so the kubelet leaves it be.
    assert standby.healthz() == 200
    # A standby stops at once and cleanly, and leaves the Lease alone.
    standby.signal(signal.SIGTERM)
    assert standby.proc is not None and standby.proc.wait(60) == 0
    assert holder(kube, namespace) == name


def test_sigkill_of_the_leader_hands_over_after_the_lease_expires(
    kube: fixtures.Kube, namespace: str, pair: tuple[harness.Operator, harness.Operator]
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
    kube: fixtures.Kube, namespace: str, pair: tuple[harness.Operator, harness.Operator]
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
    kube: fixtures.Kube, namespace: str, pair: tuple[harness.Operator, harness.Operator]
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
    # It stopped without writing the Lease back.
    assert holder(kube, namespace) == "someone-else"
