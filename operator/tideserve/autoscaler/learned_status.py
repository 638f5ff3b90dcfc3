"""The learned part of PolicyState <-> status.learned, both ways. Pure.

What the policy learns of an endpoint (capacity per replica, cold starts, idle gaps)
takes hours of traffic to gather. Kept only in memory, an operator restart or a
failover to a standby would start again from the defaults (target 4, scale-down window
300 s, idle period 900 s) and behave differently for hours. The loop writes the figures
to status.learned and restores them on its first sight of an endpoint.

Only the learned figures travel: the histories, timers and panic mode restart as after
any start (policy._start, conservative). The figures are rounded and the lists bounded
as the policy already bounds them; the derived settings shown next to them are computed
from the rounded figures, so a restored state derives exactly what the status says.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import pydantic

from tideserve.api import spec as spec_api
from tideserve.api import status as status_api
from tideserve.autoscaler import demand as demand_lib
from tideserve.autoscaler import learned
from tideserve.autoscaler import profile as profile_lib
from tideserve.autoscaler import state as state_lib

# Significant digits kept of a rate (capacity, peak, target): 0.1-1 % of the figure,
# well inside what one saturated minute moves it.
RATE_DIGITS = 3
# Cold starts in tenths of a second; idle gaps in whole seconds (they are >= 10 s).
COLD_START_DECIMALS = 1
# status.learned changes at most this often per endpoint: a saturated endpoint refines
# its capacity every tick, and a status write per tick per endpoint is what the loop
# avoids. A restart loses at most this much learning.
MIN_WRITE_INTERVAL_S = 60.0

_ALIASES = frozenset(f.alias or n for n, f in status_api.Learned.model_fields.items())


def _rate(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return float(f"{value:.{RATE_DIGITS}g}")


def rounded(
    capacity: demand_lib.Capacity, observed: learned.Observed
) -> tuple[demand_lib.Capacity, learned.Observed]:
    """The learned figures as status.learned keeps them: rounded, bounded, consistent
    (measured only with a rate, a peak only when measured). Idempotent."""
    per_replica = _rate(capacity.per_replica)
    measured = capacity.measured and per_replica is not None
    cold = tuple(
        round(s, COLD_START_DECIMALS) for s in observed.cold_starts if math.isfinite(s) and s >= 0
    )[-learned.COLD_SAMPLES :]
    gaps = tuple(
        float(round(g)) for g in observed.gaps if math.isfinite(g) and g >= learned.MIN_GAP_S
    )[-learned.GAP_SAMPLES :]
    # Arrival counts travel only beside the gaps they belong to (same length, same order).
    wake = tuple(_count(x) for x in observed.gap_wake)[-learned.GAP_SAMPLES :]
    cycle = tuple(_count(x) for x in observed.gap_cycle)[-learned.GAP_SAMPLES :]
    if not (len(wake) == len(cycle) == len(gaps)):
        wake = cycle = ()
    prof = observed.profile
    slots: tuple[float, ...] = ()
    seen: tuple[int, ...] = ()
    if len(prof.per_slot) == profile_lib.SLOTS and len(prof.seen) == profile_lib.SLOTS:
        slots = tuple(_count(x) for x in prof.per_slot)
        seen = tuple(min(profile_lib.MAX_SEEN, max(0, int(d))) for d in prof.seen)
    return (
        demand_lib.Capacity(
            per_replica=per_replica,
            measured=measured,
            peak=_rate(capacity.peak) if measured else None,
        ),
        learned.Observed(
            cold_starts=cold,
            gaps=gaps,
            gap_wake=wake,
            gap_cycle=cycle,
            profile=profile_lib.Profile(per_slot=slots, seen=seen),
        ),
    )


def _count(x: float) -> float:
    """A request count as kept: tenths, never negative or non-finite."""
    return round(x, 1) if math.isfinite(x) and x > 0 else 0.0


def basis_of(spec: spec_api.InferenceServiceSpec, accelerator: str | None) -> str:
    """What capacity and cold starts depend on: the model, the runtime, the resources asked
    for and the accelerator in use (right-sizing may move an endpoint). 16 hex digits."""
    what = {
        "model": spec.model.model_dump(mode="json", by_alias=True),
        "runtime": spec.runtime.model_dump(mode="json", by_alias=True),
        "resources": spec.resources.model_dump(mode="json", by_alias=True),
        "accelerator": accelerator,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def rebase(state: state_lib.PolicyState) -> state_lib.PolicyState:
    """`state` without what a new model or other hardware makes wrong: capacity and cold
    starts are learned again; idle gaps describe the traffic and are kept."""
    return dataclasses.replace(
        state,
        capacity=demand_lib.Capacity(),
        observed=dataclasses.replace(state.observed, cold_starts=()),
    )


def snapshot(
    state: state_lib.PolicyState,
    scaling: spec_api.ScalingSpec,
    slo: spec_api.SloSpec | None,
    basis: str | None = None,
) -> status_api.Learned | None:
    """status.learned for this state (None while nothing was learned)."""
    capacity, observed = rounded(state.capacity, state.observed)
    if (
        capacity.per_replica is None
        and not observed.cold_starts
        and not observed.gaps
        and not observed.profile.per_slot
    ):
        return None
    knobs = learned.knobs(scaling, slo, capacity, observed)
    cold = learned.cold_start_s(observed)
    return status_api.Learned(
        capacity_per_replica=capacity.per_replica,
        capacity_measured=capacity.measured if capacity.per_replica is not None else None,
        peak_per_replica=capacity.peak,
        cold_starts_seconds=list(observed.cold_starts),
        cold_start_seconds=None if cold is None else round(cold, COLD_START_DECIMALS),
        idle_gaps_seconds=[int(g) for g in observed.gaps],
        idle_gap_arrivals=list(observed.gap_wake) or None,
        idle_gap_requests=list(observed.gap_cycle) or None,
        requests_per_slot=list(observed.profile.per_slot) or None,
        slot_days=list(observed.profile.seen) or None,
        target=float(f"{knobs.target.value:.{RATE_DIGITS}g}"),
        scale_down_window_seconds=knobs.down_window_s,
        idle_seconds=max(0, round(knobs.idle_s)),
        basis=basis,
    )


def dump(figures: status_api.Learned | None) -> dict[str, Any] | None:
    """The status.learned object as written (JSON types, aliases, no Nones)."""
    if figures is None:
        return None
    return figures.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse(raw: object) -> status_api.Learned | None:
    """status.learned as read back; None when absent or unusable. Fields this version
    does not know (a newer operator's) are ignored; the derived ones are recomputed."""
    if not isinstance(raw, Mapping):
        return None
    known = {k: v for k, v in raw.items() if k in _ALIASES}
    try:
        return status_api.Learned.model_validate(known)
    except pydantic.ValidationError:
        return None


def restore(figures: status_api.Learned | None, basis: str | None = None) -> state_lib.PolicyState:
    """A fresh PolicyState that knows what status.learned says; learned on another basis
    (model, runtime, resources, accelerator), only its idle gaps."""
    if figures is None:
        return state_lib.PolicyState()
    if basis is not None and figures.basis is not None and figures.basis != basis:
        return rebase(restore(figures))
    capacity, observed = rounded(
        demand_lib.Capacity(
            per_replica=figures.capacity_per_replica,
            measured=bool(figures.capacity_measured),
            peak=figures.peak_per_replica,
        ),
        learned.Observed(
            cold_starts=tuple(figures.cold_starts_seconds),
            gaps=tuple(float(g) for g in figures.idle_gaps_seconds),
            gap_wake=tuple(figures.idle_gap_arrivals or ()),
            gap_cycle=tuple(figures.idle_gap_requests or ()),
            profile=profile_lib.Profile(
                per_slot=tuple(figures.requests_per_slot or ()),
                seen=tuple(figures.slot_days or ()),
            ),
        ),
    )
    return state_lib.PolicyState(capacity=capacity, observed=observed)


@dataclasses.dataclass(frozen=True)
class Written:
    """status.learned as last written (or read at the first sight), and when."""

    value: dict[str, Any] | None
    at: datetime.datetime


def due(
    last: Written | None, fresh: dict[str, Any] | None, now: datetime.datetime
) -> Written | None:
    """What status.learned says from this tick on: `fresh` when it differs from what was
    written and the last write is MIN_WRITE_INTERVAL_S old (the first one at once).
    Nothing learned (None) never erases what the status says."""
    if fresh is None or (last is not None and fresh == last.value):
        return last
    if last is None or last.value is None:
        return Written(fresh, now)
    if (now - last.at).total_seconds() >= MIN_WRITE_INTERVAL_S:
        return Written(fresh, now)
    return last


def stale(
    written: Written | None,
    shown: object,
    tried: datetime.datetime | None,
    now: datetime.datetime,
) -> bool:
    """Whether status.learned must be written this tick: what the status `shown` differs
    from what should be there, and no write of it was tried in the last minute. The
    bound matters when the write does not stick: a CRD from before status.learned
    (Helm does not upgrade CRDs) prunes the field, and the loop would write every tick."""
    if written is None or written.value is None or shown == written.value:
        return False
    return tried is None or (now - tried).total_seconds() >= MIN_WRITE_INTERVAL_S
