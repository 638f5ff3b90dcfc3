"""One PNG per workload: load, replicas per policy, and cost against SLO attainment."""

from __future__ import annotations

import pathlib

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from tideserve.sim import frontier, report, runner

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
    wl: runner.Workload, results: report.BySeed, bar: float, path: pathlib.Path
) -> None:
    """Load (first seed), replicas asked for, and every family's frontier (seed means)."""
    first = results[min(results)]
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

    shown = [r for r in first if r.family == "oracle" and r.attainment >= bar][:1]
    default = report.default_of(first)
    if default is not None:
        shown.append(default)
    for fam in report.BASELINES:
        labels = report.frontier_labels({0: first}, fam)
        reach = [r for r in first if r.family == fam and r.label in labels and r.attainment >= bar]
        if reach:
            shown.append(min(reach, key=lambda r: r.gpu_s))
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

    lows = []
    for fam in ("oracle", *report.FAMILIES):
        pts = report.mean_points(results, fam)
        if not pts:
            continue
        xs = [g / 3600 for g, _ in pts.values()]
        ys = [100 * a for _, a in pts.values()]
        lows += ys
        ax_cost.scatter(xs, ys, s=10, color=COLORS[fam], alpha=0.35)
        front = frontier.pareto(pts.values())
        ax_cost.plot(
            [g / 3600 for g, _ in front],
            [100 * a for _, a in front],
            marker="*" if fam == "oracle" else "o",
            ms=7,
            lw=1.2,
            color=COLORS[fam],
            label=f"{fam} frontier",
        )
        if fam == "tideserve" and report.DEFAULT in pts:
            g, a = pts[report.DEFAULT]
            ax_cost.scatter([g / 3600], [100 * a], s=160, marker="D", color=COLORS[fam],
                            edgecolor="black", zorder=5, label="tideserve defaults")  # fmt: skip
    ax_cost.axhline(100 * bar, color="gray", ls="--", lw=0.8)
    ax_cost.set_xscale("log")
    ax_cost.set_xlabel("GPU-hours (replica-hours), provisioning and loading included")
    ax_cost.set_ylabel(f"SLO attainment %, mean of seeds {sorted(results)}")
    ax_cost.set_ylim(max(min(lows, default=90.0) - 2, 0.0), 100.5)
    ax_cost.legend(fontsize=8)
    ax_cost.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
