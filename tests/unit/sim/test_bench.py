"""`tideserve bench` end to end on a short workload, and the tideserve adapter."""

from __future__ import annotations

import json
import pathlib

import pytest

from tideserve.sim import bench, oracle_run, pipeline, runner, tideserve_policy, workloads

pytestmark = pytest.mark.unit


def test_bench_writes_summary_plot_and_results(tmp_path: pathlib.Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["--workloads", "steps", "--hours", "0.25", "--quick", "--seed", "1", "--jobs", "1"]
    argv += ["--out", str(out)]
    assert bench.main(argv) == 0
    summary = (out / "summary.md").read_text()
    assert "### steps" in summary and "oracle" in summary and "tideserve" in summary
    assert "Start state: every policy, the oracle included" in summary
    assert "on or below the keda frontier" in summary
    assert (out / "steps.png").stat().st_size > 10_000
    results = json.loads((out / "results.json").read_text())
    families = {r["family"] for r in results["steps"]["1"]}
    assert families == {"oracle", "tideserve", "hpa", "keda", "kpa", "keepalive"}
    # The oracle traces a frontier: one replay per target (the bar's tightened one included).
    oracles = [r for r in results["steps"]["1"] if r["family"] == "oracle"]
    assert len(oracles) == len(oracle_run.QUICK_TARGETS) + 1
    assert "[####" in capsys.readouterr().err  # the progress bar
    # Same seed, same numbers.
    out2 = tmp_path / "again"
    assert bench.main([*argv[:-1], str(out2)]) == 0
    assert json.loads((out2 / "results.json").read_text()) == results


def test_every_policy_starts_with_nothing_ready(tmp_path: pathlib.Path) -> None:
    """Same start state: no policy (the oracle included) serves before a cold start."""
    wl = workloads.steps(workloads.Options(seed=2, hours=0.1))
    early = wl.traces[0].arrivals < wl.cold_s - wl.slo.queue_wait_s
    assert early.any()
    for cand in workloads.candidates(wl, workloads.Options(seed=2), quick=True)[:4]:
        r = runner.run(wl, cand)
        assert r.met <= r.requests - int(early.sum()), cand.label
    o = oracle_run.run(wl, 0.99)
    assert o.met <= o.requests - int(early.sum())


def test_adapter_builds_signals_like_the_operator() -> None:
    series = pipeline.Series(pipeline.PipelineConfig(rate_window_s=30.0))
    series.add_sample(pipeline.Sample(0.0, 0.5, 0, 0, 0.0, 0.0, 2))
    series.add_sample(pipeline.Sample(30.0, 30.5, 6, 60, 3.0, 10.0, 2))
    view = pipeline.View(now=33.0, current=2, ready=2, held=0, series=series)
    s = tideserve_policy.signals_from(view)
    assert s.pending == 6 and s.request_rate == 2.0 and s.queue_time_s == 0.05
    assert s.age_s == 2.5  # from the scrape's timestamp, as timestamp() in PromQL
    # Nothing Ready when scraped: no series, only what the activator holds.
    series.add_sample(pipeline.Sample(32.0, 35.5, 0, 60, 3.0, 10.0, 0))
    at_zero = pipeline.View(now=36.0, current=0, ready=0, held=5, series=series)
    s0 = tideserve_policy.signals_from(at_zero)
    assert (s0.pending, s0.request_rate, s0.held) == (None, None, 5)
    policy = tideserve_policy.TideservePolicy(tideserve_policy.scaling_spec())
    assert policy.decide(view) >= 2
    assert policy.last_kind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "0"], "--hours: 0: want hours >= 0.1"),
        (["--tick", "0"], "--tick: 0: want seconds >= 0.1"),  # a 0 s tick never advances
        (["--scrape", "nan"], "--scrape: nan: want seconds >= 0.1"),
        (["--seeds", "a"], "--seeds: 'a': want whole numbers"),
        (["--seeds", ","], "--seeds: want at least one seed"),
        (["--bar", "1.5"], "--bar: 1.5: want a fraction between 0 and 1"),
        (["--jobs", "0"], "--jobs: 0: want a whole number >= 1"),
        (["--trace-model", "gpt"], "--trace-model: invalid choice: 'gpt'"),
    ],
)
def test_bad_options_are_refused_by_name(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--workloads", "diurnal", "--quick", *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
