"""Session fixtures for integration and e2e tests: the real local test bed.

- kube: a real control plane (etcd, kube-apiserver, controller-manager, scheduler)
  with kwok GPU/CPU nodes (hack/testbed/nodes.yaml); reused if already running.
- prometheus: Debian's Prometheus scraping targets registered at runtime.
- triton: a real Triton server (CPU, model "tiny") registered with Prometheus;
  start_triton: a factory for more, stopped at the end of the test.

Nothing is mocked. Unit tests never touch these fixtures, so they stay fast.
TIDESERVE_SKIP_CLUSTER=1 skips tests that need the test bed (explicit opt-out
only: by default a missing binary or a failing start is an error, not a skip).
TIDESERVE_KEEP_CLUSTER=1 leaves what the session started running afterwards.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "hack" / "lib"))

# hack/lib is not an installed package: the path must be set before this import.
from tideserve_testbed import fixtures, harness, node

SKIP_REASON = "TIDESERVE_SKIP_CLUSTER=1: tests that need the local test bed are skipped on request"
NO_REAL_NODE = "TIDESERVE_REAL_NODE=0: this test bed has no real node"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_node: needs the test bed's real node (node.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked real_node are skipped, saying why, on a test bed started without one;
    otherwise a missing real node is an error like any other missing part."""
    if node.enabled():
        return
    for item in items:
        if item.get_closest_marker("real_node"):
            item.add_marker(pytest.mark.skip(reason=NO_REAL_NODE))


def _skip_if_requested() -> None:
    if os.environ.get("TIDESERVE_SKIP_CLUSTER") == "1":
        pytest.skip(SKIP_REASON)


@pytest.fixture(scope="session")
def testbed() -> Iterator[fixtures.Session]:
    _skip_if_requested()
    with fixtures.Session() as session:
        saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "TIDESERVE_PROMETHEUS_URL")}
        # Subprocesses a test starts (the operator, helm, kubectl) find the cluster.
        os.environ["KUBECONFIG"] = str(session.kube().kubeconfig)
        os.environ["TIDESERVE_PROMETHEUS_URL"] = session.prometheus().url
        try:
            yield session
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="session")
def kube(testbed: fixtures.Session) -> fixtures.Kube:
    """The cluster: .kubeconfig, .kubectl(...), .get_json(...), .apply(...), .api_client()."""
    return testbed.kube()


@pytest.fixture
def namespace(kube: fixtures.Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test with the CRDs installed, named after the test module.
    A module's own `namespace` fixture overrides this one; for a module-scoped one:
    `with fixtures.crd_namespace(kube, prefix) as name: yield name`."""
    prefix = request.module.__name__.rpartition(".")[2].removeprefix("test_")[:20]
    with fixtures.crd_namespace(kube, prefix.replace("_", "-")) as name:
        yield name


@pytest.fixture(scope="session")
def prometheus(testbed: fixtures.Session) -> fixtures.Prometheus:
    """Prometheus: .url, .register(id, host:port, namespace=, name=, pod=), .query(promql)."""
    return testbed.prometheus()


@pytest.fixture(scope="session")
def triton(prometheus: fixtures.Prometheus) -> Iterator[fixtures.Triton]:
    """A real Triton serving model "tiny", scraped by Prometheus with labels
    namespace=tideserve-e2e, name=tiny, pod=tiny-<pid>-0."""
    name = f"pytest-{os.getpid()}"
    labels = {"namespace": "tideserve-e2e", "name": "tiny", "pod": f"tiny-{os.getpid()}-0"}
    server = fixtures.start_triton(name, labels=labels)
    try:
        yield server
    finally:
        fixtures.stop_triton(name)


@pytest.fixture
def start_triton(
    prometheus: fixtures.Prometheus, request: pytest.FixtureRequest
) -> Iterator[Callable[..., fixtures.Triton]]:
    """Factory: start_triton(labels={"namespace":..,"name":..,"pod":..}, delay_ms=..,
    http_port=.., grpc_port=.., metrics_port=..) -> Triton. Labels (optional) register
    it with Prometheus; delay_ms is the model's time per batch. Stopped after the test."""
    started: list[str] = []

    def start(labels: dict[str, str] | None = None, **options: int | None) -> fixtures.Triton:
        name = f"pytest-{os.getpid()}-{request.node.name[:40]}-{len(started)}"
        name = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
        started.append(name)
        return fixtures.start_triton(name, labels, **options)

    try:
        yield start
    finally:
        for name in started:
            fixtures.stop_triton(name)


@pytest.fixture
def processes(
    tmp_path: pathlib.Path,
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """processes(label, args, env): `tideserve <args>` as a real process, logging to
    tmp_path/<label>.log; stopped (SIGTERM, then SIGKILL) at the end of the test."""
    with harness.processes(tmp_path) as start:
        yield start
