"""Status as a pure function of the InferenceService and what its children report.

Conditions follow the Kubernetes API conventions. Ready is the AND of the sub-states
(spec valid, nothing blocking, Deployment present, a ready replica — or deliberately
scaled to zero, which is healthy). Progressing says where a not-ready endpoint is; for
a cold start (a new endpoint, or one waking from zero) its reason names the phase, in
order: WaitingForNode, FetchingModel, ImagePulling, ModelLoading (then Complete).
This module owns only the reconciler's share of the status (see the team contracts):
the autoscaler and right-sizing write their own fields under their own managers.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from tideserve.api import status as status_api

READY = status_api.ConditionType.READY.value
PROGRESSING = status_api.ConditionType.PROGRESSING.value
DEGRADED = status_api.ConditionType.DEGRADED.value
SPEC_VALID = status_api.ConditionType.SPEC_VALID.value
SCHEDULABLE = status_api.ConditionType.SCHEDULABLE.value
RECONCILING = status_api.ConditionType.RECONCILING.value
STALLED = status_api.ConditionType.STALLED.value
OWNED_CONDITIONS = (READY, PROGRESSING, DEGRADED, SPEC_VALID, SCHEDULABLE, RECONCILING, STALLED)
OWNED_FIELDS = ("observedGeneration", "replicas", "readyReplicas", "selector", "url", "accelerator")

# Cold-start phases (Progressing reasons), from the pods' own status.
WAITING_FOR_NODE = "WaitingForNode"  # unschedulable: no node fits yet (one may be coming)
FETCHING_MODEL = "FetchingModel"  # the fetch-model init container downloads the repository
PREPARING_MODEL = "PreparingModel"  # the model-config init container merges the config
IMAGE_PULLING = "ImagePulling"  # a container is being created: mostly the image pull
MODEL_LOADING = "ModelLoading"  # Triton runs but is not ready: it loads the model
# Ready keeps the reason it always had for an unschedulable pod (documented, and the
# reason of the Warning Event), while Progressing names the phase.
READY_REASONS = {WAITING_FOR_NODE: "Pending"}
# Init containers by name: (phase, message) while each runs.
INIT_PHASES = {
    "fetch-model": (FETCHING_MODEL, "downloading the model repository"),
    "model-config": (PREPARING_MODEL, "writing the model configuration"),
}

# Container waiting reasons that will not fix themselves.
_BROKEN = {
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


@dataclasses.dataclass(frozen=True)
class Problem:
    """A deeper check that failed: the spec passed the CRD but cannot work as is."""

    condition: str  # SpecValid or Schedulable
    reason: str
    message: str
    blocking: bool  # True: the children were not applied (Ready=False)


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the reconciler knows, as plain data."""

    generation: int | None  # generation last applied successfully; None: unknown yet
    selector: str
    url: str
    accelerator: str
    deployment: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]]
    problems: Sequence[Problem] = ()
    activator: bool = False


@dataclasses.dataclass(frozen=True)
class _State:
    status: str
    reason: str
    message: str = ""


def _pod_condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def _waiting(pod: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(container, reason, message) of every waiting container, init containers first."""
    st = pod.get("status", {})
    out = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in st.get(key) or []:
            waiting = (cs.get("state") or {}).get("waiting")
            if waiting:
                out.append(
                    (cs.get("name", ""), waiting.get("reason", ""), waiting.get("message", ""))
                )
    return out


def _running_init(pod: Mapping[str, Any]) -> list[str]:
    """Names of init containers running now (init containers run one at a time)."""
    return [
        str(cs.get("name", ""))
        for cs in pod.get("status", {}).get("initContainerStatuses") or []
        if (cs.get("state") or {}).get("running")
    ]


def _live(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        p
        for p in pods
        if not p.get("metadata", {}).get("deletionTimestamp")
        and p.get("status", {}).get("phase") not in {"Succeeded", "Failed"}
    ]


def pod_ready(pod: Mapping[str, Any]) -> bool:
    cond = _pod_condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def _unschedulable(pods: Sequence[Mapping[str, Any]]) -> str | None:
    for pod in _live(pods):
        cond = _pod_condition(pod, "PodScheduled")
        if cond and cond.get("status") == "False":
            return str(cond.get("message") or cond.get("reason") or "unschedulable")
    return None


def _rollout(deployment: Mapping[str, Any]) -> tuple[int, int, int, int, bool]:
    """(wanted, existing, updated, ready, controller caught up) of a Deployment."""
    spec = deployment.get("spec", {})
    st = deployment.get("status", {})
    wanted = int(spec.get("replicas", 1))
    caught_up = int(st.get("observedGeneration", 0)) >= int(
        deployment.get("metadata", {}).get("generation", 0)
    )
    return (
        wanted,
        int(st.get("replicas", 0)),
        int(st.get("updatedReplicas", 0)),
        int(st.get("readyReplicas", 0)),
        caught_up,
    )


def _deadline_exceeded(deployment: Mapping[str, Any]) -> str | None:
    for c in deployment.get("status", {}).get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return str(c.get("message", ""))
    return None


def _progress(obs: Observed) -> _State:
    dep = obs.deployment
    if dep is None:
        return _State("True", "Creating", "creating the predictor Deployment")
    wanted, existing, updated, ready, caught_up = _rollout(dep)
    if unschedulable := _unschedulable(obs.pods):
        known = [p.message for p in obs.problems if p.condition == SCHEDULABLE]
        why = f"{known[0]}; scheduler: " if known else "scheduler: "
        return _State(
            "True",
            WAITING_FOR_NODE,
            f"no node fits the pod: {why}{unschedulable} (waiting for a node: a cluster "
            "autoscaler may be adding one)",
        )
    for pod in _live(obs.pods):
        for container, reason, message in _waiting(pod):
            if reason in _BROKEN:
                return _State("False", reason, f"container {container}: {message or reason}")
    for pod in _live(obs.pods):
        for container in _running_init(pod):
            if container in INIT_PHASES:
                return _State("True", *INIT_PHASES[container])
        for container, reason, _ in _waiting(pod):
            if container == "fetch-model":
                return _State("True", *INIT_PHASES[container])
            if reason == "ContainerCreating":
                return _State(
                    "True",
                    IMAGE_PULLING,
                    f"container {container}: pulling the image (or mounting volumes)",
                )
            if reason == "PodInitializing":
                return _State("True", "Starting", f"container {container}: {reason}")
        st = pod.get("status", {})
        if st.get("phase") == "Pending" and not st.get("containerStatuses"):
            # Bound to a node, not reported on by its kubelet yet: it sets the pod up.
            node = pod.get("spec", {}).get("nodeName") or "its node"
            return _State("True", IMAGE_PULLING, f"starting on {node} (pulling the image)")
    if not caught_up or updated < wanted or existing > wanted:
        return _State(
            "True", "RollingOut", f"{updated} of {wanted} replicas updated, {ready} ready"
        )
    if ready < wanted:
        return _State(
            "True",
            MODEL_LOADING,
            f"{ready} of {wanted} replicas ready; Triton is loading the model",
        )
    return _State("False", "Complete", f"{ready} of {wanted} replicas ready")


def _ready(obs: Observed, progress: _State) -> _State:
    blocking = [p for p in obs.problems if p.blocking]
    if blocking:
        return _State("False", blocking[0].reason, blocking[0].message)
    dep = obs.deployment
    if dep is None:
        return _State("False", progress.reason, progress.message)
    wanted, _, _, ready, _ = _rollout(dep)
    if ready > 0:
        return _State("True", "Available", f"{ready} replica(s) ready")
    if wanted == 0:
        how = "the activator wakes it on demand" if obs.activator else "scale up to serve"
        return _State("True", "ScaledToZero", f"scaled to zero; {how}")
    return _State("False", READY_REASONS.get(progress.reason, progress.reason), progress.message)


def conditions(obs: Observed) -> dict[str, _State]:
    progress = _progress(obs)
    spec_problems = [p for p in obs.problems if p.condition == SPEC_VALID]
    sched_problems = [p for p in obs.problems if p.condition == SCHEDULABLE]
    spec_valid = (
        _State("False", spec_problems[0].reason, spec_problems[0].message)
        if spec_problems
        else _State("True", "Valid")
    )
    unschedulable = _unschedulable(obs.pods)
    if sched_problems:
        schedulable = _State("False", sched_problems[0].reason, sched_problems[0].message)
    elif unschedulable:
        schedulable = _State("False", "Unschedulable", unschedulable)
    else:
        schedulable = _State("True", "Scheduled")
    degraded_reason = None
    if progress.status == "False" and progress.reason != "Complete":
        degraded_reason = (progress.reason, progress.message)
    elif obs.deployment is not None and (msg := _deadline_exceeded(obs.deployment)):
        degraded_reason = ("ProgressDeadlineExceeded", msg)
    degraded = (
        _State("True", degraded_reason[0], degraded_reason[1])
        if degraded_reason
        else _State("False", "Healthy")
    )
    ready = _ready(obs, progress)
    return {
        READY: ready,
        PROGRESSING: progress,
        DEGRADED: degraded,
        SPEC_VALID: spec_valid,
        SCHEDULABLE: schedulable,
        **_kstatus(obs, ready, progress, degraded),
    }


def _kstatus(obs: Observed, ready: _State, progress: _State, degraded: _State) -> dict[str, _State]:
    """Reconciling and Stalled, the pair kstatus (Flux) reads. Stalled: Ready is False
    for a reason that will not fix itself (invalid spec, missing Secret, broken
    containers, deadline exceeded). Reconciling: not ready yet and on the way (a cold
    start, a wake from zero, a node coming), or a spec change rolling out; replicas an
    autoscaler adds to a serving endpoint are not a change to wait for."""
    blocked = any(p.blocking for p in obs.problems)
    if ready.status == "False" and (
        blocked or degraded.status == "True" or progress.status == "False"
    ):
        why = ready if blocked or degraded.status != "True" else degraded
        return {
            RECONCILING: _State("False", "Stalled", why.message),
            STALLED: _State("True", why.reason, why.message),
        }
    # A new pod template rolling out: the Deployment controller saw the spec and still has
    # pods of the old one. Replicas an autoscaler adds or removes are not a rollout.
    rolling = False
    if obs.deployment is not None:
        wanted, _, updated, _, caught_up = _rollout(obs.deployment)
        rolling = caught_up and updated < wanted
    if (ready.status == "False" and progress.status == "True") or rolling:
        return {
            RECONCILING: _State("True", progress.reason, progress.message),
            STALLED: _State("False", "Progressing", progress.message),
        }
    return {
        RECONCILING: _State("False", "Reconciled", ready.message),
        STALLED: _State("False", "Healthy", ready.message),
    }


def _timestamp(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def desired(
    current: Mapping[str, Any] | None, obs: Observed, now: datetime.datetime
) -> dict[str, Any]:
    """The reconciler's share of the status; lastTransitionTime kept when nothing moved."""
    current = current or {}
    previous = {c.get("type"): c for c in current.get("conditions") or []}
    generation = obs.generation if obs.generation is not None else current.get("observedGeneration")
    out_conditions = []
    for kind, state in conditions(obs).items():
        old = previous.get(kind)
        moved = old is None or old.get("status") != state.status
        cond: dict[str, Any] = {
            "type": kind,
            "status": state.status,
            "reason": state.reason,
            "message": state.message[:2048],
            "lastTransitionTime": _timestamp(now) if moved else old["lastTransitionTime"],  # type: ignore[index]
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        out_conditions.append(cond)
    out: dict[str, Any] = {"conditions": out_conditions}
    if generation is not None:
        out["observedGeneration"] = generation
    dep = obs.deployment
    out["replicas"] = int((dep or {}).get("status", {}).get("replicas", 0))
    out["readyReplicas"] = int((dep or {}).get("status", {}).get("readyReplicas", 0))
    out["selector"] = obs.selector
    out["url"] = obs.url
    out["accelerator"] = obs.accelerator
    return out


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    conds = {
        c.get("type"): (
            c.get("status"),
            c.get("reason"),
            c.get("message", ""),
            c.get("observedGeneration"),
        )
        for c in status.get("conditions") or []
        if c.get("type") in OWNED_CONDITIONS
    }
    return {"conditions": conds} | {f: status.get(f) for f in OWNED_FIELDS}


def changed(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether writing `wanted` would change anything the reconciler owns."""
    return _comparable(current or {}) != _comparable(wanted)


def ready_of(status: Mapping[str, Any] | None) -> tuple[str, str, str] | None:
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == READY:
            return str(c.get("status")), str(c.get("reason", "")), str(c.get("message", ""))
    return None


def ready_transition(
    before: tuple[str, str, str] | None, after: tuple[str, str, str] | None
) -> tuple[tuple[str, str, str] | None, tuple[str, str, str]] | None:
    """(before, after) when the Ready condition deserves an Event, else None.

    Events mark Ready flipping, and a not-ready endpoint arriving at a reason someone must
    act on (Pending, a broken container, an invalid spec). A new object on its way up
    (Creating -> ModelLoading) is in the condition, not in Events: at hundreds of objects
    those would be noise and API load.
    """
    if after is None:
        return None
    if before is not None and before[0] != after[0]:
        return before, after
    if after[0] == "True":
        return (None, after) if before is None else None
    moved = before is None or before[1] != after[1]
    return (before, after) if moved and after[1] in ACTIONABLE else None


ACTIONABLE = {"Pending", "InvalidSpec", "StorageSecretNotFound", *_BROKEN}
