"""Loaders for public trace files, by format family (not by file), so a trace nobody here
has seen replays as well as the shipped ones.

Three families, recognised from the header (CSV, or JSON lines: the keys of the first
1,000 objects; gzip or plain). Column names are matched whatever their case, spaces or
underscores. Rows without a time (or with NaN or inf) are left out, and counted in the
note; a time that is neither a number nor an ISO date-time is an error naming its row.

- requests: one row per request with a time column (TIMESTAMP, Timestamp, gmt_create,
  timestamp, time, arrival_time, ...; ISO date-times or seconds), or else an end time
  (end_timestamp, end_time, ...: arrival = end - duration where a duration column is
  there). Optional work column (GeneratedTokens, Response tokens, exec_time_seconds,
  output_length, ...): a request's size relative to the mean. Optional endpoint column
  (checkpoint_model_version_id, Model, func, app, ...): each value its own endpoint.
  Azure LLM 2023/2024 (code, conv), BurstGPT, Alibaba GenAI LoRA and other Alibaba
  request traces, Azure Functions 2021 (end times), Mooncake (JSON lines).
- per-minute, wide: one row per function, columns 1..1440 (or 1_minute..1440_minute) of
  invocations per minute, an id column (HashFunction). Azure Functions 2019, any day.
  Arrivals are spread uniformly inside each minute (seeded). A durations file of the same
  dataset (HashFunction, Average, ...) beside it gives each function's work.
- per-minute, long: a time column and a count column (WC98's period,count; any such
  series). Arrivals are Poisson inside each minute (seeded).

Time 0 of a replay is midnight (UTC) of the window's first day, so the time of day of
every arrival is the trace's own. Rate scaling (thinning, or scaling per-minute counts)
fits a trace to the modelled endpoint: say the factor with the result (`Loaded.note`).

This module is the front (`load`, `sniff`, names and options) and the request-row
loader; trace_files.py reads files and windows, trace_minutes.py the per-minute families.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib

import numpy as np

from tideserve.sim import trace_clock, trace_minutes, traffic
from tideserve.sim import trace_files as files

# Re-exported: what a caller of the loaders needs.
Loaded = files.Loaded
family_of = files.family_of
is_tokens = files.is_tokens

# Shipped-file shortcuts: bare name -> file name prefix in the trace directory.
SHORT = {
    "alibaba": "alibaba_genai2026_lora_request_trace",
    "azure-functions": "azure_functions2019_sample1350_inv_per_minute",
    "wc98": "wc98_invocation_count_per_minute",
    "azure-llm-code": "azure_llm2023_code",
}
# What a trace file's name ends with (before .gz): a name prefix finds only these.
SUFFIXES = (".csv", ".jsonl", ".json", ".txt")
# Endpoints replayed from a many-endpoint trace by default: the busiest ones, and the rest
# together as one more (so no traffic is dropped). More with ::endpoints=N (each one
# costs a full replay of the window per policy).
DEFAULT_ENDPOINTS = 3


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


@dataclasses.dataclass(frozen=True)
class _Columns:
    """The columns a request-row file is read by (header names; None: not in the file)."""

    time: str  # when a request arrived, else (ends) when it ended
    ends: bool
    duration: str | None  # subtracted from an end time
    work: str | None
    group: str | None

    @staticmethod
    def of(header: list[str], path: pathlib.Path, group: str | None) -> _Columns:
        start = files.pick(header, files.TIME_COLUMNS)
        end = None if start else files.pick(header, files.END_COLUMNS)
        group_col = files.pick(header, files.GROUP_COLUMNS) if group is None else None
        if group is not None and group != "none":
            group_col = files.pick(header, (group,))
            if group_col is None:
                raise ValueError(f"{path}: no column {group!r} to split endpoints by")
        return _Columns(
            time=start or end or "",
            ends=end is not None,
            duration=files.pick(header, files.DURATION_COLUMNS) if end else None,
            work=files.pick(header, files.WORK_COLUMNS),
            group=group_col,
        )


def _number(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return math.nan


@dataclasses.dataclass(frozen=True)
class _Rows:
    """A request-row file's columns as read: NaN where a number is missing or not one."""

    times: traffic.FloatArray  # as written (numbers in the file's unit; dates as seconds)
    numeric: bool  # the times are numbers, not date-times
    durations: traffic.FloatArray
    work: traffic.FloatArray
    groups: list[str]
    left: files.Left  # the rows left out for their time


def _read(path: pathlib.Path, cols: _Columns, only: str | None) -> _Rows:
    """The rows that have a time (and are of endpoint `only`, if given)."""
    times: list[float] = []
    durations: list[float] = []
    work: list[float] = []
    groups: list[str] = []
    numeric = True
    left = files.Left(cols.time)
    group = cols.group if only is not None else None
    for t, row in files.timed(path, cols.time, left, lambda r: not group or r.get(group) == only):
        if not times:
            numeric = files.is_number(row[cols.time])
        times.append(t)
        if cols.duration is not None:
            durations.append(_number(row.get(cols.duration)))
        if cols.work is not None:
            work.append(_number(row.get(cols.work)))
        if cols.group is not None:
            groups.append(row.get(cols.group) or "?")
    return _Rows(np.array(times), numeric, np.array(durations), np.array(work), groups, left)


def _arrivals(
    path: pathlib.Path, rows: _Rows, cols: _Columns, clock: trace_clock.Clock
) -> tuple[traffic.FloatArray, str]:
    """Arrival times in seconds, and how, in words: an end time minus the request's
    duration where the file has one (a missing duration counts as 0)."""
    t = clock.seconds(rows.times)
    unit = clock.words()
    if not cols.ends:
        return t, f"time `{cols.time}` {unit}"
    if cols.duration is None:
        return t, f"time `{cols.time}` {unit} (when each request ended: no duration column)"
    d = np.clip(np.nan_to_num(rows.durations, nan=0.0), 0.0, None)
    a = t - d * clock.duration_scale(cols.duration)
    how = (
        f"time `{cols.time}` {unit} - `{cols.duration}` {clock.duration_words(cols.duration)}"
        " (end time minus duration)"
    )
    # A relative clock starts at 0: a request that began before it is outside the trace;
    # most of them is a duration in a finer unit than it was read in (or a clock coarser).
    before = int((a < 0).sum()) if t.min() >= 0 and files.day_start(float(t.min())) == 0 else 0
    if before > len(a) / 2:
        raise ValueError(
            f"{path}: {how} is before the clock's 0 for {before} of {len(a)} requests: "
            "the two columns' units do not match (::unit= sets the times' unit, and a "
            "duration's where its name says none)"
        )
    return a, how + (f" ({before} began before the clock's 0: left out)" if before else "")


def requests(
    path: pathlib.Path,
    name: str,
    days: str | None,
    group: str | None,
    endpoints: int,
    only: str | None = None,
    unit: str | None = None,
) -> files.Loaded:
    cols = _Columns.of(files.header(path), path, group)
    if only is not None and cols.group is None:
        raise ValueError(
            f"{path}: no column to pick endpoint {only!r} by (name one with ::by=COLUMN,{only})"
        )
    rows = _read(path, cols, only)
    if not len(rows.times) and only is not None:
        raise ValueError(f"{path}: no request of endpoint {only!r} (column `{cols.group}`)")
    if not len(rows.times):
        raise ValueError(f"{path}: no rows with a {cols.time}")
    clock = trace_clock.Clock.of(cols.time, rows.numeric, float(rows.times[0]), unit)
    t, how_time = _arrivals(path, rows, cols, clock)
    origin, end = files.span(t, days, last=1.0)
    clock.check_span(path, origin, end)
    keep = (t >= origin) & (t < end)
    if not keep.any():
        raise ValueError(f"{path}: no request in days {days}")
    w = None
    if cols.work is not None:
        raw = rows.work[keep]
        good = np.isfinite(raw) & (raw > 0)
        mean = float(raw[good].mean()) if good.any() else 1.0
        w = np.clip(np.where(good, raw, mean) / mean, 0.05, 8.0)
    g = None if cols.group is None else [x for x, k in zip(rows.groups, keep, strict=True) if k]
    if only is not None:
        g = None
    duration = math.ceil((end - origin) / 60.0) * 60.0
    trs, how = _split(name, t[keep] - origin, w, g, duration, endpoints)
    note = (
        f"{path.name}: one row per request, {how_time}"
        + (f", work `{cols.work}` / its mean" if cols.work else "")
        + (f", endpoints by `{cols.group}`: {how}" if cols.group else "")
        + rows.left.words()
        + clock.suspect(rows.times)
    )
    return files.Loaded(name, "requests", trs, note, cols.work, files.peak(trs))


def scaled(loaded: files.Loaded, factor: float, seed: int) -> files.Loaded:
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
    found = sorted(p for p in directory.glob(f"{prefix}*") if _stem(p.name) != p.name)
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
) -> files.Loaded:
    """`[kind:]PATH_OR_NAME[::OPTION,...]`; options: endpoints=N, by=COLUMN (or none),
    unit=s|ms|us|ns (of numeric times, where neither the column's name nor an epoch's
    magnitude says it; a replay spanning over 400 days is an error saying so).

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
    if endpoints < 0:
        raise ValueError(f"endpoints={endpoints}: want a whole number, 0 or more")
    group = options.get("by")
    unit = trace_clock.option(options.get("unit"))
    path = resolve(target, directory)
    fam = files.family_of(files.header(path))
    name = _short_name(path)
    if fam == "requests":
        loaded = requests(path, name, days, group, endpoints, only, unit)
    elif fam == "per-minute-wide":
        loaded = trace_minutes.per_minute_wide(path, name, seed, days, endpoints, only)
    elif fam == "per-minute-long":
        return trace_minutes.per_minute_long(path, name, seed, days, max_peak_rps, unit)
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
    header = files.header(resolve(_target(spec.partition("::")[0]), directory))
    return files.family_of(header), files.pick(header, files.WORK_COLUMNS)


def _stem(name: str) -> str:
    """A trace file's name without its suffixes (.csv, .jsonl, .json, .txt; .gz of each);
    the name as is if it has none of them (not a trace)."""
    base = name.removesuffix(".gz")
    for suffix in SUFFIXES:
        if base.endswith(suffix):
            return base.removesuffix(suffix)
    return name


def _short_name(path: pathlib.Path) -> str:
    stem = _stem(path.name)
    for short, prefix in SHORT.items():
        if stem.startswith(prefix):
            return short
    return stem
