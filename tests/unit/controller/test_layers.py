"""The controller's layering: handlers -> reconcile -> render/status/checks; one client module."""

from __future__ import annotations

import ast
import pathlib

import pytest

pytestmark = pytest.mark.unit

CONTROLLER = pathlib.Path(__file__).resolve().parents[3] / "operator" / "tideserve" / "controller"


def imported(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
            if node.module == "tideserve.controller":
                names |= {f"controller.{a.name}" for a in node.names}
            if node.module == "tideserve":
                names |= {a.name for a in node.names}
    return names


def test_the_controller_reaches_the_api_only_through_the_shared_client_module() -> None:
    users = sorted(p.name for p in CONTROLLER.glob("*.py") if "kubernetes" in imported(p))
    assert users == []


@pytest.mark.parametrize(
    "pure", ["status.py", "checks.py", "routes.py", "drift.py", "leader_rules.py"]
)
def test_status_checks_and_routes_are_pure(pure: str) -> None:
    names = imported(CONTROLLER / pure)
    assert not names & {"kopf", "kubernetes", "kube", "asyncio", "threading"}


def test_nothing_below_the_handlers_imports_them() -> None:
    for path in CONTROLLER.glob("*.py"):
        if path.name not in {"handlers.py", "main.py"}:
            assert "controller.handlers" not in imported(path), path.name
