"""tideserve's own policy in the simulator: the operator's `decide`, not a copy.

The adapter feeds the simulated scrape to tideserve.autoscaler.assemble.endpoint, the
assembly the operator's loop uses (Triton's pending gauge plus the activator's held
count; queue time 0 when nothing finished; age = now - the scrape's timestamp; no
series at all while no replica is Ready, only the held count). It then carries
`PolicyState` from tick to tick, as the operator's loop does.
"""

from __future__ import annotations

import datetime
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.autoscaler import assemble, policy
from tideserve.sim import models, pipeline

# Simulated time 0 is this instant (a Monday, midnight UTC), so schedules see a real clock.
EPOCH = datetime.datetime(2026, 1, 5, tzinfo=datetime.UTC)


def scaling_spec(overrides: dict[str, Any] | None = None) -> spec_api.ScalingSpec:
    """A ScalingSpec as a user would write it (camelCase keys), over the bench defaults."""
    body: dict[str, Any] = {"minReplicas": 0, "maxReplicas": 64}
    body.update(overrides or {})
    return spec_api.ScalingSpec.model_validate(body)


def slo_spec(slo: models.Slo, attainment: float | None = None) -> spec_api.SloSpec:
    """spec.slo as the user of a workload would write it: its queue-wait and latency bounds
    (and, when given, the attainment objective; else the API's default)."""
    body: dict[str, Any] = {
        "queueTimeMs": slo.queue_wait_s * 1000.0,
        "latencyMs": slo.e2e_s * 1000.0,
    }
    if attainment is not None:
        body["attainment"] = attainment
    return spec_api.SloSpec.model_validate(body)


def signals_from(view: pipeline.View) -> policy.Signals:
    latest = view.series.latest()
    if latest is None or not latest.ready:
        # No Triton series (nothing Ready when scraped): what the loop passes then.
        return assemble.endpoint(
            pending=None,
            queue_time_s=None,
            rate=None,
            sampled_at=None,
            held=view.held,
            evaluated_at=view.now,
        )
    rate, queue_time = view.series.rates()
    return assemble.endpoint(
        pending=float(latest.pending),
        queue_time_s=queue_time,
        rate=rate,
        sampled_at=latest.scraped_at,
        held=view.held,
        evaluated_at=view.now,
    )


class TideservePolicy:
    needs_concurrency = False

    def __init__(
        self,
        scaling: spec_api.ScalingSpec,
        tick_s: float = 5.0,
        label: str = "",
        slo: spec_api.SloSpec | None = None,
    ) -> None:
        self.name = f"tideserve({label})" if label else "tideserve"
        self.scaling = scaling
        self.slo = slo
        self.tick_s = tick_s
        self.activator_cap: int | None = scaling.scale_to_zero.max_held_requests
        self.initial_replicas = scaling.min_replicas
        self.state = policy.PolicyState()
        self.last_kind = ""
        self.last_reason = ""

    def decide(self, view: pipeline.View) -> int:
        now = EPOCH + datetime.timedelta(seconds=view.now)
        decision, self.state = policy.decide(
            self.scaling, signals_from(view), view.current, view.ready, now, self.state, self.slo
        )
        self.last_kind = decision.kind
        self.last_reason = decision.reason
        return decision.desired
