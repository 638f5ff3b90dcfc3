"""Status as a pure function of the object and its children's state."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tideserve.api import spec as spec_api
from tideserve.controller import checks, status
from tideserve.render import hardware

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=5)


def deployment(
    wanted: int = 1, ready: int = 1, updated: int | None = None, gen: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": wanted},
        "status": {
            "observedGeneration": gen,
            "replicas": max(wanted, ready),
            "updatedReplicas": wanted if updated is None else updated,
            "readyReplicas": ready,
        },
    }


def pod(**status_fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"phase": "Pending"} | status_fields}


def observed(
    dep: dict[str, Any] | None, pods: list[dict[str, Any]] = (), **kw: Any
) -> status.Observed:  # type: ignore[assignment]
    return status.Observed(
        generation=4,
        selector="a=b",
        url="http://x",
        accelerator="cpu",
        deployment=dep,
        pods=list(pods),
        **kw,
    )


def cond(obs: status.Observed, kind: str) -> tuple[str, str]:
    state = status.conditions(obs)[kind]
    return state.status, state.reason


def test_ready_when_a_replica_is_ready() -> None:
    assert cond(observed(deployment()), status.READY) == ("True", "Available")
    assert cond(observed(deployment()), status.PROGRESSING) == ("False", "Complete")


def test_scaled_to_zero_is_healthy() -> None:
    obs = observed(deployment(wanted=0, ready=0), activator=True)
    assert cond(obs, status.READY) == ("True", "ScaledToZero")
    assert cond(obs, status.DEGRADED) == ("False", "Healthy")


def test_unschedulable_gpu_pod_is_pending_with_the_schedulers_words() -> None:
    stuck = pod(
        conditions=[
            {"type": "PodScheduled", "status": "False", "message": "0/6 nodes are available"}
        ]
    )
    problems = checks.hardware_problems(
        hardware.Hardware(kind="gpu", gpu_product="NVIDIA-H100"),
        [{"nvidia.com/gpu.product": "NVIDIA-L4"}],
    )
    obs = observed(deployment(ready=0), [stuck], problems=tuple(problems))
    state = status.conditions(obs)[status.READY]
    assert (state.status, state.reason) == ("False", "Pending")
    assert "nvidia.com/gpu.product=NVIDIA-H100" in state.message and "0/6 nodes" in state.message
    assert cond(obs, status.SCHEDULABLE) == ("False", "NoNodeOffersGpuProduct")


def test_scheduled_but_not_ready_is_model_loading() -> None:
    running = pod(phase="Running", conditions=[{"type": "PodScheduled", "status": "True"}])
    assert cond(observed(deployment(ready=0), [running]), status.READY) == ("False", "ModelLoading")


def test_new_template_rolling_out_keeps_ready_and_reports_progress() -> None:
    obs = observed(deployment(wanted=2, ready=2, updated=1))
    assert cond(obs, status.READY) == ("True", "Available")
    assert cond(obs, status.PROGRESSING) == ("True", "RollingOut")


def test_crash_loop_is_degraded() -> None:
    broken = pod(
        phase="Running",
        containerStatuses=[
            {"name": "triton", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        ],
    )
    obs = observed(deployment(ready=0), [broken])
    assert cond(obs, status.DEGRADED) == ("True", "CrashLoopBackOff")
    assert cond(obs, status.READY) == ("False", "CrashLoopBackOff")


def test_missing_secret_blocks_with_a_human_message() -> None:
    problems = tuple(checks.secret_problems(_model(storageSecretRef="creds"), secret_exists=False))
    state = status.conditions(observed(None, problems=problems))[status.READY]
    assert (state.status, state.reason) == ("False", "StorageSecretNotFound")
    assert "'creds'" in state.message


def test_invalid_spec_is_reported_not_raised() -> None:
    obs = observed(None, problems=(checks.invalid_spec("spec.scaling: minReplicas must be ..."),))
    assert cond(obs, status.READY) == ("False", "InvalidSpec")
    assert cond(obs, status.SPEC_VALID) == ("False", "InvalidSpec")


def kstatus_pair(obs: status.Observed) -> tuple[str, str]:
    return cond(obs, status.RECONCILING)[0], cond(obs, status.STALLED)[0]


def test_kstatus_reads_invalid_and_blocked_specs_as_stalled() -> None:
    invalid = observed(deployment(), problems=(checks.invalid_spec("spec.x: bad"),))
    assert kstatus_pair(invalid) == ("False", "True")
    assert cond(invalid, status.STALLED) == ("True", "InvalidSpec")
    secret = tuple(checks.secret_problems(_model(storageSecretRef="creds"), secret_exists=False))
    assert kstatus_pair(observed(None, problems=secret)) == ("False", "True")


def test_kstatus_reads_broken_containers_as_stalled() -> None:
    broken = pod(
        phase="Running",
        containerStatuses=[{"name": "triton", "state": {"waiting": {"reason": "ErrImagePull"}}}],
    )
    assert cond(observed(deployment(ready=0), [broken]), status.STALLED) == ("True", "ErrImagePull")


def test_kstatus_waits_for_a_cold_start_and_a_template_rollout() -> None:
    running = pod(phase="Running", conditions=[{"type": "PodScheduled", "status": "True"}])
    assert kstatus_pair(observed(deployment(ready=0), [running])) == ("True", "False")
    assert cond(observed(None), status.RECONCILING) == ("True", "Creating")
    assert kstatus_pair(observed(deployment(wanted=2, ready=2, updated=1))) == ("True", "False")


def test_replicas_an_autoscaler_changes_are_not_reconciling() -> None:
    # Scaling 1 -> 0 while the last pod still terminates; 1 -> 3 with one ready.
    assert kstatus_pair(observed(deployment(wanted=0, ready=1, updated=0))) == ("False", "False")
    assert kstatus_pair(observed(deployment(wanted=3, ready=1))) == ("False", "False")
    assert kstatus_pair(observed(deployment(wanted=0, ready=0))) == ("False", "False")


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = status.desired(None, observed(deployment()), NOW)
    same = status.desired(first, observed(deployment(wanted=2, ready=2)), LATER)
    ready = {c["type"]: c for c in same["conditions"]}[status.READY]
    assert ready["lastTransitionTime"] == "2026-11-23T12:00:00Z"
    down = status.desired(first, observed(deployment(ready=0)), LATER)
    ready = {c["type"]: c for c in down["conditions"]}[status.READY]
    assert ready["lastTransitionTime"] == "2026-11-23T12:05:00Z"


def test_nothing_to_write_when_nothing_changed() -> None:
    first = status.desired(None, observed(deployment()), NOW)
    again = status.desired(first, observed(deployment()), LATER)
    assert not status.changed(first, again)
    assert status.changed(first, status.desired(first, observed(deployment(ready=0)), LATER))


def test_only_the_reconcilers_fields_are_written() -> None:
    written = status.desired({"desiredReplicas": 3}, observed(deployment()), NOW)
    assert set(written) == {"conditions", *status.OWNED_FIELDS}
    assert {c["type"] for c in written["conditions"]} == set(status.OWNED_CONDITIONS)


def _model(**fields: Any) -> spec_api.ModelSpec:
    return spec_api.ModelSpec.model_validate({"name": "m", "storageUri": "s3://b/r"} | fields)


def test_events_only_when_ready_flips() -> None:
    loading = ("False", "ModelLoading", "")
    creating = ("False", "Creating", "")
    ready = ("True", "Available", "")
    assert status.ready_transition(None, creating) is None
    assert status.ready_transition(creating, loading) is None
    assert status.ready_transition(loading, ready) == (loading, ready)
    assert status.ready_transition(None, ready) == (None, ready)
    assert status.ready_transition(ready, ("False", "Pending", "")) is not None
    pending = ("False", "Pending", "no node fits")
    assert status.ready_transition(creating, pending) == (creating, pending)
    assert status.ready_transition(pending, pending) is None
