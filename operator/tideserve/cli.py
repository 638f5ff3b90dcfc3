"""`tideserve <command>`: one entry point, each command implemented in its own module."""

from __future__ import annotations

import importlib
import sys

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
    module = importlib.import_module(COMMANDS[command][0])
    entry = getattr(module, f"main_{command}", None) or module.main
    result: int = entry(rest)
    return result


if __name__ == "__main__":
    sys.exit(main())
