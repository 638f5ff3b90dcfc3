"""`tideserve bench`: replay traffic through tideserve's policy, its peers and the oracle.

    tideserve bench                          # all built-in workloads, 24 h, seed 1
    tideserve bench --workloads diurnal --hours 6 --quick
    tideserve bench --trace azure-llm:AzureLLMInferenceTrace_conv.csv --trace-model llm-small
    tideserve bench --node-provision 600     # every replica needs a new GPU node

Writes <out>/summary.md (tables, verdicts), <out>/<workload>.png and results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import pathlib
import sys
import time

from tideserve.sim import oracle_run, plots, report, runner, traces, workloads

# Filled before the worker pool forks, so tasks travel as two integers.
_WORKLOADS: list[runner.Workload] = []
_CANDIDATES: list[list[runner.Candidate]] = []
_BAR = workloads.ATTAINMENT_BAR


def _task(job: tuple[int, int]) -> tuple[int, int, runner.Result]:
    i, j = job
    wl = _WORKLOADS[i]
    if j < 0:
        return i, j, oracle_run.run(wl, _BAR)
    return i, j, runner.run(wl, _CANDIDATES[i][j])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tideserve bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workloads",
        default="diurnal,bursty,steps,multi",
        help="comma list of built-in workloads (%(default)s); '' for none",
    )
    p.add_argument(
        "--trace",
        action="append",
        default=[],
        help="replay a file: azure-functions:PATH[::ROW|HASH], azure-llm:PATH, "
        "burstgpt:PATH[::MODEL]",
    )
    p.add_argument(
        "--trace-model",
        default="llm-small",
        help="model class for --trace (resnet50, bert, llm-small, imagegen, tiny-cpu)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument(
        "--node-provision",
        type=float,
        default=0.0,
        help="seconds to get a node per new replica: 0, 60 or 600 (%(default)s)",
    )
    p.add_argument("--scrape", type=float, default=5.0, help="Prometheus scrape interval, s")
    p.add_argument("--tick", type=float, default=5.0, help="tideserve controller tick, s")
    p.add_argument(
        "--bar",
        type=float,
        default=workloads.ATTAINMENT_BAR,
        help="SLO attainment bar for picks (%(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="one point per policy, no sweeps")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (%(default)s)")
    p.add_argument("--out", default="bench-out", help="output directory (%(default)s)")
    p.add_argument("--no-plots", action="store_true")
    return p


class Progress:
    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.monotonic()

    def step(self, text: str) -> None:
        self.done += 1
        width = 30
        filled = int(width * self.done / self.total)
        elapsed = time.monotonic() - self.start
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"{elapsed:5.0f}s  {text[:40]:<40}"
        )
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _result_json(r: runner.Result) -> dict[str, object]:
    body = dataclasses.asdict(r)
    body["replicas_per_minute"] = [int(x) for x in r.replicas_per_minute]
    body["attainment"] = r.attainment
    return body


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    global _BAR  # noqa: PLW0603 (read by forked workers)
    _BAR = args.bar
    opts = workloads.Options(
        seed=args.seed,
        hours=args.hours,
        node_provision_s=args.node_provision,
        scrape_s=args.scrape,
        tick_s=args.tick,
    )
    _WORKLOADS.clear()
    _CANDIDATES.clear()
    for name in [w for w in args.workloads.split(",") if w]:
        if name not in workloads.BUILTIN:
            print(f"unknown workload {name!r}: {', '.join(workloads.BUILTIN)}", file=sys.stderr)
            return 2
        _WORKLOADS.append(workloads.BUILTIN[name](opts))
    for spec in args.trace:
        _WORKLOADS.append(
            workloads.from_trace(traces.load(spec, args.seed), args.trace_model, opts)
        )
    for wl in _WORKLOADS:
        _CANDIDATES.append(workloads.candidates(wl, opts, quick=args.quick))
    jobs = [(i, -1) for i in range(len(_WORKLOADS))]
    jobs += [(i, j) for i in range(len(_WORKLOADS)) for j in range(len(_CANDIDATES[i]))]
    # Longest first (the oracle, then the multi-endpoint runs) keeps both workers busy.
    jobs.sort(key=lambda job: (job[1] >= 0, -len(_WORKLOADS[job[0]].traces)))
    results: list[list[runner.Result | None]] = [[None] * (len(c) + 1) for c in _CANDIDATES]
    progress = Progress(len(jobs))
    if args.jobs > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(args.jobs) as pool:
            for i, j, res in pool.imap_unordered(_task, jobs):
                results[i][j] = res
                progress.step(f"{_WORKLOADS[i].name} {res.family} {res.label}")
    else:
        for job in jobs:
            i, j, res = _task(job)
            results[i][j] = res
            progress.step(f"{_WORKLOADS[i].name} {res.family} {res.label}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = [
        "## Autoscaling benchmark (simulated)",
        "",
        f"`tideserve bench --seed {args.seed} --hours {args.hours:g} --node-provision "
        f"{args.node_provision:g} --scrape {args.scrape:g} --tick {args.tick:g}"
        f"{' --quick' if args.quick else ''}`",
        "",
    ]
    dump: dict[str, list[dict[str, object]]] = {}
    for i, wl in enumerate(_WORKLOADS):
        done = [r for r in results[i] if r is not None]
        png = None
        if not args.no_plots:
            png = f"{wl.name.replace(':', '_')}.png"
            plots.workload_png(wl, done, args.bar, out / png)
        sections.append(report.workload_markdown(wl, done, args.bar, png))
        dump[wl.name] = [_result_json(r) for r in done]
    (out / "summary.md").write_text("\n".join(sections))
    (out / "results.json").write_text(json.dumps(dump, indent=1, default=str))
    print("\n".join(sections))
    print(f"\nwrote {out / 'summary.md'}", file=sys.stderr)
    return 0
