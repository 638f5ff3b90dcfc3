"""The layering DESIGN.md draws, checked: pure code stays pure, only the client modules
talk to the API server, the operator never needs an extra, operator/ stays a source root."""

from __future__ import annotations

import ast
import importlib
import pathlib
import tomllib

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
    "tideserve.autoscaler.state",
    "tideserve.autoscaler.recommend",
    "tideserve.autoscaler.learned",
    "tideserve.autoscaler.learned_status",
    "tideserve.autoscaler.assemble",
    "tideserve.autoscaler.schedules",
    "tideserve.autoscaler.cron",
    "tideserve.autoscaler.demand",
    "tideserve.autoscaler.limits",
    "tideserve.autoscaler.report",
    "tideserve.autoscaler.slo",
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
    "tideserve.rightsizing.autoprofile",
    "tideserve.rightsizing.shadow",
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


# STYLE rule 7: one place talks to the API. The operator's client (tideserve/kube.py,
# shared by the controller, the autoscaler and right-sizing), the activator's watch, and
# the test bed's handle for tests (tideserve_testbed.fixtures).
KUBERNETES_CLIENTS = {"tideserve.kube", "tideserve.activator.watch"}
# One Prometheus client (tideserve.prometheus) for the autoscaler and right-sizing.
PROMETHEUS_CLIENTS = {"tideserve.prometheus"}
TESTBED = ROOT / "hack" / "lib" / "tideserve_testbed"
TESTBED_CLIENT = TESTBED / "fixtures.py"

# Libraries of the pyproject extras (bench: the simulator; probe: the profiling probe) and
# the only modules that may import them. The operator image installs neither extra.
OPTIONAL_IMPORTS = {"simpy", "matplotlib", "numpy", "tritonclient"}
OPTIONAL_HOMES = ["tideserve.sim"]


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


def module_level_imports(path: pathlib.Path) -> set[str]:
    """Imports that run when the module is imported: not those inside functions (lazy)
    nor under `if TYPE_CHECKING:`. `from a import b` yields both a and a.b (b may be a
    module)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            elif isinstance(node, ast.If | ast.Try | ast.With | ast.ClassDef):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text()).body)
    return found


def top(imported: str) -> str:
    return imported.partition(".")[0]


def within(name: str, packages: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def modules() -> list[tuple[str, pathlib.Path]]:
    return sorted((module_name(p), p) for p in PACKAGE.rglob("*.py"))


def is_pure(name: str) -> bool:
    return within(name, PURE)


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


def test_only_the_client_modules_import_the_kubernetes_client() -> None:
    offenders = [
        name
        for name, path in modules()
        if name not in KUBERNETES_CLIENTS and "kubernetes" in {top(i) for i in imports(path)}
    ]
    assert offenders == []


def test_only_the_prometheus_client_module_imports_prometheus_api_client() -> None:
    offenders = [
        name
        for name, path in modules()
        if name not in PROMETHEUS_CLIENTS
        and "prometheus_api_client" in {top(i) for i in imports(path)}
    ]
    assert offenders == []


def test_tests_reach_the_api_through_the_test_bed_not_the_kubernetes_client() -> None:
    # Tests use kubectl and the fixtures' handles (or the operator's own client module),
    # so a change in how we talk to the API server is made in one place.
    files = [*(ROOT / "tests").rglob("*.py"), *TESTBED.rglob("*.py")]
    offenders = [
        str(path.relative_to(ROOT))
        for path in files
        if path != TESTBED_CLIENT and "kubernetes" in {top(i) for i in imports(path)}
    ]
    assert offenders == []


def test_extras_libraries_are_imported_only_by_the_simulator_and_the_probe() -> None:
    offenders = [
        f"{name} imports {imported}"
        for name, path in modules()
        if not within(name, OPTIONAL_HOMES)
        for imported in imports(path)
        if top(imported) in OPTIONAL_IMPORTS
    ]
    assert offenders == []


def test_operator_code_imports_the_simulator_and_the_probe_only_lazily() -> None:
    # `tideserve run`, `activator`, `crds`, `validate`, `recommend` must import without the
    # bench extra: their module-level imports never reach tideserve.sim.
    offenders = [
        f"{name} imports {imported} at module level"
        for name, path in modules()
        if not within(name, OPTIONAL_HOMES)
        for imported in module_level_imports(path)
        if within(imported, OPTIONAL_HOMES)
    ]
    assert offenders == []


def contract_layers() -> list[list[str]]:
    """The layers of the import contract in pyproject.toml (lint-imports checks the
    imports between them), highest first, each a list of modules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in layers]


def test_every_module_sits_in_exactly_one_layer_of_the_import_contract() -> None:
    # lint-imports checks only the modules a layer names: a new module left out of the
    # contract would be checked by nothing. Docstring-only package inits are in none.
    layered = [m for layer in contract_layers() for m in layer]
    unplaced = []
    for name, path in modules():
        homes = [m for m in layered if within(name, [m])]
        if len(homes) != 1 and not (path.name == "__init__.py" and not imports(path)):
            unplaced.append(f"{name}: {homes or 'no layer'}")
    assert unplaced == []


def test_the_pure_modules_sit_below_the_client_modules() -> None:
    layers = contract_layers()
    client = next(i for i, layer in enumerate(layers) if "tideserve.kube" in layer)
    below = [m for layer in layers[client + 1 :] for m in layer]
    assert [p for p in PURE if p not in below] == []
    assert KUBERNETES_CLIENTS - {"tideserve.activator.watch"} <= set(layers[client])


def test_module_level_imports_skip_function_bodies(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import a\nfrom b import c\nif TYPE_CHECKING:\n    import d\n"
        "try:\n    import e\nexcept ImportError:\n    import f\n"
        "def g():\n    import h\n"
    )
    assert module_level_imports(source) == {"a", "b", "b.c", "e", "f"}
