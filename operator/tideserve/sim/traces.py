"""Loaders for public trace files, so a user can replay a real trace.

- Azure Functions 2019 (`invocations_per_function_md.anon.d01.csv`): HashOwner, HashApp,
  HashFunction, Trigger, then columns 1..1440 with invocations per minute. Arrivals are
  spread uniformly (seeded) inside each minute.
- Azure LLM inference 2023/2024: TIMESTAMP, ContextTokens, GeneratedTokens.
- BurstGPT: Timestamp, Model, Request tokens, Response tokens, Total tokens, Log Type.
For the LLM traces a request's work is its generated-token count over the mean.
"""

from __future__ import annotations

import csv
import datetime
import pathlib

import numpy as np

from tideserve.sim import traffic


def _open(path: pathlib.Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]


def azure_functions(path: pathlib.Path, seed: int, function: str | None = None) -> traffic.Trace:
    """One function's day (the busiest unless `function` names a HashFunction or row)."""
    rows = _open(path)
    if not rows:
        raise ValueError(f"{path}: no rows")
    minutes = [str(m) for m in range(1, 1441) if str(m) in rows[0]]
    if not minutes:
        raise ValueError(f"{path}: no per-minute columns 1..1440")

    def counts(row: dict[str, str]) -> list[int]:
        return [int(float(row[m] or 0)) for m in minutes]

    if function is None:
        row = max(rows, key=lambda r: sum(counts(r)))
    elif function.isdigit():
        row = rows[int(function)]
    else:
        matches = [r for r in rows if r.get("HashFunction") == function]
        if not matches:
            raise ValueError(f"{path}: no HashFunction {function}")
        row = matches[0]
    per_minute = np.array(counts(row), dtype=np.int64)
    rng = np.random.default_rng(seed)
    starts = np.repeat(np.arange(len(per_minute), dtype=np.float64) * 60.0, per_minute)
    arrivals = np.sort(starts + rng.random(len(starts)) * 60.0)
    name = f"azure-functions:{row.get('HashFunction', '?')[:8]}"
    return traffic.Trace(name, arrivals, len(per_minute) * 60.0)


def _parse_time(text: str) -> float:
    # Azure writes 7 fractional digits ("2023-11-16 18:15:46.6805900"); Python takes 6.
    head, _, frac = text.partition(".")
    stamp = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC)
    return stamp.timestamp() + (float("0." + frac) if frac else 0.0)


def _token_trace(name: str, times: list[float], tokens: list[float]) -> traffic.Trace:
    if not times:
        raise ValueError(f"{name}: no rows")
    order = np.argsort(np.array(times), kind="stable")
    t = np.array(times)[order]
    t = t - t[0]
    tok = np.array(tokens, dtype=np.float64)[order]
    mean = float(tok.mean()) if tok.size and tok.mean() > 0 else 1.0
    work = np.clip(tok / mean, 0.05, 8.0)
    return traffic.Trace(name, t, float(t[-1]) + 1.0, work)


def azure_llm(path: pathlib.Path) -> traffic.Trace:
    rows = _open(path)
    times = [_parse_time(r["TIMESTAMP"]) for r in rows]
    tokens = [float(r["GeneratedTokens"]) for r in rows]
    return _token_trace(f"azure-llm:{path.stem}", times, tokens)


def burstgpt(path: pathlib.Path, model: str | None = None) -> traffic.Trace:
    rows = _open(path)
    if model is not None:
        rows = [r for r in rows if r.get("Model") == model]
    times = [float(r["Timestamp"]) for r in rows]
    tokens = [float(r["Response tokens"]) for r in rows]
    return _token_trace(f"burstgpt:{path.stem}", times, tokens)


def load(spec: str, seed: int) -> traffic.Trace:
    """`kind:path[:selector]` with kind azure-functions | azure-llm | burstgpt."""
    kind, _, rest = spec.partition(":")
    path_text, _, selector = rest.partition("::")
    path = pathlib.Path(path_text)
    if kind == "azure-functions":
        return azure_functions(path, seed, selector or None)
    if kind == "azure-llm":
        return azure_llm(path)
    if kind == "burstgpt":
        return burstgpt(path, selector or None)
    raise ValueError(f"unknown trace kind {kind!r} (azure-functions, azure-llm, burstgpt)")
