"""What the autoscaler writes into an InferenceService's status, computed purely.

The autoscaler owns (server-side apply, manager tideserve-autoscaler) desiredReplicas,
lastScaling, activeSchedule, offUntil, learned, slo and the conditions MetricsAvailable and
ScaledToZero. Fields it leaves out of an apply are removed (offUntil when a hard-off
window closes), so the status is always the whole set of its fields.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from tideserve.api import status as status_api
from tideserve.autoscaler import policy

# status.learned is left out of the comparison: learned_status.stale decides when it is
# written (at most once a minute, also when a CRD without the field prunes it).
OWNED = ("desiredReplicas", "lastScaling", "activeSchedule", "offUntil", "slo")
CONDITIONS = (
    status_api.ConditionType.METRICS_AVAILABLE.value,
    status_api.ConditionType.SCALED_TO_ZERO.value,
)
# Present only while deciding for the endpoint fails; the next good decision's status
# leaves it out, which removes it (so a status still carrying it has changed).
SCALING_ACTIVE = status_api.ConditionType.SCALING_ACTIVE.value
DECISION_FAILED = "DecisionFailed"


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_scaling(decision: policy.Decision, before: int, now: datetime.datetime) -> dict[str, Any]:
    return {
        "time": rfc3339(now),
        "from": before,
        "to": decision.desired,
        "kind": decision.kind,
        "reason": decision.reason[:1024],
    }


def _condition(
    kind: str,
    true: bool,
    reason: str,
    message: str,
    previous: Mapping[str, Mapping[str, Any]],
    generation: int | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    status = "True" if true else "False"
    old = previous.get(kind)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or rfc3339(now),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def metrics_condition(signals: policy.Signals | None, prometheus_ok: bool) -> tuple[bool, str, str]:
    """(available, reason, message) for the MetricsAvailable condition."""
    if not prometheus_ok:
        return False, "PrometheusUnavailable", "Prometheus did not answer: holding replicas"
    if signals is None:
        return False, "NoSignals", "no signals: holding replicas"
    if signals.age_s > policy.STALE_AFTER_S:
        return (
            False,
            "SignalsStale",
            f"no sample newer than {policy.STALE_AFTER_S:.0f}s: holding replicas",
        )
    if signals.pending is None and signals.request_rate is None:
        return True, "NoSeries", "no Triton series (normal at zero replicas)"
    # No figures that move every tick in here: the status is written only on change.
    return True, "SignalsFresh", "queue and request rate from Prometheus"


def status(
    decision: policy.Decision,
    *,
    metrics: tuple[bool, str, str],
    scaling: dict[str, Any] | None,
    previous: Mapping[str, Any] | None,
    generation: int | None,
    now: datetime.datetime,
    learned: dict[str, Any] | None = None,
    slo: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The autoscaler's whole part of the status (`learned`: status.learned as
    learned_status.due keeps it; `slo`: status.slo, slo.summary of the endpoint's
    ledger)."""
    before = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    out: dict[str, Any] = {"desiredReplicas": decision.desired}
    if scaling is not None:
        out["lastScaling"] = scaling
    if decision.window:
        out["activeSchedule"] = decision.window
    if decision.off_until is not None:
        out["offUntil"] = rfc3339(decision.off_until)
    if learned is not None:
        out["learned"] = learned
    if slo is not None:
        out["slo"] = slo
    available, reason, message = metrics
    at_zero = decision.desired == 0
    zero_reason = (
        decision.kind
        if at_zero and decision.kind in {"Idle", "Schedule"}
        else ("AtZero" if at_zero else "Serving")
    )
    zero_message = decision.reason if at_zero else f"{decision.desired} replicas wanted"
    out["conditions"] = [
        _condition(CONDITIONS[0], available, reason, message, before, generation, now),
        _condition(
            CONDITIONS[1], at_zero, zero_reason, zero_message[:1024], before, generation, now
        ),
    ]
    return out


def failed(
    error: BaseException,
    *,
    previous: Mapping[str, Any] | None,
    generation: int | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The autoscaler's status for an endpoint it could not decide for this tick: what it
    last wrote (replicas stay as they are), plus ScalingActive=False saying why."""
    before = previous or {}
    out: dict[str, Any] = {k: before[k] for k in (*OWNED, "learned") if k in before}
    kept = [c for c in before.get("conditions") or [] if c.get("type") in CONDITIONS]
    by_type = {c.get("type"): c for c in kept}
    message = f"the autoscaler's decision failed, replicas held: {error!r}"[:1024]
    out["conditions"] = [
        *kept,
        _condition(SCALING_ACTIVE, False, DECISION_FAILED, message, by_type, generation, now),
    ]
    return out


def _comparable(status_part: Mapping[str, Any]) -> dict[str, Any]:
    conditions = {
        c.get("type"): (
            c.get("status"),
            c.get("reason"),
            c.get("message"),
            c.get("observedGeneration"),
        )
        for c in status_part.get("conditions") or []
        if c.get("type") in (*CONDITIONS, SCALING_ACTIVE)
    }
    return {**{k: status_part.get(k) for k in OWNED}, "conditions": conditions}


def changed(previous: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether writing `wanted` would change what the object's status says."""
    return _comparable(previous or {}) != _comparable(wanted)
