"""Plots of hack/bench-live runs written with --dump: per policy, the Deployment's Ready
(and asked-for) replicas over time, and each request's latency against its send time
(the time it waited: in the activator's hold, Triton's queue, its batch), lost requests
marked at the top."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tideserve_testbed.bench import live_metrics as lm


def plot(dump: pathlib.Path, policies: Sequence[str], out: pathlib.Path, title: str) -> None:
    found = [p for p in policies if (dump / p / "requests.csv").exists()]
    if not found:
        raise FileNotFoundError(f"no runs under {dump}")
    fig, axes = plt.subplots(
        2, len(found), figsize=(3.2 * len(found), 5.2), sharex=True, sharey="row", squeeze=False
    )
    for col, policy in enumerate(found):
        requests, samples = lm.read_run(dump / policy)
        top, bottom = axes[0][col], axes[1][col]
        t = [s.t for s in samples]
        top.step(t, [s.ready for s in samples], where="post", label="Ready")
        top.step(t, [s.desired for s in samples], where="post", ls="--", label="asked for")
        top.set_title(policy, fontsize=9)
        ok = [r for r in requests if r.ok]
        lost = [r for r in requests if not r.ok]
        bottom.scatter([r.offset for r in ok], [r.latency for r in ok], s=1, alpha=0.3)
        if lost:
            bottom.scatter([r.offset for r in lost], [100.0] * len(lost), s=4, c="red",
                           marker="x", label=f"lost ({len(lost)})")  # fmt: skip
            bottom.legend(fontsize=7, loc="upper right")
        bottom.set_yscale("log")
        bottom.axhline(1.0, color="grey", lw=0.8, ls=":")
        bottom.set_xlabel("s", fontsize=8)
    axes[0][0].set_ylabel("replicas", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="upper left")
    axes[1][0].set_ylabel("latency, s (log; SLO dotted)", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
