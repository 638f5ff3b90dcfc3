"""The activator's limits on clients and on the upstream hop: settings, defaults, checks.

Pure: one frozen value, read once at start from flags or environment variables, each
refused with the variable (or flag) named when it is not a positive number. The chart
sets the variables (values `activator.limits.*`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Limits:
    # Request bodies are read whole before they are forwarded: a cap keeps one client from
    # filling the activator's memory. 64 MiB is what newer Triton releases accept by
    # default (--http-max-input-size), so a larger body would be refused upstream anyway.
    max_body_bytes: int = 64 * 1024 * 1024
    # From a request head's first byte to its last: a client slower than this (slowloris)
    # gets 408 and the connection closes.
    header_timeout_seconds: float = 10.0
    # Reading a request body once the request may go: 408 when it takes longer.
    body_timeout_seconds: float = 120.0
    # A keep-alive connection with no request in progress closes after this.
    idle_timeout_seconds: float = 75.0
    # From sending a request to Triton to reading its response head (Triton answers once
    # inference is done, so this bounds inference too): 504 after it. Generous by default.
    upstream_head_timeout_seconds: float = 300.0


@dataclasses.dataclass(frozen=True)
class _Setting:
    field: str
    flag: str
    env: str
    kind: type[int] | type[float]
    help: str


SETTINGS = (
    _Setting(
        "max_body_bytes",
        "--max-body-bytes",
        "TIDESERVE_ACTIVATOR_MAX_BODY_BYTES",
        int,
        "largest request body accepted; larger ones get 413",
    ),
    _Setting(
        "header_timeout_seconds",
        "--header-timeout",
        "TIDESERVE_ACTIVATOR_HEADER_TIMEOUT_SECONDS",
        float,
        "seconds a client may take to send a request head; then 408",
    ),
    _Setting(
        "body_timeout_seconds",
        "--body-timeout",
        "TIDESERVE_ACTIVATOR_BODY_TIMEOUT_SECONDS",
        float,
        "seconds a client may take to send a request body once it may go; then 408",
    ),
    _Setting(
        "idle_timeout_seconds",
        "--idle-timeout",
        "TIDESERVE_ACTIVATOR_IDLE_TIMEOUT_SECONDS",
        float,
        "seconds an idle keep-alive client connection stays open",
    ),
    _Setting(
        "upstream_head_timeout_seconds",
        "--upstream-head-timeout",
        "TIDESERVE_ACTIVATOR_UPSTREAM_HEAD_TIMEOUT_SECONDS",
        float,
        "seconds Triton may take to start its answer (inference included); then 504",
    ),
)


class SettingError(ValueError):
    """A limit that is not a positive number; the message names the flag or variable."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags, in their own help group; defaults are resolved by `resolve`."""
    group = parser.add_argument_group("limits (each also an environment variable)")
    defaults = Limits()
    for s in SETTINGS:
        group.add_argument(
            s.flag,
            dest=f"limit_{s.field}",
            default=None,
            metavar="N",
            help=f"{s.help} (env {s.env}; default {getattr(defaults, s.field):g})",
        )


def resolve(args: argparse.Namespace, env: Mapping[str, str]) -> Limits:
    """Flags first, then environment variables, then defaults; the first bad value raises
    SettingError naming where it came from."""
    values: dict[str, int | float] = {}
    for s in SETTINGS:
        flag_value = getattr(args, f"limit_{s.field}", None)
        if flag_value is not None:
            values[s.field] = parse(s, flag_value, source=s.flag)
        elif env.get(s.env, "").strip():
            values[s.field] = parse(s, env[s.env], source=s.env)
    return Limits(**values)  # type: ignore[arg-type]


def parse(setting: _Setting, raw: str, *, source: str) -> int | float:
    try:
        value = setting.kind(raw.strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        kind = "integer" if setting.kind is int else "number"
        raise SettingError(f"{source}={raw!r}: must be a positive {kind} ({setting.help})")
    return value
