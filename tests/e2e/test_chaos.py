"""Chaos on the real components: the operator SIGKILLed mid-reconcile and mid-scale, the
API server and etcd SIGKILLed and restarted under load, Prometheus answering garbage, the
activator killed (SIGKILL, then SIGTERM) while holding requests.

After each fault the test counts, from the API server's objects (tideserve_testbed.chaos):
duplicate children, orphaned children, and spec.replicas written by anyone but the
autoscaler (managedFields); for the activator, held requests that never got their answer.
Each must be 0. Rows go to TIDESERVE_CHAOS_REPORT for `hack/chaos`'s table.

Opt-in (TIDESERVE_CHAOS=1, set by hack/chaos): the API server test kills the test bed's
control plane, which must not happen under another session's feet.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import pathlib
import random
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tideserve_testbed import chaos, cli, controlplane, fixtures, procs

from tideserve.api import resource

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("TIDESERVE_CHAOS") != "1",
        reason="chaos restarts the test bed's control plane: run hack/chaos (TIDESERVE_CHAOS=1)",
    ),
]

TIDESERVE = str(pathlib.Path(sys.executable).parent / "tideserve")
ISVC = f"{resource.PLURAL}.{resource.GROUP}"
ENDPOINTS = int(os.environ.get("TIDESERVE_CHAOS_ENDPOINTS", "30"))
TIMEOUT = 240.0


class Operator:
    """`tideserve run` (reconciler + autoscaler at a 1 s tick) for one namespace."""

    def __init__(self, kube: fixtures.Kube, namespace: str, log: pathlib.Path, prom: str) -> None:
        self.kube, self.namespace, self.log, self.prometheus = kube, namespace, log, prom
        self.proc: subprocess.Popen[bytes] | None = None
        self.crashes = 0  # exits nobody asked for

    def start(self) -> None:
        env = os.environ | {
            "KUBECONFIG": str(self.kube.kubeconfig),
            "TIDESERVE_METRICS_PORT": str(fixtures.free_port()),
            "TIDESERVE_HEALTH_PORT": str(fixtures.free_port()),
            "TIDESERVE_TRITON_IMAGE": "triton:test",
            "TIDESERVE_TICK_SECONDS": "1",
            "TIDESERVE_PROMETHEUS_URL": self.prometheus,
            "TIDESERVE_ACTIVATOR_URL": f"http://127.0.0.1:{fixtures.free_port()}",
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    TIDESERVE,
                    "run",
                    "--bind",
                    "127.0.0.1",
                    "-n",
                    self.namespace,
                    "--without",
                    "rightsizing",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            self.crashes += 1
            self.start()  # as the Deployment would: count it and carry on
            return False
        return True

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "operator not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def chaos_ns(kube: fixtures.Kube) -> Iterator[str]:
    with fixtures.crd_namespace(kube, "chaos") as name:
        yield name


@pytest.fixture
def operator(
    kube: fixtures.Kube, chaos_ns: str, prometheus: fixtures.Prometheus, tmp_path: pathlib.Path
) -> Iterator[Callable[..., Operator]]:
    started: list[Operator] = []

    def make(prometheus_url: str = prometheus.url) -> Operator:
        op = Operator(kube, chaos_ns, tmp_path / f"operator-{len(started)}.log", prometheus_url)
        started.append(op)
        return op

    try:
        yield make
    finally:
        for op in started:
            op.stop()
            sys.stderr.write(op.log.read_text(errors="replace")[-3000:])


def endpoints(kube: fixtures.Kube, ns: str, names: list[str], min_replicas: int) -> None:
    scaling = {"minReplicas": min_replicas, "maxReplicas": 4}
    # A tenth of a core and 256Mi each: every replica of every test fits the two kwok CPU nodes
    # (a pod left Pending for capacity is the scheduler's answer, not a fault of ours).
    kube.apply(
        [
            fixtures.isvc(
                n,
                ns,
                resources={"accelerator": "cpu", "cpu": "100m", "memory": "256Mi"},
                scaling=scaling,
            )
            for n in names
        ]
    )


def ready(kube: fixtures.Kube, ns: str) -> set[str]:
    out = set()
    for obj in kube.get_json(ISVC, "-n", ns)["items"]:
        status = obj.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if conditions.get("Ready") == "True" and status.get("observedGeneration") == obj[
            "metadata"
        ].get("generation"):
            out.add(obj["metadata"]["name"])
    return out


def predictors(kube: fixtures.Kube, ns: str) -> dict[str, tuple[int, int]]:
    """Deployment name -> (spec.replicas, status.readyReplicas)."""
    return fixtures.deployment_replicas(kube, ns, chaos.MANAGED)


def kill_on_first(
    kube: fixtures.Kube, ns: str, op: Operator, hit: Callable[[int], bool]
) -> threading.Thread:
    """SIGKILL the operator the moment a watch shows a predictor Deployment whose replicas
    satisfy `hit` (polling lagged so far that the operator had often finished). Started
    before the change it waits for."""
    watching = threading.Event()

    def run() -> None:
        events = fixtures.watch_deployment_replicas(kube, ns, chaos.MANAGED, TIMEOUT)
        watching.set()
        for _, replicas in events:
            if hit(replicas):
                op.kill()
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    watching.wait(10)
    return thread


def settle(
    what: str, check: Callable[[], bool], op: Operator, show: Callable[[], object] = lambda: None
) -> float:
    started = time.monotonic()
    try:
        fixtures.eventually(lambda: op.alive() and check(), TIMEOUT, what, interval=0.5)
    except AssertionError as error:
        raise AssertionError(f"{error}\nstate: {show()}") from None
    return time.monotonic() - started


def assert_zeros(census: chaos.Census) -> None:
    assert census.duplicates == [], census
    assert census.orphans == [], census
    assert census.other_replica_writers == [], census


# ---- the operator SIGKILLed ---------------------------------------------------------------


def test_operator_sigkilled_mid_reconcile(
    kube: fixtures.Kube, chaos_ns: str, operator: Callable[..., Operator]
) -> None:
    names = [f"rec{i}" for i in range(ENDPOINTS)]
    endpoints(kube, chaos_ns, names, 1)
    op = operator()
    # Kill at the first Deployment: the reconciler is mid-way through the others.
    killer = kill_on_first(kube, chaos_ns, op, lambda _: True)
    op.start()
    killer.join(TIMEOUT)
    at_kill = len(predictors(kube, chaos_ns))
    op.start()
    seconds = settle("all Ready", lambda: ready(kube, chaos_ns) == set(names), op)
    census = chaos.take(kube, chaos_ns)
    chaos.record(
        "operator SIGKILL mid-reconcile",
        census,
        killed_at=f"{at_kill}/{len(names)}",
        recovered_seconds=round(seconds, 1),
        operator_crashes=op.crashes,
    )
    assert_zeros(census)
    assert census.children >= 4 * len(names)


def test_operator_sigkilled_mid_scale(
    kube: fixtures.Kube, chaos_ns: str, operator: Callable[..., Operator]
) -> None:
    names = [f"scl{i}" for i in range(ENDPOINTS)]
    endpoints(kube, chaos_ns, names, 1)
    op = operator()
    op.start()
    settle("all Ready", lambda: ready(kube, chaos_ns) == set(names), op)
    # Kill at the first Deployment scaled to 3: the autoscaler is mid-way through the rest.
    killer = kill_on_first(kube, chaos_ns, op, lambda replicas: replicas == 3)
    endpoints(kube, chaos_ns, names, 3)  # the autoscaler now scales every one to 3
    killer.join(TIMEOUT)
    at_kill = sum(spec == 3 for spec, _ in predictors(kube, chaos_ns).values())
    op.start()
    seconds = settle(
        "all at 3 ready replicas",
        lambda: (
            set(predictors(kube, chaos_ns).values()) == {(3, 3)}
            and ready(kube, chaos_ns) == set(names)
        ),
        op,
        lambda: (predictors(kube, chaos_ns), sorted(set(names) - ready(kube, chaos_ns))),
    )
    census = chaos.take(kube, chaos_ns)
    chaos.record(
        "operator SIGKILL mid-scale",
        census,
        killed_at=f"{at_kill}/{len(names)}",
        recovered_seconds=round(seconds, 1),
        operator_crashes=op.crashes,
    )
    assert_zeros(census)
    # managedFields shows the autoscaler's writes, and would show anyone else's: a
    # kubectl scale is counted at once (the autoscaler then sets 3 again).
    assert census.autoscaler_writes > 0
    kube.kubectl("scale", "-n", chaos_ns, "deployment", f"{names[0]}-predictor", "--replicas=4")
    assert chaos.take(kube, chaos_ns).other_replica_writers != []


# ---- the API server and etcd ----------------------------------------------------------------


def restart_control_plane_store() -> float:
    """SIGKILL etcd and kube-apiserver, start them again (same data, ports, certificates);
    the controller-manager, scheduler and kwok ride it out as they would in a cluster."""
    d = procs.state_dir()
    with procs.locked():
        state = cli.state()
        comps = state["components"]
        for name in ("kube-apiserver", "etcd"):
            os.kill(int(comps[name]["pid"]), signal.SIGKILL)
        fixtures.eventually(
            lambda: not any(procs.alive(comps[n]) for n in ("kube-apiserver", "etcd")),
            30,
            "etcd and kube-apiserver gone",
            interval=0.1,
        )
        started = time.monotonic()
        controlplane.up(d, state)
        return time.monotonic() - started


def test_api_server_and_etcd_restarted_under_load(
    kube: fixtures.Kube, chaos_ns: str, operator: Callable[..., Operator]
) -> None:
    first = [f"api{i}" for i in range(ENDPOINTS)]
    endpoints(kube, chaos_ns, first, 1)
    op = operator()
    op.start()
    settle("first batch Ready", lambda: ready(kube, chaos_ns) == set(first), op)
    # Load: a second batch to create and the first to scale, then the store goes away.
    second = [f"apb{i}" for i in range(ENDPOINTS)]
    endpoints(kube, chaos_ns, second, 1)
    endpoints(kube, chaos_ns, first, 2)
    outage = restart_control_plane_store()
    want = {f"{n}-predictor": (2, 2) for n in first} | {f"{n}-predictor": (1, 1) for n in second}
    seconds = settle(
        "both batches Ready at their replicas",
        lambda: predictors(kube, chaos_ns) == want and ready(kube, chaos_ns) == {*first, *second},
        op,
        lambda: (predictors(kube, chaos_ns), sorted({*first, *second} - ready(kube, chaos_ns))),
    )
    census = chaos.take(kube, chaos_ns)
    chaos.record(
        "API server + etcd SIGKILL, restart under load",
        census,
        outage_seconds=round(outage, 1),
        recovered_seconds=round(seconds, 1),
        operator_crashes=op.crashes,
    )
    assert_zeros(census)


# ---- Prometheus answering garbage ----------------------------------------------------------

GARBAGE: list[tuple[int, str, bytes]] = [
    (200, "application/json", b'{"status": "success", "data": {"resultType": "vector", "resu'),
    (200, "application/json", b'{"status": "success", "data": {"resultType": "matrix"}}'),
    (200, "application/json", b'{"status": "success", "data": {"result": [{"metric": 7}]}}'),
    (
        200,
        "application/json",
        b'{"status":"success","data":{"resultType":"vector","result":'
        b'[{"metric":{"namespace":1},"value":[0,"abc"]}]}}',
    ),
    (200, "text/html", b"<html><body>502 Bad Gateway</body></html>"),
    (200, "application/json", b"null"),
    (500, "application/json", b'{"status": "error", "error": "boom"}'),
    (200, "application/octet-stream", bytes(random.Random(7).randrange(256) for _ in range(512))),
]


class GarbageProm(http.server.BaseHTTPRequestHandler):
    served = 0

    def _answer(self) -> None:
        status, kind, body = GARBAGE[GarbageProm.served % len(GARBAGE)]
        GarbageProm.served += 1
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def garbage_prometheus() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), GarbageProm)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_answering_garbage(
    kube: fixtures.Kube,
    chaos_ns: str,
    operator: Callable[..., Operator],
    garbage_prometheus: str,
) -> None:
    """The autoscaler holds (MetricsAvailable False), nothing crashes, and a floor the
    spec raises is still applied: bad signals cost the queue-driven decisions only."""
    names = [f"gar{i}" for i in range(ENDPOINTS)]
    endpoints(kube, chaos_ns, names, 1)
    op = operator(garbage_prometheus)
    op.start()
    settle("all Ready", lambda: ready(kube, chaos_ns) == set(names), op)
    start = GarbageProm.served
    # Every kind of garbage at least 5 times over.
    settle("garbage served", lambda: GarbageProm.served - start >= 5 * len(GARBAGE), op)

    def metrics_unavailable() -> set[str]:
        out = set()
        for obj in kube.get_json(ISVC, "-n", chaos_ns)["items"]:
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c["type"] == "MetricsAvailable" and c["status"] == "False":
                    out.add(obj["metadata"]["name"])
        return out

    settle("MetricsAvailable False everywhere", lambda: metrics_unavailable() == set(names), op)
    held = predictors(kube, chaos_ns)
    endpoints(kube, chaos_ns, names, 2)
    seconds = settle(
        "the raised floor applied",
        lambda: set(predictors(kube, chaos_ns).values()) == {(2, 2)},
        op,
    )
    census = chaos.take(kube, chaos_ns)
    chaos.record(
        "Prometheus answers garbage",
        census,
        garbage_answers=GarbageProm.served - start,
        recovered_seconds=round(seconds, 1),
        operator_crashes=op.crashes,
    )
    assert set(held.values()) == {(1, 1)}  # held, not scaled on garbage
    assert op.crashes == 0
    assert_zeros(census)


# ---- the activator killed while holding -----------------------------------------------------


class Activator:
    def __init__(
        self, kube: fixtures.Kube, ns: str, name: str, triton: fixtures.Triton, log: pathlib.Path
    ) -> None:
        self.port, self.control = procs.free_port(), procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            TIDESERVE,
            "activator",
            "--host=127.0.0.1",
            f"--http-port={self.port}",
            "--grpc-port=0",
            f"--control-port={self.control}",
            f"--kubeconfig={kube.kubeconfig}",
            f"--namespace={ns}",
            f"--upstream={ns}/{name}={triton.http_url}",
            "--drain-seconds=2",
        ]
        env = dict(os.environ, TIDESERVE_ACTIVATOR_UPSTREAMS="")
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        fixtures.eventually(self._ready, 30, "activator /readyz")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, "activator exited"
        return httpx.get(f"http://127.0.0.1:{self.control}/readyz").status_code == 200

    def held(self) -> int:
        body = httpx.get(f"http://127.0.0.1:{self.control}/demand", timeout=5).json()
        return sum(int(e["held"]) for e in body["endpoints"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


async def client(
    http: httpx.AsyncClient, urls: list[str], ns: str, name: str, value: int, log: list[str]
) -> int:
    """A client behind the activators' Service: a reset connection or a 503 sends it to
    the next activator (kube-proxy would pick another ready one); 200 ends it."""
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "FP32", "data": [value, 0]}]}
    index = 0
    for attempt in range(10):
        url = urls[index]
        try:
            response = await http.post(
                f"{url}/v2/models/tiny/infer",
                json=body,
                headers={"X-Tideserve-Endpoint": f"{ns}/{name}"},
            )
        except httpx.TransportError as error:
            log.append(type(error).__name__)
            index = (index + 1) % len(urls)
            continue
        log.append(str(response.status_code))
        if response.status_code == 200:
            return attempt
        index = (index + 1) % len(urls)
    return -1


async def test_activator_killed_while_holding(
    kube: fixtures.Kube, chaos_ns: str, triton: fixtures.Triton, tmp_path: pathlib.Path
) -> None:
    """40 requests held by activator A; A is SIGKILLed (clients see resets and go to B);
    B is SIGTERMed with a 2 s drain and the endpoint still asleep (503, clients go to C);
    then the endpoint wakes and C answers them all."""
    name, count = "held", 40
    spec = {"minReplicas": 0, "scaleToZero": {"wakeDeadlineSeconds": 300}}
    # The model Triton serves: the activator releases once /v2/models/tiny/ready says so.
    model = {"name": "tiny", "storageUri": "pvc://models/tiny"}
    kube.apply(fixtures.isvc(name, chaos_ns, model=model, scaling=spec))
    status = {"status": {"replicas": 0, "readyReplicas": 0}}
    kube.kubectl(
        "patch",
        ISVC,
        name,
        "-n",
        chaos_ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    activators = [
        Activator(kube, chaos_ns, name, triton, tmp_path / f"act-{i}.log") for i in range(3)
    ]
    outcomes: list[list[str]] = [[] for _ in range(count)]
    try:
        urls = [a.url for a in activators]
        async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=5)) as http:
            tasks = [
                asyncio.create_task(client(http, urls, chaos_ns, name, i, outcomes[i]))
                for i in range(count)
            ]
            await asyncio.to_thread(
                fixtures.eventually,
                lambda: activators[0].held() == count,
                60,
                "A holds them all",
                0.1,
            )
            activators[0].proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(
                fixtures.eventually,
                lambda: activators[1].held() == count,
                60,
                "B holds them all",
                0.1,
            )
            activators[1].proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(
                fixtures.eventually,
                lambda: activators[2].held() == count,
                60,
                "C holds them all",
                0.1,
            )
            ready = {"status": {"replicas": 1, "readyReplicas": 1}}
            kube.kubectl(
                "patch",
                ISVC,
                name,
                "-n",
                chaos_ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps(ready),
            )
            done, pending = await asyncio.wait(tasks, timeout=180)
        attempts = [t.result() for t in done]
    finally:
        for a in activators:
            a.stop()
    answered = sum(a >= 0 for a in attempts)
    resets = sum(o.count("RemoteProtocolError") + o.count("ReadError") for o in outcomes)
    drained = sum(o.count("503") for o in outcomes)
    row = chaos.Census(1, 0, [], [], [])
    chaos.record(
        "activator SIGKILL then SIGTERM while holding 40",
        row,
        held_lost=count - answered,
        hung=len(pending),
        resets_seen=resets,
        drain_503s=drained,
    )
    assert (len(pending), answered) == (0, count), outcomes
