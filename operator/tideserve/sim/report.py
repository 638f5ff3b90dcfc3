"""Tables and verdicts at equal attainment: frontiers per family, over seeds.

Every figure compares like with like: a point is set against another family's (or the
oracle's) frontier at the point's own attainment (frontier.py), per seed, and the seeds'
mean and spread are shown. Where a frontier does not span the attainment, the table says
so instead of dividing by a point planned for something else.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

from tideserve.sim import frontier, runner

FAMILIES = ("tideserve", "hpa", "keda", "kpa", "keepalive")
BASELINES = ("hpa", "keda", "kpa", "keepalive")
DEFAULT = "default"
# The bar on tideserve's defaults: GPU-seconds over the oracle's at equal
# attainment, per workload (None: not set).
ORACLE_BAR = {"diurnal": 1.3, "alibaba": 1.3, "wc98": 1.3}
ZERO_BAR = 0.95

# results[seed] = every result of one workload under that seed
BySeed = dict[int, list[runner.Result]]


def _points(results: Sequence[runner.Result], family: str, warm: bool) -> list[frontier.Point]:
    return [r.point(warm) for r in results if r.family == family]


def default_of(results: Sequence[runner.Result]) -> runner.Result | None:
    return next((r for r in results if r.family == "tideserve" and r.label == DEFAULT), None)


@dataclasses.dataclass(frozen=True)
class Spread:
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    def text(self, scale: float = 1.0, digits: int = 2) -> str:
        if not self.values:
            return "-"
        lo, hi = min(self.values) * scale, max(self.values) * scale
        mean = self.mean * scale
        if len(self.values) == 1 or hi - lo < 0.5 * 10**-digits:
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def _ratio_text(results: BySeed, family: str, label: str, warm: bool) -> str:
    """x oracle at the point's own attainment, per seed; out of range said so."""
    ratios: list[float] = []
    sides: list[str] = []
    for rs in results.values():
        me = next((r for r in rs if r.family == family and r.label == label), None)
        if me is None:
            continue
        at = frontier.ratio_to(me.point(warm), _points(rs, "oracle", warm))
        if at.cost is None:
            sides.append(at.side)
        else:
            ratios.append(at.cost)
    text = Spread(tuple(ratios)).text() if ratios else ""
    if sides:
        why = "below the oracle's range" if "below" in sides else "above the oracle's range"
        text = (text + f" ({len(sides)} seed(s) {why})").strip()
    return text or "-"


def _row(results: BySeed, family: str, label: str) -> str:
    mine = [r for rs in results.values() for r in rs if r.family == family and r.label == label]
    att = Spread(tuple(r.attainment for r in mine))
    gpu = Spread(tuple(r.gpu_s for r in mine))
    watt = Spread(tuple(r.warm_attainment for r in mine))
    wgpu = Spread(tuple(r.warm_gpu_s for r in mine))
    zero = Spread(tuple(r.idle_at_zero for r in mine if not math.isnan(r.idle_at_zero)))
    return (
        f"| {family} {label} | {att.text(100)} | {gpu.text(1 / 3600, 1)} | "
        f"{_ratio_text(results, family, label, False)} | {watt.text(100)} | "
        f"{wgpu.text(1 / 3600, 1)} | {_ratio_text(results, family, label, True)} | "
        f"{zero.text(100, 1)} |"
    )


HEADER = (
    "| policy | SLO met % | GPU-h | x oracle at own attainment | SLO met % after warm-up "
    "| GPU-h after | x oracle after | silences >= 10 min at 0 % |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)


def mean_points(results: BySeed, family: str) -> dict[str, frontier.Point]:
    """label -> (mean GPU-s, mean attainment) over the seeds."""
    acc: dict[str, list[frontier.Point]] = {}
    for rs in results.values():
        for r in rs:
            if r.family == family:
                acc.setdefault(r.label, []).append(r.point(False))
    return {
        label: (statistics.fmean(p[0] for p in pts), statistics.fmean(p[1] for p in pts))
        for label, pts in acc.items()
    }


def frontier_labels(results: BySeed, family: str) -> list[str]:
    """Labels on the family's frontier of seed-mean points, cheapest first."""
    pts = mean_points(results, family)
    front = frontier.pareto(pts.values())
    return [next(lbl for lbl, p in pts.items() if p == f) for f in front]


def _pct(x: float) -> str:
    return f"{100 * x:+.0f}%"


def checks(name: str, results: BySeed, bar: float) -> list[str]:
    """The issue's Done-when, for tideserve's defaults, seed by seed."""
    lines: list[str] = []
    seeds = sorted(results)
    for fam in BASELINES:
        margins: list[float] = []
        fails: list[str] = []
        unreached = 0
        for seed in seeds:
            me = default_of(results[seed])
            if me is None:
                continue
            vs = frontier.versus(me.point(False), _points(results[seed], fam, False))
            if vs.margin is not None:
                margins.append(vs.margin)
            elif vs.side == "above":
                unreached += 1
            if not vs.on_or_below:
                d = vs.dominated_by
                assert d is not None or vs.margin is not None
                fails.append(
                    f"seed {seed}: {fam} reaches {100 * d[1]:.2f}% for {d[0] / 3600:.1f} GPU-h"
                    if d is not None
                    else f"seed {seed}: {_pct(vs.margin or 0.0)}"
                )
        margin_txt = (
            f"margin {Spread(tuple(margins)).text(100, 0)}% (the family's frontier cost at "
            "tideserve's attainment over tideserve's)"
            if margins
            else "no margin (frontier does not span tideserve's attainment)"
        )
        extra = f"; {unreached} seed(s) where no {fam} setting reaches it" if unreached else ""
        verdict = "MET" if not fails else "MISSED (" + "; ".join(fails) + ")"
        lines.append(f"- on or below the {fam} frontier: {verdict}; {margin_txt}{extra}")
    atts, oracle_max = [], []
    for seed in seeds:
        me = default_of(results[seed])
        if me is None:
            continue
        atts.append(me.attainment)
        oracle_max.append(max(r.attainment for r in results[seed] if r.family == "oracle"))
    need = [a for a, o in zip(atts, oracle_max, strict=True) if o >= bar]
    if need:
        ok = all(a >= bar for a in need)
        lines.append(
            f"- >= {100 * bar:g}% where the oracle reaches it ({len(need)}/{len(atts)} seeds): "
            f"{'MET' if ok else 'MISSED'}, tideserve {Spread(tuple(need)).text(100)}%"
        )
    else:
        lines.append(
            f"- >= {100 * bar:g}%: the oracle does not reach it from the same start state "
            f"(best {Spread(tuple(oracle_max)).text(100)}%), so no bar applies"
        )
    limit = ORACLE_BAR.get(name.split(":", maxsplit=1)[0])
    if limit is not None:
        ratios = []
        for seed in seeds:
            me = default_of(results[seed])
            if me is None:
                continue
            at = frontier.ratio_to(me.point(False), _points(results[seed], "oracle", False))
            if at.cost is not None:
                ratios.append(at.cost)
        if ratios:
            ok = all(r <= limit for r in ratios)
            lines.append(
                f"- <= {limit}x the oracle at equal attainment: {'MET' if ok else 'MISSED'}, "
                f"{Spread(tuple(ratios)).text()}x"
            )
        else:
            lines.append(f"- <= {limit}x the oracle: tideserve is outside the oracle's range")
    zero = [
        r.idle_at_zero
        for seed in seeds
        if (r := default_of(results[seed])) is not None and not math.isnan(r.idle_at_zero)
    ]
    if zero:
        ok = all(z >= ZERO_BAR for z in zero)
        lines.append(
            f"- >= {100 * ZERO_BAR:g}% of silences >= 10 min at zero: "
            f"{'MET' if ok else 'MISSED'}, {Spread(tuple(zero)).text(100, 1)}%"
        )
    else:
        lines.append("- silences >= 10 min at zero: the trace has none")
    return lines


def workload_markdown(
    wl: runner.Workload, results: BySeed, bar: float, png: str | None, note: str = ""
) -> str:
    seeds = sorted(results)
    out = [
        f"### {wl.name}: {wl.description}",
        "",
        f"{sum(len(t.arrivals) for t in wl.traces):,} requests over "
        f"{wl.duration_s / 3600:g} h on {len(wl.traces)} endpoint(s) of `{wl.model.name}` "
        f"(cold start {wl.cold_s:g} s; SLO: queue wait <= {wl.slo.queue_wait_s:g} s and "
        f"end-to-end <= {wl.slo.e2e_s:g} s; client timeout {wl.slo.client_timeout_s:g} s)."
        + (f" {note}" if note else ""),
        "",
        "Start state: every policy, the oracle included, starts with nothing Ready at t=0 "
        "(HPA asks for its minReplicas 1 then). "
        f"Warm-up left out of the 'after' columns: the first {wl.warmup_s / 60:g} min from "
        "the first request. "
        f"Seeds {', '.join(map(str, seeds))}: mean [min-max]. 'x oracle' divides by the "
        "oracle's frontier at the policy's own attainment (interpolated).",
        "",
        "Done-when checks (tideserve defaults, per seed):",
        "",
        *checks(wl.name, results, bar),
        "",
        "Each family's frontier (settings not beaten on both cost and attainment by another "
        "setting of the family, seed means), and tideserve's defaults:",
        "",
        HEADER,
    ]
    rows = [("oracle", lbl) for lbl in frontier_labels(results, "oracle")]
    rows.append(("tideserve", DEFAULT))
    for fam in FAMILIES:
        rows += [(fam, lbl) for lbl in frontier_labels(results, fam) if (fam, lbl) not in rows]
    out += [_row(results, fam, lbl) for fam, lbl in rows]
    out.append("")
    if png:
        out += [f"![{wl.name}]({png})", ""]
    labels = sorted({(r.family, r.label) for rs in results.values() for r in rs})
    out += ["<details><summary>Every point of the sweeps</summary>", "", HEADER]
    out += [_row(results, fam, lbl) for fam, lbl in labels]
    out += ["", "</details>", ""]
    return "\n".join(out)
