"""SLO attainment accounting (tideserve.autoscaler.slo): pure."""

from __future__ import annotations

import math

import hypothesis
import hypothesis.strategies as st

from tideserve.api import spec as spec_api
from tideserve.autoscaler import report, slo

QUANTILES = {0.5: 10.0, 0.9: 40.0, 0.95: 80.0, 0.99: 200.0}
QUEUE_100 = spec_api.SloSpec(queueTimeMs=100)


def test_share_is_one_at_or_above_the_top_quantile() -> None:
    assert slo.share_within(QUANTILES, 200.0) == 1.0
    assert slo.share_within(QUANTILES, 5000.0) == 1.0


def test_share_interpolates_between_the_quantiles_around_the_target() -> None:
    assert math.isclose(slo.share_within(QUANTILES, 25.0) or 0, 0.7)
    assert math.isclose(slo.share_within(QUANTILES, 140.0) or 0, 0.97)
    assert math.isclose(slo.share_within(QUANTILES, 5.0) or 0, 0.25)  # from (0, 0)


def test_share_ignores_nan_quantiles_and_is_none_without_any() -> None:
    assert slo.share_within({0.5: math.nan}, 10.0) is None
    assert slo.share_within({}, 10.0) is None


@hypothesis.given(
    values=st.lists(st.floats(0, 1e6), min_size=4, max_size=4),
    low=st.floats(0, 1e6),
    high=st.floats(0, 1e6),
)
def test_share_is_a_fraction_that_never_falls_as_the_target_grows(
    values: list[float], low: float, high: float
) -> None:
    quantiles = dict(zip((0.5, 0.9, 0.95, 0.99), sorted(values), strict=True))
    low, high = sorted((low, high))
    a, b = slo.share_within(quantiles, low), slo.share_within(quantiles, high)
    assert a is not None and b is not None
    assert 0.0 <= a <= b <= 1.0


def test_no_target_no_interval() -> None:
    assert slo.interval(slo.Observed(served=10), spec_api.SloSpec(), 60, 0) is None


def test_served_requests_without_summaries_are_not_judged_but_known_misses_count() -> None:
    held = {"forwarded": {0.1: 1.0, math.inf: 4.0}, "expired": {math.inf: 2.0}}
    counted = slo.interval(slo.Observed(served=10, held=held), QUEUE_100, 60, 0)
    assert counted == slo.Interval(good=0.0, total=5.0, seconds=60, end=0)  # 3 late + 2


def test_quiet_interval_counts_nothing_and_says_so() -> None:
    counted = slo.interval(slo.Observed(), QUEUE_100, 60, 0)
    assert counted == slo.Interval(good=0.0, total=0.0, seconds=60, end=0, owed=0.0)


def test_both_targets_take_the_smaller_share() -> None:
    both = spec_api.SloSpec(queueTimeMs=25, latencyMs=200)
    observed = slo.Observed(served=1000, queue_ms=QUANTILES, latency_ms=QUANTILES)
    counted = slo.interval(observed, both, 60, 0)
    assert counted is not None
    assert math.isclose(counted.good, 700.0)
    assert counted.total == 1000


def test_requests_held_past_the_target_are_taken_off_the_good_share() -> None:
    held = {"forwarded": {0.05: 2.0, 0.1: 3.0, 0.2: 3.0, 5.0: 10.0, math.inf: 10.0}}
    observed = slo.Observed(served=100, queue_ms={0.99: 1.0}, held=held)
    counted = slo.interval(observed, QUEUE_100, 60, 0)
    assert counted is not None
    assert counted.total == 100  # forwarded held requests are in Triton's count already
    assert counted.good == 93  # 7 of the 10 waited longer than 100 ms


def test_late_held_requests_triton_shows_later_are_owed_to_the_next_interval() -> None:
    held = {"forwarded": {0.1: 0.0, math.inf: 20.0}}
    # The activator's scrape shows 20 late held requests; Triton's does not show them yet.
    first = slo.interval(slo.Observed(served=0, held=held), QUEUE_100, 60, 60)
    assert first is not None and (first.good, first.total, first.owed) == (0, 0, 20)
    second = slo.interval(slo.Observed(served=60, queue_ms={0.99: 1.0}), QUEUE_100, 60, 120, 20)
    assert second is not None and (second.good, second.total, second.owed) == (40, 60, 0)
    # Owed only once: what a second interval cannot match is dropped.
    third = slo.interval(slo.Observed(), QUEUE_100, 60, 180, first.owed)
    assert third is not None and third.owed == 0


def test_hold_buckets_decide_conservatively_below_the_target() -> None:
    held = {"forwarded": {0.1: 1.0, 0.2: 4.0, math.inf: 4.0}}
    observed = slo.Observed(served=4, queue_ms={0.99: 1.0}, held=held)
    counted = slo.interval(observed, spec_api.SloSpec(queueTimeMs=150), 60, 0)
    assert counted is not None and counted.good == 1  # 0.1 s is the last bucket <= 150 ms


def test_failed_expired_refused_and_full_are_counted_bad() -> None:
    held = {"expired": {math.inf: 3.0}, "refused": {math.inf: 1.0}}
    observed = slo.Observed(served=10, failed=2, queue_ms={0.99: 1.0}, held=held, full=4)
    counted = slo.interval(observed, QUEUE_100, 60, 0)
    assert counted is not None
    assert (counted.good, counted.total) == (10, 20)


def test_ledger_keeps_one_hour_and_floors_attainment() -> None:
    ledger = slo.Ledger()
    ledger = slo.add(ledger, slo.Interval(good=50, total=100, seconds=60, end=0))
    ledger = slo.add(ledger, slo.Interval(good=98999, total=100000, seconds=60, end=3599))
    assert slo.summary(ledger) == {
        "goodRequests": 99049,
        "totalRequests": 100100,
        "windowSeconds": 120,
        "attainment": 0.9895,
    }
    ledger = slo.add(ledger, slo.Interval(good=1, total=1, seconds=60, end=3600))
    shown = slo.summary(ledger)
    assert shown is not None
    assert shown["windowSeconds"] == 120  # the interval ending at 0 fell out of the hour
    assert shown["attainment"] == 0.9899  # 99000/100001 = 0.98999..: floored, not 0.99


def test_no_requests_no_attainment() -> None:
    ledger = slo.add(slo.Ledger(), slo.Interval(good=0, total=0, seconds=60, end=0))
    assert slo.summary(ledger) == {"goodRequests": 0, "totalRequests": 0, "windowSeconds": 60}
    assert slo.summary(slo.Ledger()) is None


def test_observe_reads_prometheus_rows_per_endpoint() -> None:
    def row(value: str, **labels: str) -> dict[str, object]:
        return {"metric": {"namespace": "ns", "name": "a", **labels}, "value": [0, value]}

    observed = slo.observe(
        {
            "served": [row("12")],
            "failed": [row("1")],
            "queue_us": [row("5000", quantile="0.5"), row("NaN", quantile="0.99")],
            "latency_us": [row("9000", quantile="0.99")],
            "held": [
                row("2", outcome="forwarded", le="0.1"),
                row("3", outcome="expired", le="+Inf"),
            ],
            "full": [{"metric": {"namespace": "ns"}, "value": [0, "7"]}],  # no name: skipped
        }
    )
    assert observed == {
        ("ns", "a"): slo.Observed(
            served=12.0,
            failed=1.0,
            queue_ms={0.5: 5.0},
            latency_ms={0.99: 9.0},
            held={"forwarded": {0.1: 2.0}, "expired": {math.inf: 3.0}},
            full=0.0,
        )
    }


def rows(*values: tuple[str, float]) -> list[dict[str, object]]:
    return [
        {"metric": {"namespace": "ns", "name": "a", "pod": pod}, "value": [0, str(v)]}
        for pod, v in values
    ]


def test_advance_differences_each_series_exactly() -> None:
    first, state = slo.advance(None, {"served": rows(("p0", 100), ("p1", 5))})
    assert [r["value"][1] for r in first["served"]] == ["100.0", "5.0"]  # the first pass
    later, state = slo.advance(state, {"served": rows(("p0", 130), ("p1", 2), ("p2", 7))})
    # p0 grew by 30; p1 restarted (reset: all 2 are new); p2 appeared with 7.
    assert [r["value"][1] for r in later["served"]] == ["30.0", "2.0", "7.0"]
    observed = slo.observe(later)
    assert observed[("ns", "a")].served == 39.0
    assert state["served"][(("name", "a"), ("namespace", "ns"), ("pod", "p2"))] == 7.0


def test_advance_passes_quantiles_unchanged() -> None:
    quantiles = {"queue_us": rows(("p0", 1500))}
    assert slo.advance({"queue_us": {}}, quantiles)[0] == quantiles


def test_queries_read_raw_counters_and_select_429s() -> None:
    assert slo.QUERIES["served"] == "nv_inference_request_success"
    assert slo.QUERIES["full"] == 'tideserve_activator_requests_total{code="429"}'


def test_status_slo_is_owned_by_the_autoscaler() -> None:
    assert report.changed({"slo": {"attainment": 0.9}}, {"slo": {"attainment": 0.95}})
    assert not report.changed({"slo": {"attainment": 0.9}}, {"slo": {"attainment": 0.9}})
