"""Per-minute trace files: invocations per minute, wide (one row per function, columns
1..1440: Azure Functions 2019) or long (a time and a count column: WC98). Arrivals are
spread inside each minute, seeded: uniformly for the wide family, Poisson for the long."""

from __future__ import annotations

import math
import pathlib

import numpy as np

from tideserve.sim import trace_clock, traffic
from tideserve.sim import trace_files as files


def durations(path: pathlib.Path) -> dict[str, float]:
    """Azure Functions `function_durations`: HashFunction -> mean milliseconds."""
    out: dict[str, float] = {}
    for row in files.rows(path):
        try:
            out[row["HashFunction"]] = float(row["Average"])
        except (KeyError, ValueError):
            continue
    return out


def _durations_beside(path: pathlib.Path) -> dict[str, float]:
    for other in sorted(path.parent.glob("*.csv*")):
        if other == path:
            continue
        try:
            if files.family_of(files.header(other)) == "durations":
                found = durations(other)
                return found
        except (OSError, ValueError, UnicodeDecodeError):
            continue
    return {}


def per_minute_wide(
    path: pathlib.Path,
    name: str,
    seed: int,
    days: str | None,
    endpoints: int,
    only: str | None = None,
) -> files.Loaded:
    header = files.header(path)
    minute_cols = sorted(
        ((int(m.group(1)), h) for h in header if (m := files.MINUTE.match(h))), key=lambda x: x[0]
    )
    id_col = next((c for c in ("HashFunction", "function", "id", "name") if c in header), None)
    rows = []
    odd = files.Counts()
    for n, row in enumerate(files.rows(path), 1):

        def where(i: int, n: int = n) -> str:
            return f"row {n}, column `{minute_cols[i][1]}`"

        counts = odd.read(path, [row.get(h, "") for _, h in minute_cols], where)
        rows.append((row.get(id_col, "?") if id_col else "?", counts))
    if not rows:
        raise ValueError(f"{path}: no rows")
    lo_d, hi_d = files.window(days)
    first = int(lo_d * 1440)
    last = min(len(minute_cols), int(hi_d * 1440) if math.isfinite(hi_d) else len(minute_cols))
    rows = [(fid, c[first:last]) for fid, c in rows]
    if only is not None:
        if only.isdigit():
            picked = rows[int(only)] if int(only) < len(rows) else None
        else:
            picked = next((r for r in rows if r[0] == only), None)
        if picked is None:
            raise ValueError(f"{path}: no function {only} (rows 0-{len(rows) - 1}, or a name)")
        rows = [picked]
    rows.sort(key=lambda r: -float(r[1].sum()))
    top = rows[:endpoints]
    rest = sum((c for _, c in rows[endpoints:]), np.zeros(last - first))
    durs = _durations_beside(path)
    rng = np.random.default_rng(seed)
    chosen = [d for fid, _ in top if (d := durs.get(fid))]
    ref = float(np.median(chosen)) if chosen else 0.0
    trs = []
    for k, (fid, counts) in enumerate([*top, ("rest", rest)]):
        if not counts.sum():
            continue
        arr = _spread(counts, rng)
        work = None
        if ref > 0 and fid in durs:
            work = np.full(len(arr), float(np.clip(durs[fid] / ref, 0.05, 8.0)))
        label = f"{k:02d}-{fid[:10]}" if fid != "rest" else "rest"
        trs.append(traffic.Trace(f"{name}/{label}", arr, (last - first) * 60.0, work))
    if not trs:
        which = f" of function {only}" if only is not None else ""
        window = f" in days {days}" if days else ""
        raise ValueError(f"{path}: no invocations{which}{window}")
    note = (
        f"{path.name}: invocations per minute of {len(rows)} functions; the {len(top)} "
        f"busiest each their own endpoint, the other {max(0, len(rows) - len(top))} as one "
        "more; arrivals uniform inside each minute"
        + (", work from the durations file's mean per function" if ref > 0 else "")
        + odd.words()
    )
    return files.Loaded(name, "per-minute-wide", tuple(trs), note, None, files.peak(tuple(trs)))


def _spread(counts: traffic.FloatArray, rng: np.random.Generator) -> traffic.FloatArray:
    n = np.round(counts).astype(np.int64)
    starts = np.repeat(np.arange(len(n), dtype=np.float64) * 60.0, n)
    arr = np.sort(starts + rng.random(len(starts)) * 60.0)
    return arr


def per_minute_long(
    path: pathlib.Path,
    name: str,
    seed: int,
    days: str | None,
    max_peak_rps: float | None,
    unit: str | None = None,
) -> files.Loaded:
    header = files.header(path)
    time_col = files.pick(header, files.TIME_COLUMNS) or files.pick(header, files.END_COLUMNS)
    count_col = files.pick(header, files.COUNT_COLUMNS)
    if time_col is None or count_col is None:
        raise ValueError(f"{path}: no time or count column in {header}")
    stamps: list[float] = []
    cells: list[str] = []
    times: list[str] = []
    numeric = True
    left = files.Left(time_col)
    for stamp, row in files.timed(path, time_col, left, lambda _: True):
        if not stamps:
            numeric = files.is_number(row[time_col])
        stamps.append(stamp)
        cells.append(row.get(count_col, ""))
        times.append(row[time_col])
    if not stamps:
        raise ValueError(f"{path}: no rows")
    odd = files.Counts()
    counts = odd.read(path, cells, lambda i: f"`{count_col}` at `{time_col}` {times[i]}")
    clock = trace_clock.Clock.of(time_col, numeric, stamps[0], unit)
    t = clock.seconds(np.array(stamps))
    origin, end = files.span(t, days, last=60.0)
    clock.check_span(path, origin, end)
    minutes = math.ceil((end - origin) / 60.0)
    per_min = np.zeros(max(0, minutes))
    idx = np.floor((t - origin) / 60.0).astype(np.int64)
    ok = (idx >= 0) & (idx < minutes)
    np.add.at(per_min, idx[ok], counts[ok])
    if not per_min.any():
        raise ValueError(f"{path}: no counts in days {days}")
    peak = float(per_min.max()) / 60.0
    factor = 1.0 if max_peak_rps is None or peak <= max_peak_rps else max_peak_rps / peak
    rng = np.random.default_rng(seed)
    arr = traffic.from_rates(name, per_min * factor / 60.0, 60.0, rng)
    note = (
        f"{path.name}: `{count_col}` per minute of `{time_col}` {clock.words()}; Poisson "
        "inside each minute" + left.words() + odd.words() + clock.suspect(np.array(stamps))
    )
    tr = traffic.Trace(name, arr, minutes * 60.0)
    return files.Loaded(name, "per-minute-long", (tr,), note, None, peak, factor)
