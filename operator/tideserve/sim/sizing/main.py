"""`hack/bench-rightsizing`: run the bench over seeds and write the Markdown page."""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import pathlib
import sys
import time

from tideserve.sim.sizing import report, run

# Constants of the bench and of the recommender were chosen looking at seeds 101-105 only;
# the published figures are seeds 1-5.
REPORTED_SEEDS = (1, 2, 3, 4, 5)
TUNING_SEEDS = (101, 102, 103, 104, 105)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/bench-rightsizing", description=__doc__)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--seeds", default=",".join(map(str, REPORTED_SEEDS)))
    parser.add_argument("--tuning", action="store_true", help=f"seeds {TUNING_SEEDS}")
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel")
    args = parser.parse_args(argv)
    seeds = TUNING_SEEDS if args.tuning else tuple(int(s) for s in args.seeds.split(","))
    started = time.monotonic()
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        results = pool.map(functools.partial(run.run, args.models), seeds)
    print(f"seeds {seeds} done ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    command = f"hack/bench-rightsizing --models {args.models} --seeds {','.join(map(str, seeds))}"
    text = report.page(results, args.models, command)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text)
    return 0
