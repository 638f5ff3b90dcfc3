"""The activator's limits on clients and on the upstream hop: one frozen value.

Its defaults and the environment variables behind them are the activator's settings
(tideserve.settings.ActivatorSettings, one loader for every process, a bad variable
named); this module adds the command-line flags, which win over the variables, each
refused with the flag named when it is not a positive number. The chart sets the
variables (values `activator.limits.*`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from tideserve import settings as settings_mod


@dataclasses.dataclass(frozen=True)
class Limits:
    # Request bodies are read whole before they are forwarded: a cap keeps one client from
    # filling the activator's memory. 64 MiB is what newer Triton releases accept by
    # default (--http-max-input-size), so a larger body would be refused upstream anyway.
    max_body_bytes: int
    # From a request head's first byte to its last: a client slower than this (slowloris)
    # gets 408 and the connection closes.
    header_timeout_seconds: float
    # Reading a request body once the request may go: 408 when it takes longer.
    body_timeout_seconds: float
    # A keep-alive connection with no request in progress closes after this.
    idle_timeout_seconds: float
    # From sending a request to Triton to reading its response head (Triton answers once
    # inference is done, so this bounds inference too): 504 after it. Generous by default.
    upstream_head_timeout_seconds: float

    @classmethod
    def of(cls, settings: settings_mod.ActivatorSettings) -> Limits:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


def defaults() -> Limits:
    return Limits.of(settings_mod.ActivatorSettings())


@dataclasses.dataclass(frozen=True)
class _Setting:
    field: str
    flag: str
    kind: type[int] | type[float]
    help: str

    @property
    def env(self) -> str:
        return settings_mod.ACTIVATOR_ENV[self.field]


SETTINGS = (
    _Setting("max_body_bytes", "--max-body-bytes", int,
             "largest request body accepted; larger ones get 413"),
    _Setting("header_timeout_seconds", "--header-timeout", float,
             "seconds a client may take to send a request head; then 408"),
    _Setting("body_timeout_seconds", "--body-timeout", float,
             "seconds a client may take to send a request body once it may go; then 408"),
    _Setting("idle_timeout_seconds", "--idle-timeout", float,
             "seconds an idle keep-alive client connection stays open"),
    _Setting("upstream_head_timeout_seconds", "--upstream-head-timeout", float,
             "seconds Triton may take to start its answer (inference included); then 504"),
)  # fmt: skip


class SettingError(ValueError):
    """A limit flag that is not a positive number; the message names the flag."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags, in their own help group; defaults are resolved by `resolve`."""
    group = parser.add_argument_group("limits (each also an environment variable)")
    default = defaults()
    for s in SETTINGS:
        group.add_argument(
            s.flag,
            dest=f"limit_{s.field}",
            default=None,
            metavar="N",
            help=f"{s.help} (env {s.env}; default {getattr(default, s.field):g})",
        )


def resolve(args: argparse.Namespace, settings: settings_mod.ActivatorSettings) -> Limits:
    """Flags first, then the settings (environment variables or defaults); the first bad
    flag raises SettingError naming it."""
    values = {
        s.field: parse(s, flag, source=s.flag)
        for s in SETTINGS
        if (flag := getattr(args, f"limit_{s.field}", None)) is not None
    }
    return dataclasses.replace(Limits.of(settings), **values)  # type: ignore[arg-type]


def parse(setting: _Setting, raw: str, *, source: str) -> int | float:
    try:
        value = setting.kind(raw.strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        kind = "integer" if setting.kind is int else "number"
        raise SettingError(f"{source}={raw!r}: must be a positive {kind} ({setting.help})")
    return value
