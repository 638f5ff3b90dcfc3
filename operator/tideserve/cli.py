"""`tideserve <command>`: one entry point, each command implemented in its own module."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType

import tideserve

# command -> (module, one-line help). Modules are imported only when their command runs,
# so `tideserve crds` does not pay for kopf, and `tideserve bench` not for the client.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("tideserve.controller.main", "run the operator (kopf) against the current kubeconfig"),
    "activator": ("tideserve.activator.server", "run the activator (request buffer at zero)"),
    "crds": ("tideserve.api.commands", "generate crds/ from the API models (--check to verify)"),
    "validate": ("tideserve.api.commands", "validate InferenceService manifests offline"),
    "bench": ("tideserve.sim.bench", "replay traffic through the autoscaling policies"),
    "recommend": ("tideserve.rightsizing.commands", "print right-sizing recommendations"),
}

# Optional dependencies (pyproject extras): command -> (extra, top-level modules it installs).
# `tideserve bench` needs the simulator's libraries; the operator image does not install them.
EXTRAS: dict[str, tuple[str, frozenset[str]]] = {
    "bench": ("bench", frozenset({"simpy", "matplotlib", "numpy"})),
}


def missing_extra(command: str, exc: ImportError) -> str | None:
    """One line naming the extra to install when `exc` is a missing optional dependency of
    `command`; None for any other import failure (a real bug keeps its traceback)."""
    extra, provided = EXTRAS.get(command, ("", frozenset()))
    missing = (exc.name or "").partition(".")[0]
    if missing not in provided:
        return None
    return (
        f"tideserve {command}: {missing} is not installed; "
        f"it comes with the {extra!r} extra: pip install 'tideserve[{extra}]'"
    )


def usage() -> str:
    lines = ["usage: tideserve <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run `tideserve <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    if args[0] in {"--version", "version"}:
        print(tideserve.__version__)
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"tideserve: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return dispatch(command, rest)


def dispatch(
    command: str,
    rest: list[str],
    load: Callable[[str], ModuleType] = importlib.import_module,
) -> int:
    """Import the command's module and call its entry point."""
    try:
        module = load(COMMANDS[command][0])
        entry = getattr(module, f"main_{command}", None) or module.main
        result: int = entry(rest)
    except ImportError as exc:
        hint = missing_extra(command, exc)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
