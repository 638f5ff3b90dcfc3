"""One PNG per workload: load, replicas per policy, and cost against SLO attainment."""

from __future__ import annotations

import pathlib

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from tideserve.sim import report, runner

# Files only, never a window (the bench runs headless and in forked workers).
matplotlib.use("Agg")

COLORS = {
    "oracle": "black",
    "tideserve": "tab:blue",
    "hpa": "tab:orange",
    "keda": "tab:green",
    "kpa": "tab:red",
    "keepalive": "tab:purple",
}


def workload_png(
    wl: runner.Workload, results: list[runner.Result], bar: float, path: pathlib.Path
) -> None:
    fig, (ax_load, ax_rep, ax_cost) = plt.subplots(
        3, 1, figsize=(11, 11), gridspec_kw={"height_ratios": [1, 1.4, 1.6]}
    )
    minutes = int(np.ceil(wl.duration_s / 60.0))
    load = np.zeros(minutes)
    for tr in wl.traces:
        pm = tr.per_minute()[:minutes] / 60.0
        load[: len(pm)] += pm
    hours = np.arange(minutes) / 60.0
    ax_load.plot(hours, load, color="gray", lw=0.8)
    ax_load.set_ylabel("requests/s")
    ax_load.set_title(f"{wl.name}: {wl.description}", fontsize=10)

    shown = [r for r in results if r.family == "oracle"]
    shown += [p for f in report.FAMILIES if (p := report.pick(results, f, bar)) is not None]
    for r in shown:
        reps = np.array(r.replicas_per_minute[:minutes])
        ax_rep.step(
            hours[: len(reps)],
            reps,
            where="post",
            lw=0.9,
            color=COLORS.get(r.family, "gray"),
            label=f"{r.family} {r.label}",
        )
    ax_rep.set_ylabel("replicas asked for")
    ax_rep.set_xlabel("hour")
    ax_rep.legend(fontsize=7, ncol=3, loc="upper left")

    for fam in (*report.FAMILIES, "oracle"):
        # In knob order (the order of the sweep), so the line traces the knob.
        pts = [r for r in results if r.family == fam]
        if not pts:
            continue
        x = [r.gpu_s / 3600 for r in pts]
        y = [100 * r.attainment for r in pts]
        marker = "*" if fam == "oracle" else "o"
        ax_cost.plot(
            x,
            y,
            marker=marker,
            ms=10 if fam == "oracle" else 5,
            lw=0.8,
            color=COLORS[fam],
            label=fam,
        )
    ax_cost.axhline(100 * bar, color="gray", ls="--", lw=0.8)
    ax_cost.set_xscale("log")
    ax_cost.set_xlabel("GPU-hours (replica-hours), provisioning and loading included")
    ax_cost.set_ylabel("SLO attainment %")
    lows = [100 * r.attainment for r in results]
    ax_cost.set_ylim(max(min(lows) - 2, 0.0), 100.5)
    ax_cost.legend(fontsize=8)
    ax_cost.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
