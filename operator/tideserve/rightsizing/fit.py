"""Can any node run one replica? Requests vs nodes' allocatable, labels and taints (pure).

A request no node can satisfy leaves pods Pending with no explanation on the object; this
check turns it into a condition with the reason at once. It checks a replica against an
empty node (allocatable, not free capacity): "does not fit anywhere, ever" is the
actionable statement; "does not fit right now" is the scheduler's and the autoscaler's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.rightsizing import catalog as catalog_mod
from tideserve.rightsizing import quantities

# What a replica asks for when the spec leaves CPU or memory out (the reconciler's default).
DEFAULT_CPU = "1"
DEFAULT_MEMORY = "2Gi"


@dataclasses.dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclasses.dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # or "Exists"
    value: str = ""
    effect: str = ""  # empty tolerates every effect

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == taint.key
        return self.key == taint.key and self.value == taint.value


@dataclasses.dataclass(frozen=True)
class Node:
    name: str
    allocatable: Mapping[str, float]
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False


@dataclasses.dataclass(frozen=True)
class Requirements:
    """One replica's scheduling needs."""

    requests: Mapping[str, float]
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()


@dataclasses.dataclass(frozen=True)
class Fit:
    fits: bool
    reason: str  # CamelCase, for a condition
    message: str
    nodes: tuple[str, ...] = ()  # nodes that fit


# GPU nodes are commonly tainted so that only GPU workloads land on them.
GPU_TOLERATION = Toleration(key=catalog_mod.GPU_RESOURCE, operator="Exists")


def node_from_api(body: Mapping[str, Any]) -> Node:
    """A Node object as the API server returns it (a dict) -> Node."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    allocatable = {k: quantities.parse(v) for k, v in (status.get("allocatable") or {}).items()}
    taints = tuple(
        Taint(key=t.get("key", ""), value=t.get("value") or "", effect=t.get("effect", ""))
        for t in spec.get("taints") or ()
    )
    return Node(
        name=metadata.get("name", ""),
        allocatable=allocatable,
        labels=dict(metadata.get("labels") or {}),
        taints=taints,
        unschedulable=bool(spec.get("unschedulable")),
    )


def requirements(resources: spec_api.ResourcesSpec) -> Requirements:
    """What the reconciler asks the scheduler for, for one replica of `resources`."""
    requests = {
        "cpu": quantities.parse(resources.cpu or DEFAULT_CPU),
        "memory": quantities.parse(resources.memory or DEFAULT_MEMORY),
    }
    selector: dict[str, str] = {}
    tolerations: tuple[Toleration, ...] = ()
    # accelerator: auto starts on a GPU until right-sizing has chosen.
    if resources.accelerator in (spec_api.Accelerator.GPU, spec_api.Accelerator.AUTO):
        gpu = resources.gpu or spec_api.GpuSpec()
        requests[catalog_mod.GPU_RESOURCE] = float(gpu.count)
        if gpu.product:
            selector[catalog_mod.GPU_PRODUCT_LABEL] = gpu.product
        tolerations = (GPU_TOLERATION,)
    elif resources.accelerator is spec_api.Accelerator.MIG and resources.mig is not None:
        requests[catalog_mod.MIG_RESOURCE_PREFIX + resources.mig.profile] = 1.0
        tolerations = (GPU_TOLERATION,)
    return Requirements(requests=requests, node_selector=selector, tolerations=tolerations)


def _why_not(node: Node, needs: Requirements) -> str | None:
    if node.unschedulable:
        return "cordoned"
    for key, value in needs.node_selector.items():
        if node.labels.get(key) != value:
            return f"label {key}={value} missing"
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(
            t.tolerates(taint) for t in needs.tolerations
        ):
            return f"taint {taint.key}:{taint.effect}"
    for resource, amount in needs.requests.items():
        have = node.allocatable.get(resource, 0.0)
        if have < amount:
            return f"{resource} {_show(resource, have)} < {_show(resource, amount)}"
    return None


def _show(resource: str, amount: float) -> str:
    if resource == "cpu":
        return quantities.cpu(amount) if amount else "0"
    if resource == "memory":
        return quantities.memory(amount) if amount else "0"
    return f"{amount:g}"


def check(needs: Requirements, nodes: Sequence[Node]) -> Fit:
    """Whether some node could run one replica; if not, why not, node by node (grouped)."""
    asked = ", ".join(f"{k}={_show(k, v)}" for k, v in sorted(needs.requests.items()))
    if needs.node_selector:
        asked += " on " + ", ".join(f"{k}={v}" for k, v in sorted(needs.node_selector.items()))
    if not nodes:
        return Fit(False, "NoNodes", f"no nodes in the cluster to run a replica ({asked})")
    reasons: dict[str, list[str]] = {}
    fitting = []
    for node in nodes:
        why = _why_not(node, needs)
        if why is None:
            fitting.append(node.name)
        else:
            reasons.setdefault(why, []).append(node.name)
    if fitting:
        return Fit(True, "NodesFit", f"{len(fitting)} node(s) can run a replica", tuple(fitting))
    detail = "; ".join(
        f"{len(names)} node(s): {why}" for why, names in sorted(reasons.items(), key=lambda i: i[0])
    )
    return Fit(False, "NoNodeFits", f"no node can run a replica needing {asked}: {detail}")


def largest(nodes: Sequence[Node], resource: str) -> float:
    """The largest allocatable amount of `resource` on any schedulable node (0 if none)."""
    return max((n.allocatable.get(resource, 0.0) for n in nodes if not n.unschedulable), default=0)
