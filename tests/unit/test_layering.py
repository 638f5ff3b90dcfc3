"""The layering DESIGN.md draws, checked: pure code stays pure, operator/ stays a source root."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "tideserve"

# Modules that decide. They take plain data and return plain data: no client libraries,
# no processes, no sockets. The simulator and the unit tests call them as they are.
PURE = [
    "tideserve.api",
    "tideserve.render",
    "tideserve.autoscaler.policy",
    "tideserve.autoscaler.assemble",
    "tideserve.autoscaler.schedules",
    "tideserve.autoscaler.cron",
    "tideserve.autoscaler.demand",
    "tideserve.autoscaler.limits",
    "tideserve.autoscaler.report",
    "tideserve.activator.queueing",
    "tideserve.activator.routing",
    "tideserve.rightsizing.recommender",
    "tideserve.rightsizing.histograms",
    "tideserve.rightsizing.accelerators",
    "tideserve.rightsizing.advisor",
    "tideserve.rightsizing.effective",
    "tideserve.rightsizing.fit",
    "tideserve.rightsizing.catalog",
    "tideserve.rightsizing.quantities",
    "tideserve.sim",
]
IMPURE_IMPORTS = {
    "kubernetes",
    "kopf",
    "httpx",
    "aiohttp",
    "prometheus_api_client",
    "tritonclient",
    "requests",
    "subprocess",
    "socket",
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT / "operator").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> list[tuple[str, pathlib.Path]]:
    return sorted((module_name(p), p) for p in PACKAGE.rglob("*.py"))


def is_pure(name: str) -> bool:
    return any(name == pure or name.startswith(pure + ".") for pure in PURE)


def test_pure_modules_import_no_client_or_process_libraries() -> None:
    offenders = [
        f"{name} imports {top}"
        for name, path in modules()
        if is_pure(name)
        for imported in imports(path)
        if (top := imported.split(".")[0]) in IMPURE_IMPORTS
    ]
    assert offenders == []


def test_operator_folder_is_only_a_source_root() -> None:
    # An operator/__init__.py would make `import operator` pick up our folder instead
    # of the standard library's module whenever the repository root is on sys.path.
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_stdlib_operator_module_still_works_beside_tideserve() -> None:
    importlib.import_module("tideserve.cli")
    stdlib_operator = importlib.import_module("operator")
    assert stdlib_operator.add(2, 3) == 5
    assert "site-packages" not in (stdlib_operator.__file__ or "")
    assert not (stdlib_operator.__file__ or "").startswith(str(ROOT / "operator"))
