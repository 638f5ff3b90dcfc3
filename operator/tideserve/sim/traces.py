"""Loaders for public trace files, by format family (not by file), so a trace nobody here
has seen replays as well as the shipped ones.

Three families, recognised from the header (gzip or plain CSV):

- requests: one row per request with a time column (TIMESTAMP, Timestamp, gmt_create,
  timestamp, time, arrival_time, ...; ISO date-times or seconds). Optional work column
  (GeneratedTokens, Response tokens, exec_time_seconds, ...): a request's size relative
  to the mean. Optional endpoint column (checkpoint_model_version_id, Model, ...): each
  value its own endpoint. Azure LLM 2023/2024 (code, conv), BurstGPT, Alibaba GenAI
  LoRA and other Alibaba request traces.
- per-minute, wide: one row per function, columns 1..1440 (or 1_minute..1440_minute) of
  invocations per minute, an id column (HashFunction). Azure Functions 2019, any day.
  Arrivals are spread uniformly inside each minute (seeded). A durations file of the same
  dataset (HashFunction, Average, ...) beside it gives each function's work.
- per-minute, long: a time column and a count column (WC98's period,count; any such
  series). Arrivals are Poisson inside each minute (seeded).

Time 0 of a replay is midnight (UTC) of the window's first day, so the time of day of
every arrival is the trace's own. Rate scaling (thinning, or scaling per-minute counts)
fits a trace to the modelled endpoint: say the factor with the result (`Loaded.note`).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import gzip
import math
import os
import pathlib
import re
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from tideserve.sim import traffic

DAY_S = 86_400.0
TIME_COLUMNS = ("TIMESTAMP", "Timestamp", "timestamp", "gmt_create", "time", "arrival_time",
                "start_time", "period", "datetime", "date")  # fmt: skip
WORK_COLUMNS = ("GeneratedTokens", "Response tokens", "output_tokens", "exec_time_seconds",
                "exec_time", "duration", "latency")  # fmt: skip
GROUP_COLUMNS = ("checkpoint_model_version_id", "Model", "model", "model_id", "HashFunction",
                 "function", "app")  # fmt: skip
COUNT_COLUMNS = ("count", "requests", "invocations", "value", "rate")
_MINUTE = re.compile(r"^(\d+)(_minute)?$")
# Shipped-file shortcuts: bare name -> file name prefix in the trace directory.
SHORT = {
    "alibaba": "alibaba_genai2026_lora_request_trace",
    "azure-functions": "azure_functions2019_sample1350_inv_per_minute",
    "wc98": "wc98_invocation_count_per_minute",
    "azure-llm-code": "azure_llm2023_code",
}
# Endpoints replayed from a many-endpoint trace by default: the busiest ones, and the rest
# together as one more (so no traffic is dropped). More with ::endpoints=N (each one
# costs a full replay of the window per policy).
DEFAULT_ENDPOINTS = 3


@dataclasses.dataclass(frozen=True)
class Loaded:
    name: str
    family: str  # requests | per-minute-wide | per-minute-long
    traces: tuple[traffic.Trace, ...]
    note: str  # what was taken from the file, in words
    work_column: str | None = None
    # Requests per second in the busiest minute (all endpoints), before rate scaling.
    peak_rps: float = 0.0
    factor: float = 1.0  # rate scaling applied (1: the trace's own rate)


def trace_dir(flag: str | None) -> pathlib.Path:
    """--trace-dir, else $TIDESERVE_TRACES, else ../shared/traces beside the repository."""
    if flag:
        return pathlib.Path(flag)
    env = os.environ.get("TIDESERVE_TRACES")
    if env:
        return pathlib.Path(env)
    repo = pathlib.Path(__file__).resolve().parents[3]
    for cand in (repo.parent / "shared" / "traces", repo.parent.parent / "shared" / "traces"):
        if cand.is_dir():
            return cand
    return repo.parent / "shared" / "traces"


def _lines(path: pathlib.Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        yield from f


def _header(path: pathlib.Path) -> list[str]:
    for line in _lines(path):
        return [h.strip() for h in next(csv.reader([line]))]
    raise ValueError(f"{path}: empty file")


def family_of(header: list[str]) -> str:
    cols = set(header)
    if sum(1 for h in header if _MINUTE.match(h)) >= 60:
        return "per-minute-wide"
    if {"HashFunction", "Average"} <= cols and "percentile_Average_50" in cols:
        return "durations"
    time_col = next((c for c in TIME_COLUMNS if c in cols), None)
    if time_col is None:
        raise ValueError(f"no time column (one of {', '.join(TIME_COLUMNS)}) in {header[:8]}")
    count = [c for c in COUNT_COLUMNS if c in cols]
    if count and len(header) <= 3:
        return "per-minute-long"
    return "requests"


def _seconds(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    # Azure writes 7 fractional digits ("2023-11-16 18:15:46.6805900"); Python takes 6.
    head, _, frac = text.partition(".")
    stamp = datetime.datetime.fromisoformat(head.replace("T", " ").rstrip("Z"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    digits = "".join(ch for ch in frac if ch.isdigit())
    return stamp.timestamp() + (float("0." + digits) if digits else 0.0)


def _window(days: str | None) -> tuple[float, float]:
    """'A:B' -> (A, B) days; 'N' -> (0, N); None -> everything."""
    if not days:
        return 0.0, math.inf
    lo, sep, hi = days.partition(":")
    try:
        if not sep:
            return 0.0, float(lo)
        return float(lo or 0), float(hi) if hi else math.inf
    except ValueError:
        raise ValueError(f"--days {days!r}: want N or START:END (days)") from None


def _span(t: npt.NDArray[np.float64], days: str | None, last: float) -> tuple[float, float]:
    """[origin, end) in the trace's clock for the `days` window of timestamps `t`; the
    last timestamp covers `last` seconds (a request: 1 s; a per-minute count: 60 s)."""
    lo_d, hi_d = _window(days)
    origin = _day_start(float(t.min())) + lo_d * DAY_S
    return origin, min(origin + (hi_d - lo_d) * DAY_S, float(t.max()) + last)


def _day_start(t: float) -> float:
    # Relative clocks (seconds from the trace's start) start at 0; absolute ones at the
    # whole hour before the first arrival (the time of day stays the trace's own hour).
    return 0.0 if t < 10 * 365 * DAY_S else math.floor(t / 3600.0) * 3600.0


def _rows(path: pathlib.Path) -> Iterator[dict[str, str]]:
    reader = csv.DictReader(_lines(path))
    for row in reader:
        yield {(k or "").strip(): (v or "").strip() for k, v in row.items()}


def _split(
    name: str,
    times: traffic.FloatArray,
    work: traffic.FloatArray | None,
    groups: list[str] | None,
    duration: float,
    endpoints: int,
) -> tuple[tuple[traffic.Trace, ...], str]:
    order = np.argsort(times, kind="stable")
    times = times[order]
    work = None if work is None else work[order]
    if groups is None:
        return (traffic.Trace(name, times, duration, work),), "one endpoint"
    g = np.array(groups, dtype=object)[order]
    names, counts = np.unique(g, return_counts=True)
    top = [str(names[i]) for i in np.argsort(-counts, kind="stable")[:endpoints]]
    out: list[traffic.Trace] = []
    for k, key in enumerate(top):
        mask = g == key
        w = None if work is None else work[mask]
        out.append(traffic.Trace(f"{name}/{k:02d}-{key[:10]}", times[mask], duration, w))
    rest = ~np.isin(g, top)
    if rest.any():
        w = None if work is None else work[rest]
        out.append(traffic.Trace(f"{name}/rest", times[rest], duration, w))
    note = f"the {len(top)} busiest of {len(names)} endpoints"
    if rest.any():
        note += f" each its own, the other {len(names) - len(top)} as one more"
    return tuple(out), note


def requests(
    path: pathlib.Path,
    name: str,
    days: str | None,
    group: str | None,
    endpoints: int,
    only: str | None = None,
) -> Loaded:
    header = _header(path)
    cols = set(header)
    time_col = next(c for c in TIME_COLUMNS if c in cols)
    work_col = next((c for c in WORK_COLUMNS if c in cols), None)
    group_col = group if group in cols else None
    if group is None:
        group_col = next((c for c in GROUP_COLUMNS if c in cols), None)
    if group is not None and group_col is None and group != "none":
        raise ValueError(f"{path}: no column {group!r} to split endpoints by")
    times, work, groups = [], [], []
    for row in _rows(path):
        if not row.get(time_col):
            continue
        if only is not None and group_col is not None and row.get(group_col) != only:
            continue
        times.append(_seconds(row[time_col]))
        if work_col is not None:
            try:
                work.append(float(row.get(work_col) or "nan"))
            except ValueError:
                work.append(math.nan)
        if group_col is not None:
            groups.append(row.get(group_col) or "?")
    if not times:
        raise ValueError(f"{path}: no rows with a {time_col}")
    t = np.array(times)
    origin, end = _span(t, days, last=1.0)
    keep = (t >= origin) & (t < end)
    if not keep.any():
        raise ValueError(f"{path}: no request in days {days}")
    w = None
    if work_col is not None:
        raw = np.array(work)[keep]
        good = np.isfinite(raw) & (raw > 0)
        mean = float(raw[good].mean()) if good.any() else 1.0
        w = np.clip(np.where(good, raw, mean) / mean, 0.05, 8.0)
    g = None if group_col is None else [x for x, k in zip(groups, keep, strict=True) if k]
    if only is not None:
        g = None
    duration = math.ceil((end - origin) / 60.0) * 60.0
    trs, how = _split(name, t[keep] - origin, w, g, duration, endpoints)
    note = (
        f"{path.name}: one row per request, time `{time_col}`"
        + (f", work `{work_col}` / its mean" if work_col else "")
        + (f", endpoints by `{group_col}`: {how}" if group_col else "")
    )
    return Loaded(name, "requests", trs, note, work_col, _peak(trs))


def _peak(trs: tuple[traffic.Trace, ...]) -> float:
    if not trs:
        return 0.0
    minutes = math.ceil(max(t.duration_s for t in trs) / 60.0)
    total = np.zeros(minutes + 1)
    for tr in trs:
        pm = tr.per_minute()
        total[: len(pm)] += pm[: minutes + 1]
    return float(total.max()) / 60.0


def durations(path: pathlib.Path) -> dict[str, float]:
    """Azure Functions `function_durations`: HashFunction -> mean milliseconds."""
    out: dict[str, float] = {}
    for row in _rows(path):
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
            if family_of(_header(other)) == "durations":
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
) -> Loaded:
    header = _header(path)
    minute_cols = sorted(
        ((int(m.group(1)), h) for h in header if (m := _MINUTE.match(h))), key=lambda x: x[0]
    )
    id_col = next((c for c in ("HashFunction", "function", "id", "name") if c in header), None)
    rows = []
    for row in _rows(path):
        counts = np.array([float(row.get(h) or 0) for _, h in minute_cols])
        rows.append((row.get(id_col, "?") if id_col else "?", np.maximum(counts, 0)))
    if not rows:
        raise ValueError(f"{path}: no rows")
    lo_d, hi_d = _window(days)
    first = int(lo_d * 1440)
    last = min(len(minute_cols), int(hi_d * 1440) if math.isfinite(hi_d) else len(minute_cols))
    rows = [(fid, c[first:last]) for fid, c in rows]
    if only is not None:
        picked = (
            rows[int(only)] if only.isdigit() else next((r for r in rows if r[0] == only), None)
        )
        if picked is None:
            raise ValueError(f"{path}: no function {only}")
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
    note = (
        f"{path.name}: invocations per minute of {len(rows)} functions; the {len(top)} "
        f"busiest each their own endpoint, the other {max(0, len(rows) - len(top))} as one "
        "more; arrivals uniform inside each minute"
        + (", work from the durations file's mean per function" if ref > 0 else "")
    )
    return Loaded(name, "per-minute-wide", tuple(trs), note, None, _peak(tuple(trs)))


def _spread(counts: traffic.FloatArray, rng: np.random.Generator) -> traffic.FloatArray:
    n = np.round(counts).astype(np.int64)
    starts = np.repeat(np.arange(len(n), dtype=np.float64) * 60.0, n)
    arr = np.sort(starts + rng.random(len(starts)) * 60.0)
    return arr


def per_minute_long(
    path: pathlib.Path, name: str, seed: int, days: str | None, max_peak_rps: float | None
) -> Loaded:
    header = _header(path)
    time_col = next(c for c in TIME_COLUMNS if c in header)
    count_col = next(c for c in COUNT_COLUMNS if c in header)
    stamps, counts = [], []
    for row in _rows(path):
        if row.get(time_col):
            stamps.append(_seconds(row[time_col]))
            counts.append(float(row.get(count_col) or 0))
    if not stamps:
        raise ValueError(f"{path}: no rows")
    t = np.array(stamps)
    origin, end = _span(t, days, last=60.0)
    minutes = math.ceil((end - origin) / 60.0)
    per_min = np.zeros(max(0, minutes))
    idx = np.floor((t - origin) / 60.0).astype(np.int64)
    ok = (idx >= 0) & (idx < minutes)
    np.add.at(per_min, idx[ok], np.maximum(np.array(counts)[ok], 0))
    if not per_min.any():
        raise ValueError(f"{path}: no counts in days {days}")
    peak = float(per_min.max()) / 60.0
    factor = 1.0 if max_peak_rps is None or peak <= max_peak_rps else max_peak_rps / peak
    rng = np.random.default_rng(seed)
    arr = traffic.from_rates(name, per_min * factor / 60.0, 60.0, rng)
    note = f"{path.name}: `{count_col}` per minute of `{time_col}`; Poisson inside each minute"
    tr = traffic.Trace(name, arr, minutes * 60.0)
    return Loaded(name, "per-minute-long", (tr,), note, None, peak, factor)


def scaled(loaded: Loaded, factor: float, seed: int) -> Loaded:
    """Every endpoint's rate times `factor` (<= 1: seeded thinning, shape kept)."""
    if factor >= 1.0:
        return loaded
    rng = np.random.default_rng(seed + 7919)
    trs = []
    for tr in loaded.traces:
        keep = rng.random(len(tr.arrivals)) < factor
        work = None if tr.work is None else tr.work[keep]
        trs.append(traffic.Trace(tr.name, tr.arrivals[keep], tr.duration_s, work))
    return dataclasses.replace(loaded, traces=tuple(trs))


def resolve(target: str, directory: pathlib.Path) -> pathlib.Path:
    """A path, or a shipped name (alibaba, azure-functions, wc98, azure-llm-code), or any
    file name prefix in the trace directory."""
    path = pathlib.Path(target)
    if path.exists():
        return path
    prefix = SHORT.get(target, target)
    found = sorted(p for p in directory.glob(f"{prefix}*") if ".csv" in p.name)
    if not found:
        known = ", ".join(SHORT)
        raise ValueError(f"no trace {target!r} (a path, or in {directory}: {known})")
    return found[0]


def load(
    spec: str,
    seed: int,
    directory: pathlib.Path | None = None,
    days: str | None = None,
    max_peak_rps: float | None = None,
) -> Loaded:
    """`[kind:]PATH_OR_NAME[::OPTION,...]`; options: endpoints=N, by=COLUMN (or none).

    The kind prefix (azure-functions:, azure-llm:, burstgpt:, alibaba:, wc98:) is accepted
    for compatibility and ignored: the header decides the family.
    """
    directory = directory or trace_dir(None)
    body, _, opts = spec.partition("::")
    target = _target(body)
    options = dict(o.partition("=")[::2] for o in opts.split(",") if o and "=" in o)
    # A bare option (the old `::MODEL` / `::HASH` / `::ROW`) replays that endpoint alone.
    only = next((o for o in opts.split(",") if o and "=" not in o), None)
    try:
        endpoints = int(options.get("endpoints", DEFAULT_ENDPOINTS))
    except ValueError:
        raise ValueError(f"endpoints={options['endpoints']!r}: want a whole number") from None
    group = options.get("by")
    path = resolve(target, directory)
    fam = family_of(_header(path))
    name = _short_name(path)
    if fam == "requests":
        loaded = requests(path, name, days, group, endpoints, only)
    elif fam == "per-minute-wide":
        loaded = per_minute_wide(path, name, seed, days, endpoints, only)
    elif fam == "per-minute-long":
        return per_minute_long(path, name, seed, days, max_peak_rps)
    else:
        raise ValueError(f"{path}: a {fam} file is read beside its invocations, not replayed")
    factor = (
        1.0
        if max_peak_rps is None or loaded.peak_rps <= max_peak_rps
        else (max_peak_rps / loaded.peak_rps)
    )
    out = scaled(loaded, factor, seed)
    return dataclasses.replace(out, factor=factor, peak_rps=out.peak_rps)


def _target(body: str) -> str:
    """The path or name of a spec, without an old-style `kind:` prefix."""
    kind, sep, rest = body.partition(":")
    return rest if sep and not pathlib.Path(body).exists() and "/" not in kind else body


def sniff(spec: str, directory: pathlib.Path) -> tuple[str, str | None]:
    """(family, work column) of the file a --trace spec names, from its header."""
    header = _header(resolve(_target(spec.partition("::")[0]), directory))
    return family_of(header), next((c for c in WORK_COLUMNS if c in header), None)


def _short_name(path: pathlib.Path) -> str:
    stem = path.name.split(".csv")[0]
    for short, prefix in SHORT.items():
        if stem.startswith(prefix):
            return short
    return stem
