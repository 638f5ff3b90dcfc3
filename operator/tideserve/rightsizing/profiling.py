"""A short profiling run: a load probe against one replica on one option.

Closed-loop load at rising concurrency (1, 2, 4, ...): at each level every worker sends
its next request as soon as the last one returns, for `seconds`. The option's profile is
the highest throughput whose p99 latency still meets the target (or the highest seen when
there is no target), and the p99 there. Inputs are zeros shaped from the model's own
metadata, so any model with fixed or variable-size inputs can be probed. Requests use
Triton's HTTP/REST protocol with its binary tensor extension (what tritonclient sends),
spoken with httpx, the operator's own HTTP client: the shipped image can probe, no extra.
The result, as JSON, is what the `serving.tideserve.io/measured-profiles` annotation holds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from tideserve.rightsizing import accelerators

# Bytes per element of Triton's fixed-size datatypes (BYTES is length-prefixed).
DATATYPE_BYTES = {
    "BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2,
    "UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8,
}  # fmt: skip
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclasses.dataclass(frozen=True)
class Request:
    """One inference request of zeros, ready to send again and again."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass(frozen=True)
class Level:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def p99(latencies_ms: Sequence[float]) -> float:
    if not latencies_ms:
        return math.inf
    ordered = sorted(latencies_ms)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def summarize(
    option: str, levels: Sequence[Level], latency_target_ms: float | None
) -> accelerators.Profile | None:
    """The best level within the target (pure): its throughput and p99 are the profile."""
    good = [
        lv
        for lv in levels
        if lv.requests > 0
        and lv.errors == 0
        and (latency_target_ms is None or lv.p99_ms <= latency_target_ms)
    ]
    if not good:
        return None
    best = max(good, key=lambda lv: lv.rps)
    return accelerators.profile_on(
        option, round(best.rps, 3), round(best.p99_ms, 3), accelerators.Source.MEASURED
    )


def zeros(datatype: str, shape: Sequence[int]) -> bytes:
    """A tensor of zeros in Triton's binary encoding (BYTES: each element b"0", with its
    4-byte little-endian length before it)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return ((1).to_bytes(4, "little") + b"0") * count
    if datatype not in DATATYPE_BYTES:
        raise ValueError(f"datatype {datatype!r} cannot be probed")
    return bytes(DATATYPE_BYTES[datatype] * count)


def request_of(model: str, metadata: dict[str, Any], config: dict[str, Any]) -> Request:
    """The request of zeros shaped from the model's metadata and config (pure)."""
    batched = int(config.get("max_batch_size", 0)) > 0
    inputs, blobs = [], []
    for spec in metadata["inputs"]:
        shape = [int(d) for d in spec["shape"]]
        # Metadata includes the batch dimension (-1) when the model batches.
        shape = [1 if d < 0 else d for d in shape]
        if batched and (not shape or shape[0] != 1):
            shape = [1, *shape]
        blob = zeros(spec["datatype"], shape)
        blobs.append(blob)
        inputs.append(
            {
                "name": spec["name"],
                "shape": shape,
                "datatype": spec["datatype"],
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    body = {"inputs": inputs, "parameters": {"binary_data_output": True}}
    header = json.dumps(body, separators=(",", ":")).encode()
    return Request(
        f"/v2/models/{model}/infer",
        {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))},
        header + b"".join(blobs),
    )


def _request(client: httpx.Client, model: str) -> Request:
    metadata = client.get(f"/v2/models/{model}")
    metadata.raise_for_status()
    config = client.get(f"/v2/models/{model}/config")
    config.raise_for_status()
    return request_of(model, metadata.json(), config.json())


def _level(address: str, model: str, concurrency: int, seconds: float) -> Level:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        # A pod IP: no proxy from the environment; a slow model may take a while per
        # request (tritonclient's read timeout was 60 s too).
        timeout = httpx.Timeout(60.0, connect=10.0)
        with httpx.Client(base_url=f"http://{address}", timeout=timeout, trust_env=False) as client:
            try:
                request = _request(client, model)
            except (httpx.HTTPError, ValueError, KeyError):  # no metadata: nothing to send
                with lock:
                    errors[0] += 1
                return
            mine = []
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    answer = client.post(
                        request.path, headers=request.headers, content=request.body
                    )
                except httpx.HTTPError:
                    answer = None
                if answer is None or answer.status_code != 200:
                    with lock:
                        errors[0] += 1
                    continue
                mine.append((time.perf_counter() - start) * 1000)
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    elapsed = max(time.monotonic() - began, 1e-9)
    return Level(concurrency, len(latencies), errors[0], elapsed, p99(latencies))


def probe(
    address: str,
    model: str,
    option: str,
    latency_target_ms: float | None = None,
    concurrency: Sequence[int] = (1, 2, 4, 8),
    seconds: float = 5.0,
) -> tuple[accelerators.Profile | None, list[Level]]:
    """Profile `model` on the Triton at `address` (host:port, HTTP), running on `option`.

    Stops early once a level breaks the latency target or adds less than 5% throughput:
    the knee has been passed.
    """
    levels: list[Level] = []
    for c in concurrency:
        level = _level(address, model, c, seconds)
        levels.append(level)
        if latency_target_ms is not None and level.p99_ms > latency_target_ms:
            break
        if len(levels) > 1 and level.rps < levels[-2].rps * 1.05:
            break
    return summarize(option, levels, latency_target_ms), levels


def annotation(profiles: Sequence[accelerators.Profile]) -> list[dict[str, Any]]:
    """Profiles as the measured-profiles annotation's JSON list."""
    return [
        {"option": p.option, "maxRequestsPerSecond": p.max_rps, "p99LatencyMs": p.p99_latency_ms}
        for p in profiles
    ]
