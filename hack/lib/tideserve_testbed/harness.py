"""tideserve's own processes as tests run them on the test bed, one copy each: `tideserve run`
(Operator) and `tideserve activator` (Activator) as real subprocesses on free loopback
ports, what tests read from them (metrics, /demand), and the requests sent through them.

Tests wait on what these report (a metric, /readyz, /demand), never on a log line; the
logs are kept only to be printed when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import httpx

from tideserve_testbed import fixtures, procs

TIDESERVE = pathlib.Path(sys.executable).parent / "tideserve"
# The reconciler alone: the loops need Prometheus and are tested on their own.
RECONCILER_ONLY = ("--without", "autoscaler", "--without", "rightsizing")


def stop_process(proc: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it is still running after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def samples(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {'name{labels}': value} (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def metric(text: str, name: str, **labels: str) -> float | None:
    """The sum of `name`'s samples whose labels include `labels`; None if there is none."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    found = [
        value
        for series, value in samples(text).items()
        if series.partition("{")[0] == name and all(w in series for w in wanted)
    ]
    return sum(found) if found else None


class Operator:
    """`tideserve run` against the test cluster, watching one namespace; metrics and
    liveness on fresh loopback ports at every start. `env` adds TIDESERVE_* variables."""

    def __init__(
        self,
        kubeconfig: pathlib.Path,
        namespace: str,
        log: pathlib.Path,
        args: tuple[str, ...] = (),
        **env: str,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log = log
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = 0
        self.metrics_port = 0

    @property
    def identity(self) -> str:
        """The holder identity it writes into a leader Lease (POD_NAME, as in the chart)."""
        return self.env.get("POD_NAME", "")

    def start(self) -> None:
        self.health_port = procs.free_port()
        self.metrics_port = procs.free_port()
        env = os.environ | {
            "KUBECONFIG": str(self.kubeconfig),
            "TIDESERVE_METRICS_PORT": str(self.metrics_port),
            "TIDESERVE_HEALTH_PORT": str(self.health_port),
            "TIDESERVE_TRITON_IMAGE": "triton:test",
        }
        cmd = [str(TIDESERVE), "run", "--bind", "127.0.0.1", "--namespace", self.namespace]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*cmd, *self.args], env=env | self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the operator is not running"
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a crash or an OOM kill."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace)

    def text(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log.read_text(errors="replace")
        return ""

    def tail(self, lines: int = 60) -> str:
        """The end of the log, for a failing test's message (never to assert on)."""
        return "\n".join(self.text().splitlines()[-lines:])

    def healthz(self) -> int:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float | None:
        return metric(self.metrics(), name, **labels)


@contextlib.contextmanager
def running(op: Operator) -> Iterator[Operator]:
    op.start()
    try:
        yield op
    finally:
        op.stop()


class Activator:
    """`tideserve activator` as a real process on loopback ports, watching `namespace`;
    each endpoint in `upstreams` (name -> Triton) is served by that Triton."""

    def __init__(
        self,
        kube: fixtures.Kube,
        namespace: str,
        upstreams: Mapping[str, fixtures.Triton],
        log: IO[bytes],
        *extra: str,
        grpc: bool = True,
        **env: str,
    ) -> None:
        self.http_port, self.control_port = procs.free_port(), procs.free_port()
        self.grpc_port = procs.free_port() if grpc else 0
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.control = f"http://127.0.0.1:{self.control_port}"
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        cmd = [
            str(TIDESERVE), "activator", "--host=127.0.0.1",
            f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
            f"--control-port={self.control_port}", f"--kubeconfig={kube.kubeconfig}",
            f"--namespace={namespace}", *extra,
        ]  # fmt: skip
        for name, server in upstreams.items():
            cmd.append(f"--upstream={namespace}/{name}={server.http_url}")
            if grpc:
                cmd.append(f"--grpc-upstream={namespace}/{name}={server.grpc_url}")
        variables = {"TIDESERVE_ACTIVATOR_UPSTREAMS": "", "TIDESERVE_LOG_LEVEL": "INFO"} | env
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ | variables
        )
        fixtures.eventually(self._ready, 30, "activator /readyz")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, "activator exited"
        return self.readyz() == 200

    def readyz(self) -> int:
        return httpx.get(f"{self.control}/readyz", timeout=2).status_code

    def demand(self) -> dict[str, dict[str, Any]]:
        body = httpx.get(f"{self.control}/demand", timeout=5).json()
        return {e["name"]: e for e in body["endpoints"]}

    def held(self, name: str) -> int:
        return int(self.demand().get(name, {}).get("held", 0))

    def wait_held(self, name: str, count: int, timeout: float = 30) -> None:
        fixtures.eventually(
            lambda: self.held(name) >= count, timeout, f"{count} requests held for {name}",
            interval=0.05,
        )  # fmt: skip

    def endpoints(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.control}/endpoints", timeout=5).json()
        return list(body["endpoints"])

    def knows(self, name: str) -> bool:
        return any(e["name"] == name for e in self.endpoints())

    def model_ready(self, name: str) -> bool:
        return any(e["name"] == name and e["modelReady"] for e in self.endpoints())

    def metrics(self) -> str:
        return httpx.get(f"{self.control}/metrics", timeout=5).text

    def terminate(self) -> None:
        """SIGTERM without waiting: the drain runs while the test watches."""
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def endpoint_at_zero(
    name: str, namespace: str, *, model: str = "tiny", max_held: int = 1000, deadline: int = 120
) -> dict[str, Any]:
    """An InferenceService that may sleep (minReplicas 0), with the activator's limits."""
    return fixtures.isvc(
        name,
        namespace,
        model={"name": model, "storageUri": f"pvc://models/{model}"},
        scaling={
            "minReplicas": 0,
            "scaleToZero": {"maxHeldRequests": max_held, "wakeDeadlineSeconds": deadline},
        },
    )


# Requests through the activator (or straight to Triton): the test model "tiny" takes
# INPUT0, FP32 [1, 2], and answers it in OUTPUT0.


def infer_body(value: float, width: int = 2) -> dict[str, Any]:
    data = [value] + [0.0] * (width - 1)
    return {"inputs": [{"name": "INPUT0", "shape": [1, width], "datatype": "FP32", "data": data}]}


def host_header(namespace: str, name: str) -> dict[str, str]:
    """How a client inside the cluster names an endpoint: its Service's host name."""
    return {"Host": f"{name}.{namespace}.svc.cluster.local"}


def endpoint_header(namespace: str, name: str) -> dict[str, str]:
    return {"X-Tideserve-Endpoint": f"{namespace}/{name}"}


async def infer(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], value: float
) -> httpx.Response:
    return await client.post(
        f"{url}/v2/models/tiny/infer", json=infer_body(value), headers=dict(headers)
    )


def output(response: httpx.Response) -> list[float]:
    assert response.status_code == 200, response.text
    data: list[float] = response.json()["outputs"][0]["data"]
    return data


@contextlib.contextmanager
def processes(
    logs: pathlib.Path, tails: bool = True
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """A starter of `tideserve <args>` processes, each logging to logs/<label>.log; on exit
    every one gets SIGTERM (SIGKILL after 15 s) and, with `tails`, the logs' tails are
    printed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(label: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        with (logs / f"{label}.log").open("wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [str(TIDESERVE), *args], stdout=log, stderr=subprocess.STDOUT,
                env=os.environ | dict(env),
            )  # fmt: skip
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in sorted(logs.glob("*.log")) if tails else ():
            print(f"--- {log.name} (tail)\n{log.read_text()[-6000:]}")
