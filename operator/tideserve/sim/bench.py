"""`tideserve bench`: replay traffic through tideserve's policy, its peers and the oracle.

    tideserve bench                          # built-in workloads, 24 h, seeds 1-3
    tideserve bench --workloads diurnal --hours 6 --quick     # one point per family, seed 1
    tideserve bench --workloads '' --trace alibaba --days 0:3 --seeds 1
    tideserve bench --workloads '' --trace azure-functions --trace wc98 --days 45:47
    tideserve bench --trace path/to/AzureLLMInferenceTrace_conv.csv   # any file of a family
    tideserve bench --trace path/to/mooncake_trace.jsonl::unit=ms     # JSON lines, ms clock
    tideserve bench --node-provision 600     # every replica needs a new GPU node

Shipped traces (alibaba, azure-functions, wc98, azure-llm-code) are found in --trace-dir,
$TIDESERVE_TRACES or ../shared/traces beside the repository.

Writes <out>/summary.md (tables, verdicts), <out>/<workload>.png and results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import pathlib
import sys
import time
from collections.abc import Callable

from tideserve.sim import models, oracle_run, plots, report, runner, traces, workloads

# Filled before the worker pool forks, so tasks travel as three integers:
# _WORKLOADS[seed index][workload index], _CANDIDATES[workload index].
_WORKLOADS: list[list[runner.Workload]] = []
_CANDIDATES: list[list[runner.Candidate]] = []
_SEEDS: list[int] = []
_BAR = workloads.ATTAINMENT_BAR
_QUICK = False


def _task(job: tuple[int, int, int]) -> tuple[int, int, int, list[runner.Result]]:
    s, i, j = job
    wl = _WORKLOADS[s][i]
    seed = _SEEDS[s]
    if j < 0:
        targets = oracle_run.QUICK_TARGETS if _QUICK else oracle_run.TARGETS
        return s, i, j, oracle_run.frontier(wl, _BAR, targets, seed=seed)
    return s, i, j, [runner.run(wl, _CANDIDATES[i][j], seed=seed)]


def _at_least(low: float, what: str) -> Callable[[str], float]:
    """An argparse type: a finite number >= low (a 0 s tick would never advance)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({what})") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"{text}: want {what}")
        return value

    return parse


def _bar(text: str) -> float:
    value = _at_least(0.0, "a fraction between 0 and 1, e.g. 0.99")(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: want a fraction between 0 and 1, e.g. 0.99")
    return value


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want whole numbers, e.g. 1,2,3") from None
    if not seeds:
        raise argparse.ArgumentTypeError("want at least one seed, e.g. 1,2,3")
    return seeds


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want a whole number >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: want a whole number >= 1")
    return value


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
        help="replay a trace: NAME|PATH[::endpoints=N,by=COLUMN,unit=s|ms|us|ns|::ONE]; any "
        "file of a known family (request rows by arrival or end time, per-minute wide or long; "
        "CSV or JSON lines, gzip or plain)",
    )
    p.add_argument(
        "--trace-dir",
        default=None,
        help="where bare trace names are looked up (env TIDESERVE_TRACES; else "
        "../shared/traces beside the repository)",
    )
    p.add_argument(
        "--days",
        default=None,
        help="window of a long trace: START:END in days from its start (e.g. 7:14), or N "
        "for the first N days",
    )
    p.add_argument(
        "--trace-model",
        default="auto",
        choices=["auto", *models.MODELS],
        help="model class for --trace (auto: by the file's columns; resnet50, bert, "
        "llm-small, imagegen, diffusion, tiny-cpu)",
    )
    p.add_argument("--seed", type=int, default=None, help="one seed (same as --seeds N)")
    p.add_argument(
        "--seeds",
        type=_seed_list,
        default=None,
        help="comma list of seeds, reported as mean and spread (1,2,3; 1 with --quick)",
    )
    p.add_argument(
        "--hours",
        type=_at_least(0.1, "hours >= 0.1"),
        default=24.0,
        help="length of the built-in workloads (%(default)s)",
    )
    p.add_argument(
        "--node-provision",
        type=_at_least(0.0, "seconds >= 0"),
        default=0.0,
        help="seconds to get a node per new replica: 0, 60 or 600 (%(default)s)",
    )
    p.add_argument(
        "--scrape",
        type=_at_least(0.1, "seconds >= 0.1"),
        default=5.0,
        help="Prometheus scrape interval, s",
    )
    p.add_argument(
        "--tick",
        type=_at_least(0.1, "seconds >= 0.1"),
        default=5.0,
        help="tideserve controller tick, s",
    )
    p.add_argument(
        "--bar",
        type=_bar,
        default=workloads.ATTAINMENT_BAR,
        help="SLO attainment bar for picks (%(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="one point per policy, no sweeps")
    p.add_argument("--jobs", type=_jobs, default=2, help="worker processes (%(default)s)")
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


def _seeds(args: argparse.Namespace) -> list[int]:
    if args.seed is not None:
        return [args.seed]
    if args.seeds is None:
        return [1] if args.quick else [1, 2, 3]
    seeds: list[int] = args.seeds
    return seeds


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    global _BAR, _QUICK
    _BAR, _QUICK = args.bar, args.quick
    _SEEDS[:] = _seeds(args)
    _WORKLOADS.clear()
    _CANDIDATES.clear()
    notes: list[str] = []
    for seed in _SEEDS:
        opts = workloads.Options(
            seed=seed,
            hours=args.hours,
            node_provision_s=args.node_provision,
            scrape_s=args.scrape,
            tick_s=args.tick,
        )
        per_seed: list[runner.Workload] = []
        for name in [w for w in args.workloads.split(",") if w]:
            if name not in workloads.BUILTIN:
                known = ", ".join(workloads.BUILTIN)
                print(f"unknown workload {name!r}: {known}", file=sys.stderr)
                return 2
            per_seed.append(workloads.BUILTIN[name](opts))
        for spec in args.trace:
            try:
                wl, note = workloads.load_trace(
                    spec, args.trace_model, opts, traces.trace_dir(args.trace_dir), args.days
                )
            except (OSError, ValueError, KeyError) as e:
                print(f"--trace {spec}: {e}", file=sys.stderr)
                return 2
            per_seed.append(wl)
            if seed == _SEEDS[0]:
                notes.append(note)
        _WORKLOADS.append(per_seed)
    base_notes = [""] * (len(_WORKLOADS[0]) - len(notes)) + notes
    for wl in _WORKLOADS[0]:
        opts = workloads.Options(seed=_SEEDS[0], tick_s=args.tick, hours=args.hours)
        _CANDIDATES.append(workloads.candidates(wl, opts, quick=args.quick))
    count = len(_WORKLOADS[0])
    jobs = [(s, i, -1) for s in range(len(_SEEDS)) for i in range(count)]
    jobs += [
        (s, i, j)
        for s in range(len(_SEEDS))
        for i in range(count)
        for j in range(len(_CANDIDATES[i]))
    ]
    # Longest first (the oracle, then the multi-endpoint runs) keeps both workers busy.
    jobs.sort(key=lambda job: (job[2] >= 0, -len(_WORKLOADS[job[0]][job[1]].traces)))
    results: list[list[list[runner.Result]]] = [[[] for _ in range(count)] for _ in _SEEDS]
    progress = Progress(len(jobs))

    def done(s: int, i: int, res: list[runner.Result]) -> None:
        results[s][i].extend(res)
        progress.step(f"{_WORKLOADS[s][i].name} {res[-1].family} {res[-1].label}")

    if args.jobs > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(args.jobs) as pool:
            for s, i, _, res in pool.imap_unordered(_task, jobs):
                done(s, i, res)
    else:
        for job in jobs:
            s, i, _, res = _task(job)
            done(s, i, res)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds_text = ",".join(map(str, _SEEDS))
    command = (
        f"`tideserve bench --seeds {seeds_text} --hours {args.hours:g} --node-provision "
        f"{args.node_provision:g} --scrape {args.scrape:g} --tick {args.tick:g}"
        f"{' --quick' if args.quick else ''}"
        + "".join(f" --trace {t}" for t in args.trace)
        + (f" --days {args.days}" if args.days else "")
        + "`"
    )
    sections = ["## Autoscaling benchmark (simulated)", "", command, ""]
    dump: dict[str, dict[int, list[dict[str, object]]]] = {}
    for i, wl in enumerate(_WORKLOADS[0]):
        by_seed = {seed: results[s][i] for s, seed in enumerate(_SEEDS)}
        png = None
        if not args.no_plots:
            png = f"{wl.name.replace(':', '_').replace('/', '_')}.png"
            plots.workload_png(wl, by_seed, args.bar, out / png)
        sections.append(report.workload_markdown(wl, by_seed, args.bar, png, base_notes[i]))
        dump[wl.name] = {seed: [_result_json(r) for r in rs] for seed, rs in by_seed.items()}
    (out / "summary.md").write_text("\n".join(sections))
    (out / "results.json").write_text(json.dumps(dump, indent=1, default=str))
    print("\n".join(sections))
    print(f"\nwrote {out / 'summary.md'}", file=sys.stderr)
    return 0
