"""Cold-start phases in Progressing, from pod bodies as a kubelet reports them.

The local test bed's kwok nodes mark pods Running and Ready at once, so these phases
are pinned here, on pod status shaped like a real kubelet's (Kubernetes 1.31).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tideserve.controller import status

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"
T0 = "2026-11-23T11:59:00Z"


def deployment(ready: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": ready,
            "unavailableReplicas": 1 - ready,
        },
    }


def pod_status(phase: str, conditions: dict[str, str], **more: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "m-predictor-7d9c-x2x9q", "namespace": "ns"},
        "spec": {"nodeName": "gpu-l4-0"} if conditions.get("PodScheduled") == "True" else {},
        "status": {
            "phase": phase,
            "conditions": [
                {"type": t, "status": v, "lastTransitionTime": T0} for t, v in conditions.items()
            ],
            "qosClass": "Burstable",
            "startTime": T0,
        }
        | more,
    }


UNSCHEDULABLE = {
    "metadata": {"name": "m-predictor-7d9c-x2x9q", "namespace": "ns"},
    "spec": {},
    "status": {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": T0,
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. "
                "preemption: 0/3 nodes are available: 3 No preemption victims found for "
                "incoming pod.",
            }
        ],
        "qosClass": "Burstable",
    },
}
SCHEDULED_NOT_STARTED = pod_status("Pending", {"PodScheduled": "True"})
FETCHING = pod_status(
    "Pending",
    {
        "PodReadyToStartContainers": "True",
        "Initialized": "False",
        "Ready": "False",
        "ContainersReady": "False",
        "PodScheduled": "True",
    },
    initContainerStatuses=[
        {
            "name": "fetch-model",
            "image": "curlimages/curl:8.10.1",
            "imageID": "docker.io/curlimages/curl@sha256:d9b4",
            "ready": False,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": T0}},
        }
    ],
    containerStatuses=[
        {
            "name": "triton",
            "image": IMAGE,
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"waiting": {"reason": "PodInitializing"}},
        }
    ],
)
PULLING = pod_status(
    "Pending",
    {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "False",
        "ContainersReady": "False",
        "PodScheduled": "True",
    },
    containerStatuses=[
        {
            "name": "triton",
            "image": IMAGE,
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }
    ],
)
PULL_FAILING = pod_status(
    "Pending",
    {"Initialized": "True", "Ready": "False", "PodScheduled": "True"},
    containerStatuses=[
        {
            "name": "triton",
            "image": "nvcr.io/nvidia/tritonserver:no-such-tag",
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": 'Back-off pulling image "nvcr.io/nvidia/tritonserver:no-such-tag"',
                }
            },
        }
    ],
)
LOADING = pod_status(
    "Running",
    {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "False",
        "ContainersReady": "False",
        "PodScheduled": "True",
    },
    podIP="10.244.1.7",
    containerStatuses=[
        {
            "name": "triton",
            "image": IMAGE,
            "imageID": "nvcr.io/nvidia/tritonserver@sha256:5f1e",
            "ready": False,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": T0}},
        }
    ],
)


def observed(pods: list[dict[str, Any]], ready: int = 0) -> status.Observed:
    return status.Observed(
        generation=1,
        selector="a=b",
        url="http://m",
        accelerator="gpu:NVIDIA-L4",
        deployment=deployment(ready),
        pods=pods,
        activator=True,
    )


def reasons(pod: dict[str, Any]) -> tuple[str, str, str]:
    conds = status.conditions(observed([pod]))
    progressing = conds[status.PROGRESSING]
    return conds[status.READY].reason, progressing.status, progressing.reason


@pytest.mark.parametrize(
    ("pod", "phase"),
    [
        (UNSCHEDULABLE, "WaitingForNode"),
        (SCHEDULED_NOT_STARTED, "ImagePulling"),
        (FETCHING, "FetchingModel"),
        (PULLING, "ImagePulling"),
        (LOADING, "ModelLoading"),
    ],
)
def test_each_cold_start_phase_is_a_progressing_reason(pod: dict[str, Any], phase: str) -> None:
    ready, progressing, reason = reasons(pod)
    assert (progressing, reason) == ("True", phase)
    # Ready names the same phase, but keeps "Pending" for a pod no node takes (the
    # reason documented for it, and of its Warning Event).
    assert ready == ("Pending" if phase == "WaitingForNode" else phase)


def test_waiting_for_a_node_keeps_the_schedulers_words() -> None:
    conds = status.conditions(observed([UNSCHEDULABLE]))
    message = conds[status.PROGRESSING].message
    assert "3 Insufficient nvidia.com/gpu" in message and "waiting for a node" in message
    assert conds[status.SCHEDULABLE].reason == "Unschedulable"


def test_an_image_that_cannot_be_pulled_is_degraded_not_a_phase() -> None:
    conds = status.conditions(observed([PULL_FAILING]))
    assert (conds[status.PROGRESSING].status, conds[status.PROGRESSING].reason) == (
        "False",
        "ImagePullBackOff",
    )
    assert conds[status.DEGRADED].status == "True"
    assert "no-such-tag" in conds[status.READY].message


def test_a_cold_start_writes_once_per_phase_and_sends_no_event_until_ready() -> None:
    written: dict[str, Any] | None = None
    writes, events = 0, []
    for pods, ready in [
        ([UNSCHEDULABLE], 0),
        ([UNSCHEDULABLE], 0),
        ([FETCHING], 0),
        ([PULLING], 0),
        ([PULLING], 0),
        ([LOADING], 0),
        ([], 1),
    ]:
        wanted = status.desired(written, observed(pods, ready), NOW)
        if status.changed(written, wanted):
            writes += 1
            move = status.ready_transition(status.ready_of(written), status.ready_of(wanted))
            if move:
                events.append(move[1][1])
            written = wanted
    assert writes == 5
    # Pending is the one actionable phase (it may never end); then Ready flips to True.
    assert events == ["Pending", "Available"]
