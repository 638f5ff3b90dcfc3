"""Kubernetes resource quantities <-> numbers (pure; no client library needed for this)."""

from __future__ import annotations

import decimal
import math
import re

from tideserve.api import formats

MIB = 1024**2
GIB = 1024**3

# The API's quantity suffixes, and "K" read as k (lenient with numbers written by hand).
_SUFFIX: dict[str, int | decimal.Decimal] = {**formats.QUANTITY_SUFFIXES, "K": 10**3}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][-+]?[0-9]+|[a-zA-Z]*)$")


def parse(quantity: str | int | float) -> float:
    """A quantity such as "500m", "2", "1.5Gi" or "1e3" as a plain number."""
    if isinstance(quantity, int | float):
        return float(quantity)
    match = _QUANTITY.fullmatch(quantity.strip())
    if not match:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    number, suffix = match.groups()
    value = decimal.Decimal(number)
    if suffix[:1] in {"e", "E"} and suffix[1:].lstrip("+-").isdigit():
        return float(value * decimal.Decimal(10) ** int(suffix[1:]))
    if suffix not in _SUFFIX:
        raise ValueError(f"{quantity!r} has an unknown suffix {suffix!r}")
    return float(value * decimal.Decimal(_SUFFIX[suffix]))


def cpu(cores: float) -> str:
    """CPU cores as a request, rounded up to whole millicores: 0.3501 -> "351m"."""
    millis = max(1, math.ceil(round(cores * 1000, 6)))
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def memory(size_bytes: float) -> str:
    """Bytes as a request, rounded up to whole MiB: "513Mi", or "2Gi" when exact."""
    mib = max(1, math.ceil(round(size_bytes / MIB, 6)))
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"
