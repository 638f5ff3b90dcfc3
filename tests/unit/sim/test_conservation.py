"""Every arrival ends exactly once: served, timed out or refused."""

from __future__ import annotations

import numpy as np
import pytest

from tideserve.sim import baselines, dataplane, endpoint, hpa, models, runner, traffic

pytestmark = pytest.mark.unit

SLO = models.Slo(0.5, 2.0, 10.0)
MODEL = models.MODELS["imagegen"]


def _workload(trace: traffic.Trace) -> runner.Workload:
    return runner.Workload("t", "", (trace,), MODEL, SLO, 16, endpoint.SimConfig())


@pytest.mark.parametrize(
    "build",
    [
        lambda w, t: hpa.HpaPolicy(0.6, 16),
        lambda w, t: baselines.KedaPolicy(4.0, 16),
        lambda w, t: baselines.KpaPolicy(4.0, 16),
        lambda w, t: baselines.KeepAlivePolicy(60.0, 4.0, 16),
    ],
)
def test_every_arrival_is_counted_once(build) -> None:
    trace = traffic.bursty(5, hours=1.0, peak_rps=30.0, mean_on_s=120, off_median_s=300)
    ep = endpoint.Endpoint(
        trace.arrivals,
        None,
        trace.duration_s,
        MODEL,
        SLO,
        build(None, trace),
        endpoint.SimConfig(max_replicas=16),
    )
    out = ep.run()
    outcome = np.frombuffer(bytes(out.plane.outcome), dtype=np.uint8)
    assert len(outcome) == len(trace.arrivals)
    assert not np.any(outcome == dataplane.PENDING)
    counts = np.bincount(outcome, minlength=4)
    assert counts[1:].sum() == len(trace.arrivals)
    served = outcome == dataplane.SERVED
    assert not np.any(np.isnan(out.plane.start[served]))
    assert np.all(out.plane.start[served] >= trace.arrivals[served])
    r = runner.run(_workload(trace), runner.Candidate("x", "y", build))
    assert r.met + (r.requests - r.met) == r.requests
    assert r.timed_out + r.refused <= r.requests - r.met


def test_no_activator_refuses_at_zero_and_cap_refuses_beyond() -> None:
    arrivals = np.arange(0.5, 10.5, 1.0)
    plane = dataplane.DataPlane(arrivals, None, MODEL, SLO, None)
    plane.advance(5.0)
    plane.add_replica(0, 5.0)
    plane.finish_run(100.0)
    outcome = list(plane.outcome)
    assert outcome[:5] == [dataplane.REFUSED] * 5
    assert outcome[5:] == [dataplane.SERVED] * 5

    capped = dataplane.DataPlane(arrivals, None, MODEL, SLO, 3)
    capped.advance(5.0)
    assert capped.held == 3
    capped.add_replica(0, 5.0)
    capped.finish_run(100.0)
    assert list(capped.outcome).count(dataplane.REFUSED) == 2
    assert list(capped.outcome).count(dataplane.SERVED) == 8


def test_held_requests_time_out_at_the_client_timeout() -> None:
    arrivals = np.array([0.0, 1.0, 20.0])
    plane = dataplane.DataPlane(arrivals, None, MODEL, SLO, 100)
    plane.advance(15.0)
    plane.add_replica(0, 15.0)
    plane.finish_run(60.0)
    assert list(plane.outcome) == [dataplane.TIMED_OUT, dataplane.TIMED_OUT, dataplane.SERVED]


def test_dynamic_batching_forms_batches_up_to_max() -> None:
    arrivals = np.zeros(10) + 1.0
    plane = dataplane.DataPlane(arrivals, None, MODEL, SLO, 100)
    plane.add_replica(0, 0.0)
    plane.finish_run(60.0)
    # 4 + 4 + 2: three batches back to back.
    batch4, batch2 = MODEL.batch_seconds(4), MODEL.batch_seconds(2)
    finishes = sorted(set(np.round(plane.finish, 6)))
    assert finishes == pytest.approx([1 + batch4, 1 + 2 * batch4, 1 + 2 * batch4 + batch2])
    assert plane.cum_success == 10
