"""Reading public trace files: their columns, format family, clock and window. Pure apart
from reading the file (CSV or JSON lines, gzip or plain); the loaders are traces.py
(request rows) and trace_minutes.py (per-minute counts)."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import gzip
import itertools
import json
import math
import pathlib
import re
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from tideserve.sim import traffic

DAY_S = 86_400.0
# Column names, best first. Matched by `key` (case, spaces, underscores and a unit suffix
# aside), so `ArrivalTime`, `TIMESTAMP_MS` and `generated_tokens` are found too. Names
# added later rank below the older ones, save `func` (finer than `app`: before it) and the
# output-token names (an LLM's work before a latency or duration beside it).
TIME_COLUMNS = ("TIMESTAMP", "Timestamp", "timestamp", "gmt_create", "time", "arrival_time",
                "start_time", "period", "datetime", "date",
                "arrival_timestamp", "start_timestamp", "created_at", "request_time",
                "submit_time", "submitted_at", "ts")  # fmt: skip
# When a request ended: the clock of a file that has no start time (Azure Functions 2021).
END_COLUMNS = ("end_timestamp", "end_time", "finish_time", "finish_timestamp",
               "completion_time", "completed_at", "finished_at", "ended_at", "end")  # fmt: skip
# How long a request ran: an end time minus it is when the request arrived.
DURATION_COLUMNS = ("duration", "exec_time", "execution_time", "latency", "elapsed", "runtime")
WORK_COLUMNS = ("GeneratedTokens", "Response tokens", "output_tokens", "output_length",
                "completion_tokens",
                "exec_time_seconds", "exec_time", "duration", "latency",
                # A prompt's length is work only where the file says nothing of the output.
                "input_length", "input_tokens", "prompt_tokens")  # fmt: skip
TOKEN_COLUMNS = ("GeneratedTokens", "Response tokens", "output_tokens", "output_length",
                 "completion_tokens", "input_length", "input_tokens", "prompt_tokens")  # fmt: skip
# The finest grouping first: a function before its app.
GROUP_COLUMNS = ("checkpoint_model_version_id", "Model", "model", "model_id", "HashFunction",
                 "function", "func", "app",
                 "model_name", "endpoint", "deployment")  # fmt: skip
COUNT_COLUMNS = ("count", "requests", "invocations", "value", "rate")
MINUTE = re.compile(r"^(\d+)(_minute)?$")
# JSON lines' header: the keys of this many objects (an object leaves out keys it lacks).
JSON_HEADER_ROWS = 1_000
# A unit at the end of a column's name: `timestamp_ms`, `time_us`, `Duration (ms)`.
UNIT_SUFFIX = re.compile(
    r"^(.*?)(?:[\s_.-]+|[\s_.-]*[(\[])"
    r"(s|secs?|seconds?|ms|msecs?|millis(?:econds?)?|us|µs|usecs?|micros(?:econds?)?"
    r"|ns|nsecs?|nanos(?:econds?)?)[)\]]?$",
    re.IGNORECASE,
)


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


def lines(path: pathlib.Path) -> Iterator[str]:
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column.
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        yield from f


def _first(path: pathlib.Path) -> str:
    for line in lines(path):
        if line.strip():
            return line.strip()
    raise ValueError(f"{path}: empty file")


def is_jsonl(path: pathlib.Path) -> bool:
    """JSON lines (one object a line: Mooncake), told from CSV by content, not name."""
    return _first(path).startswith("{")


def header(path: pathlib.Path) -> list[str]:
    """The column names: a CSV's first line with something on it; of JSON lines, the keys
    of the first JSON_HEADER_ROWS objects, in the order first seen."""
    first = _first(path)
    if first.startswith("{"):
        return _keys(path)
    if first.startswith("["):
        raise ValueError(f"{path}: a JSON array; want JSON lines (one object a line) or CSV")
    return [h.strip() for h in next(csv.reader([first]))]


def _keys(path: pathlib.Path) -> list[str]:
    keys: dict[str, None] = {}
    objects = 0
    for n, line in enumerate(lines(path), 1):
        if line.strip():
            keys.update(dict.fromkeys(str(k).strip() for k in _object(path, line, n)))
            objects += 1
            if objects >= JSON_HEADER_ROWS:
                break
    return list(keys)


def _object(path: pathlib.Path, line: str, n: int) -> dict[str, object]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}:{n}: not a JSON object")
    return obj


def split_unit(name: str) -> tuple[str, str | None]:
    """(name without its unit suffix, the unit as s|ms|us|ns or None)."""
    m = UNIT_SUFFIX.match(name.strip())
    if not m:
        return name.strip(), None
    word = m.group(2).lower()
    for unit, starts in (
        ("ms", ("ms", "milli")),
        ("us", ("us", "µs", "micro")),
        ("ns", ("ns", "nano")),
    ):
        if word.startswith(starts):
            return m.group(1), unit
    return m.group(1), "s"


def key(name: str) -> str:
    """What a column name says, for matching: lower case, letters and digits only, no unit
    suffix (`ArrivalTime`, `arrival_time` and `arrival_time_ms` are one key)."""
    return re.sub(r"[^0-9a-z]", "", split_unit(name)[0].casefold())


def pick(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    """The header's name of the first `wanted` column it has as written, else of the first
    it has by `key`: a name written as wanted wins over a better-ranked one matched only by
    its key (`datetime` over `Time`, a time of day; `latency` over `Duration`)."""
    exact = next((w for w in wanted if w in columns), None)
    if exact is not None:
        return exact
    by_key: dict[str, str] = {}
    for c in columns:
        by_key.setdefault(key(c), c)
    return next((by_key[k] for w in wanted if (k := key(w)) in by_key), None)


def is_tokens(column: str | None) -> bool:
    """Whether a work column counts tokens (an LLM's), not seconds of execution."""
    return column is not None and key(column) in {key(c) for c in TOKEN_COLUMNS}


def family_of(columns: list[str]) -> str:
    """The format family of a file from its header's columns."""
    cols = set(columns)
    if sum(1 for h in columns if MINUTE.match(h)) >= 60:
        return "per-minute-wide"
    if {"HashFunction", "Average"} <= cols and "percentile_Average_50" in cols:
        return "durations"
    if pick(columns, TIME_COLUMNS) is None and pick(columns, END_COLUMNS) is None:
        raise ValueError(
            f"no time column (one of {', '.join(TIME_COLUMNS)}; or an end time: "
            f"{', '.join(END_COLUMNS)}) in {columns[:8]}"
        )
    if pick(columns, COUNT_COLUMNS) and len(columns) <= 3:
        return "per-minute-long"
    return "requests"


def is_number(text: str) -> bool:
    """Whether a time is written as a number (of some unit), not as a date-time."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def seconds(text: str) -> float:
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


def window(days: str | None) -> tuple[float, float]:
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


def span(t: npt.NDArray[np.float64], days: str | None, last: float) -> tuple[float, float]:
    """[origin, end) in the trace's clock for the `days` window of timestamps `t`; the
    last timestamp covers `last` seconds (a request: 1 s; a per-minute count: 60 s)."""
    lo_d, hi_d = window(days)
    origin = day_start(float(t.min())) + lo_d * DAY_S
    return origin, min(origin + (hi_d - lo_d) * DAY_S, float(t.max()) + last)


def day_start(t: float) -> float:
    # Relative clocks (seconds from the trace's start) start at 0; absolute ones at the
    # whole hour before the first arrival (the time of day stays the trace's own hour).
    return 0.0 if t < 10 * 365 * DAY_S else math.floor(t / 3600.0) * 3600.0


def rows(path: pathlib.Path) -> Iterator[dict[str, str]]:
    """Each row as column -> text, CSV or JSON lines alike. A JSON row's lists and
    objects (Mooncake's hash_ids) are left out: no column here reads them."""
    if is_jsonl(path):
        for n, line in enumerate(lines(path), 1):
            if line.strip():
                obj = _object(path, line, n)
                yield {
                    str(k).strip(): "" if v is None else str(v).strip()
                    for k, v in obj.items()
                    if not isinstance(v, list | dict)
                }
        return
    # The header is the first line with something on it (as `header` reads it); fields
    # past the header's (DictReader's key None) are nobody's column: left out.
    reader = csv.DictReader(itertools.dropwhile(lambda line: not line.strip(), lines(path)))
    for row in reader:
        yield {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}


@dataclasses.dataclass
class Left:
    """Rows a loader left out for their time, counted for its note."""

    column: str
    no_time: int = 0
    not_finite: int = 0  # NaN, inf

    def words(self) -> str:
        parts = [f"{self.no_time} without a `{self.column}`"] if self.no_time else []
        if self.not_finite:
            parts.append(f"{self.not_finite} whose `{self.column}` is not a finite number")
        return f"; rows left out: {', '.join(parts)}" if parts else ""


@dataclasses.dataclass
class Counts:
    """Per-minute counts read from a file's text, for a loader's note: an empty cell is 0;
    NaN, inf or a negative count reads as 0 and is counted here; text that is not a
    number is a ValueError naming where it is."""

    odd: int = 0

    def read(
        self, path: pathlib.Path, cells: list[str], where: Callable[[int], str]
    ) -> traffic.FloatArray:
        """The cells as counts; `where(i)` names cell i for an error."""
        try:
            values = np.array([c or "0" for c in cells], dtype=np.float64)
        except ValueError:
            for i, c in enumerate(cells):
                try:
                    float(c or "0")
                except ValueError:
                    raise ValueError(f"{path}: {where(i)}: {c!r} is not a count") from None
            raise
        bad = ~np.isfinite(values) | (values < 0)
        self.odd += int(bad.sum())
        return np.where(bad, 0.0, values)

    def words(self) -> str:
        if not self.odd:
            return ""
        return f"; {self.odd} counts that were NaN, infinite or negative read as 0"


def timed(
    path: pathlib.Path, column: str, left: Left, keep: Callable[[dict[str, str]], bool]
) -> Iterator[tuple[float, dict[str, str]]]:
    """(time in the file's clock, row) of each row `keep` takes that has a finite time; the
    rows without one are counted in `left`. A time that is neither a number nor an ISO
    date-time is a ValueError naming its row (1-based, of the data rows)."""
    for n, row in enumerate(rows(path), 1):
        if not keep(row):
            continue
        text = row.get(column)
        if not text:
            left.no_time += 1
            continue
        try:
            t = seconds(text)
        except (ValueError, OverflowError):
            raise ValueError(f"{path}: `{column}` row {n}: {_not_a_time(text)}") from None
        if not math.isfinite(t):
            left.not_finite += 1
            continue
        yield t, row


def _not_a_time(text: str) -> str:
    try:
        datetime.time.fromisoformat(text)
    except ValueError:
        return f"{text!r} is neither a number nor an ISO date-time"
    return f"{text!r} is a time of day, not a date-time (a date in another column is not read)"


def peak(trs: tuple[traffic.Trace, ...]) -> float:
    if not trs:
        return 0.0
    minutes = math.ceil(max(t.duration_s for t in trs) / 60.0)
    total = np.zeros(minutes + 1)
    for tr in trs:
        pm = tr.per_minute()
        total[: len(pm)] += pm[: minutes + 1]
    return float(total.max()) / 60.0
