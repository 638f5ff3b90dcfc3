"""Live side by side on the test bed's real node: the same request trace through the real
Service, one policy after another, from the same start state.

Per policy, in a fresh namespace: the same InferenceService (the test model with a
per-batch sleep as its "GPU time", on a PersistentVolume; Triton test image; CPU
replicas on the real node), the operator (`tideserve run`) and the activator as host
processes (as tests/e2e/test_realnode_serving.py runs them), the activator published as
a Service, the test bed's Prometheus scraping the Triton pods and the activator. The
endpoint starts with nothing Ready; the trace (Poisson arrivals from a fixed seed, the
same list for every policy) is sent to the InferenceService's Service ClusterIP, one
connection per request (kube-proxy balances connections), through the activator while
at zero. Policies:

- tideserve: `mode: builtin`, defaults (target, windows, idle period, tick 5 s).
- hpa-default / hpa-tuned: a standalone autoscaling/v2 HPA on the same signal through
  tideserve_testbed.metrics_adapter (see hpa()); it starts with its floor, 1 Ready.
- keda-default / keda-tuned: the real KEDA 2.21 operator and metrics adapter
  (tideserve_testbed.keda) with a ScaledObject on the InferenceService's scale
  subresource (`mode: external`, so tideserve never writes replicas), Prometheus scaler
  on Triton's queue (nv_inference_pending_request_count) plus the requests the activator
  holds at zero (the only signal there is when no Triton runs: KEDA's activation needs
  one), threshold 4 per replica (tideserve's default queueDepth target), activation above
  0, `minReplicaCount: 0`. Default: KEDA's and the HPA's defaults (polling 30 s,
  cooldown 300 s, HPA scale-down stabilization 300 s). Tuned: polling 5 s, cooldown
  30 s, scale-down stabilization 30 s. The operator only mirrors spec.replicas onto the
  Deployment here, every 1 s (faster than its 5 s default: to KEDA's advantage).

Measured per policy: SLO attainment (answered within --slo-ms, lost requests miss),
p50/p99 latency of answered requests, requests lost or refused, ready replica-seconds
(the Deployment's status.readyReplicas sampled every second, integrated), cold starts
(ready 0 -> > 0), seconds at zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import datetime
import gzip
import json
import os
import pathlib
import platform
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from tideserve.api import resource
from tideserve.render import names
from tideserve.sim import traces
from tideserve_testbed import (
    cli,
    fixtures,
    harness,
    images,
    keda,
    metrics_adapter,
    node,
    procs,
    realpods,
)
from tideserve_testbed import prometheus as testbed_prometheus
from tideserve_testbed.bench import common, live_plots, live_sim
from tideserve_testbed.bench import live_metrics as lm

NAME = "live"
DELAY_MS = 100  # "GPU time" per batch of up to 8: ~80 requests/s per replica at most
MAX_REPLICAS = 3
SLO_MS = 1000.0
KEDA_THRESHOLD = "4"  # pending requests per replica: tideserve's default queueDepth target
REQUEST_TIMEOUT_S = 120.0
SEED = 1
# idle -> burst -> idle (long enough for keda-tuned's cooldown to reach zero) -> burst.
STEP = [
    lm.Segment(15, 0),
    lm.Segment(40, 100),
    lm.Segment(80, 0),
    lm.Segment(40, 100),
    lm.Segment(10, 0),
]
# In this order: the HPA's adapter and KEDA's register the same APIService, one at a time.
POLICIES = ("tideserve", "hpa-default", "hpa-tuned", "keda-default", "keda-tuned")
HPA_METRIC = "tideserve_live_queue"  # served by tideserve_testbed.metrics_adapter
# A real trace: the first CODE_WINDOW_S of the Azure LLM 2023 code-assistant trace (the
# window from its first request, not one picked for its shape), at CODE_FACTOR x its rate
# (its bursts reach 32/s there; one replica here serves ~80/s).
CODE_TRACE = "azure_llm2023_code.csv.gz"  # in tideserve bench's trace directory
CODE_WINDOW_S = 300.0
CODE_FACTOR = 3
ISVC = f"{resource.PLURAL}.{resource.GROUP}"


def log(text: str) -> None:
    print(f"bench-live: {text}", file=sys.stderr, flush=True)


# --- the objects -------------------------------------------------------------------------


def inference_service(
    namespace: str, storage_uri: str, external: bool, replicas: int = 0
) -> dict[str, Any]:
    scaling: dict[str, Any] = {"minReplicas": 0, "maxReplicas": MAX_REPLICAS}
    extra: dict[str, Any] = {}
    if external:
        scaling["mode"] = "external"
        extra["replicas"] = replicas
    return fixtures.isvc(
        NAME, namespace,
        model={"name": realpods.MODEL, "storageUri": storage_uri},
        runtime={"image": images.ref("triton")},
        resources={"accelerator": "cpu", "cpu": "100m", "memory": "1Gi"},
        scaling=scaling, slo={"latencyMs": SLO_MS}, **extra,
    )  # fmt: skip


def keda_query(namespace: str) -> str:
    sel = f'namespace="{namespace}",name="{NAME}"'
    return (
        f"(sum(nv_inference_pending_request_count{{{sel}}}) or vector(0))"
        f" + (sum(tideserve_activator_held_requests{{{sel}}}) or vector(0))"
    )


def scaled_object(namespace: str, prometheus_url: str, tuned: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": resource.API_VERSION, "kind": resource.KIND,
                           "name": NAME},
        "minReplicaCount": 0, "maxReplicaCount": MAX_REPLICAS,
        "triggers": [{"type": "prometheus", "metadata": {
            "serverAddress": prometheus_url, "query": keda_query(namespace),
            "threshold": KEDA_THRESHOLD, "activationThreshold": "0"}}],
    }  # fmt: skip
    if tuned:
        spec |= {
            "pollingInterval": 5, "cooldownPeriod": 30,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 30}}}},
        }  # fmt: skip
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"namespace": namespace, "name": NAME}, "spec": spec,
    }  # fmt: skip


def hpa(namespace: str, tuned: bool) -> dict[str, Any]:
    """A standalone autoscaling/v2 HPA on the same signal as KEDA's trigger (Triton's queue
    plus what the activator holds), served by the test bed's own external-metrics adapter:
    the same target (4 per replica, AverageValue). The HPA's floor is 1 (it cannot scale to
    zero). Default: the HPA's default behavior (scale-down stabilization 300 s; the
    controller's sync period is kube-controller-manager's default 15 s, not per object).
    Tuned: scale-down stabilization 30 s, as keda-tuned."""
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": resource.API_VERSION, "kind": resource.KIND,
                           "name": NAME},
        "minReplicas": 1, "maxReplicas": MAX_REPLICAS,
        "metrics": [{"type": "External", "external": {
            "metric": {"name": HPA_METRIC},
            "target": {"type": "AverageValue", "averageValue": KEDA_THRESHOLD}}}],
    }  # fmt: skip
    if tuned:
        spec["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"namespace": namespace, "name": NAME}, "spec": spec,
    }  # fmt: skip


# --- processes ---------------------------------------------------------------------------


# --- load and sampling -------------------------------------------------------------------


def send_trace(
    host: str, port: int, path: str, headers: dict[str, str], offsets: list[float], t0: float
) -> list[lm.Request]:
    """Open loop: each request at t0 + its offset, on a connection of its own."""
    body = json.dumps(realpods.infer_body(1.0)).encode()
    head = {**headers, "Content-Type": "application/json", "Content-Length": str(len(body)),
            "Connection": "close"}  # fmt: skip
    raw = (
        "\r\n".join([f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]) + "\r\n\r\n"
    ).encode() + body

    async def one(offset: float) -> lm.Request:
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.monotonic()
        status = 0
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(raw)
                response = await reader.read()
                writer.close()
            head = response.split(b"\r\n", 1)[0].split()
            status = int(head[1]) if len(head) > 1 and head[1].isdigit() else 0
        except (OSError, TimeoutError):
            status = 0
        return lm.Request(offset, time.monotonic() - sent, status)

    async def main() -> list[lm.Request]:
        return list(await asyncio.gather(*(one(o) for o in offsets)))

    return asyncio.run(main())


@contextlib.contextmanager
def sampling(kube: fixtures.Kube, namespace: str, t0: float) -> Iterator[list[lm.Sample]]:
    """The predictor Deployment's spec.replicas and readyReplicas every second."""
    selector = f"{names.ISVC_LABEL}={NAME}"
    samples: list[lm.Sample] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            at = time.monotonic() - t0
            try:
                desired, ready = fixtures.deployment_replicas(kube, namespace, selector)[
                    names.predictor(NAME)
                ]
                samples.append(lm.Sample(at, desired or 0, ready))
            except Exception as error:  # a missed sample; the next one counts
                log(f"sample failed: {error}")
            stop.wait(1.0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(10)


# --- one policy --------------------------------------------------------------------------


def code_trace() -> list[float]:
    """The Azure code trace's first CODE_WINDOW_S, CODE_FACTOR x its rate."""
    with gzip.open(traces.trace_dir(None) / CODE_TRACE, "rt") as f:
        rows = list(csv.DictReader(f))
    stamps = [datetime.datetime.fromisoformat(r["TIMESTAMP"][:26]).timestamp() for r in rows]
    return lm.rate_scaled(lm.window(stamps, CODE_WINDOW_S), CODE_FACTOR, SEED)


def endpoint_known(control: str) -> bool:
    try:
        with urllib.request.urlopen(f"{control}/endpoints", timeout=5) as r:  # noqa: S310
            return any(e["name"] == NAME for e in json.loads(r.read())["endpoints"])
    except OSError:
        return False


@contextlib.contextmanager
def _logs(dump: pathlib.Path | None, policy: str) -> Iterator[pathlib.Path]:
    """Where the operator and activator log: kept beside the run's CSV with --dump."""
    if dump is not None:
        (dump / policy).mkdir(parents=True, exist_ok=True)
        yield dump / policy
        return
    with tempfile.TemporaryDirectory(prefix="bench-live-") as logs:
        yield pathlib.Path(logs)


def _loadavg() -> str:
    """The machine's 1/5/15-minute load averages (other workers share its 2 CPUs)."""
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def start_state(kube: fixtures.Kube, namespace: str, floor: int) -> None:
    """The start state every policy gets: the predictor Deployment at its floor desired
    and ready (0, the Service routed to the activator; the HPA's floor is 1). A builtin
    endpoint's Deployment is created at Kubernetes' default of 1 replica (tideserve would
    keep it for its 900 s default idle period): it is scaled to 0 here, from where the
    autoscaler wakes it on demand as it would after an idle period."""
    selector = f"{names.ISVC_LABEL}={NAME}"
    dep = names.predictor(NAME)

    def replicas() -> tuple[int, int] | None:
        return fixtures.deployment_replicas(kube, namespace, selector).get(dep)

    current = fixtures.eventually(replicas, 60, "the predictor Deployment", 1)
    if current[0] and not floor:
        kube.kubectl("scale", "deployment", dep, "-n", namespace, "--replicas=0")

    def settled() -> bool:
        if replicas() != (floor, floor):
            return False
        route = kube.get_json("endpointslice", "-n", namespace, names.route(NAME))
        at_activator = [
            e.get("targetRef", {}).get("name") == "activator-host"
            for e in route.get("endpoints") or []
        ]
        return bool(at_activator) and all(at_activator) == (floor == 0)

    fixtures.eventually(settled, 180, f"{floor} Ready, the route settled", 1)
    time.sleep(10)  # two autoscaler ticks: it holds the floor without demand
    if replicas() != (floor, floor):
        raise RuntimeError(f"{namespace}: the autoscaler left {floor} without demand")


def run_policy(
    policy: str,
    offsets: list[float],
    end: float,
    slo_s: float,
    warmup: bool = False,
    dump: pathlib.Path | None = None,
) -> tuple[lm.Summary, list[str]]:
    kube = common.kube()
    d = procs.state_dir()
    prom_url = testbed_prometheus.url(cli.state())
    external = policy.startswith(("keda", "hpa"))
    floor = 1 if policy.startswith("hpa") else 0
    with (
        realpods.namespace(kube, "bench-live") as namespace,
        realpods.model_volume(kube, namespace, DELAY_MS) as storage_uri,
        _logs(dump, policy) as logs,
        harness.processes(logs, tails=False) as start,
    ):
        host, http_port = realpods.gateway_port()
        control_port = procs.free_port()
        env = {
            "KUBECONFIG": str(kube.kubeconfig),
            "TIDESERVE_PROMETHEUS_URL": prom_url,
            "TIDESERVE_ACTIVATOR_URL": f"http://{host}:{control_port}",
            "TIDESERVE_ACTIVATOR_SERVICE": f"{namespace}/activator",
            "TIDESERVE_METRICS_PORT": str(procs.free_port()),
            "TIDESERVE_HEALTH_PORT": str(procs.free_port()),
        }
        if external:
            env["TIDESERVE_TICK_SECONDS"] = "1"
        start("operator", ["run", "--bind", "127.0.0.1", "--namespace", namespace], env)
        realpods.publish_activator(kube, namespace, host, http_port)
        kube.apply(inference_service(namespace, storage_uri, external, floor))
        predictor_ip = fixtures.eventually(
            lambda: _cluster_ip(kube, namespace, names.predictor(NAME)), 60, "predictor Service"
        )
        start("activator", [
            "activator", f"--host={host}", f"--http-port={http_port}", "--grpc-port=0",
            f"--control-port={control_port}", f"--namespace={namespace}",
            f"--upstream={namespace}/{NAME}=http://{predictor_ip}:{names.HTTP_PORT}",
        ], {"KUBECONFIG": str(kube.kubeconfig)})  # fmt: skip
        target = f"bench-live-activator-{namespace}"
        testbed_prometheus.register_labels(
            target, f"{host}:{control_port}", {"component": "activator"}, d
        )
        try:
            control = f"http://{host}:{control_port}"
            fixtures.eventually(lambda: endpoint_known(control), 60, "the activator", 1)
            if policy.startswith("hpa"):
                kube.apply(hpa(namespace, tuned=policy == "hpa-tuned"))
            if policy.startswith("keda"):
                kube.apply(scaled_object(namespace, prom_url, tuned=policy == "keda-tuned"))
                fixtures.eventually(
                    lambda: kube.get_json("scaledobject", "-n", namespace, NAME)
                    .get("status", {}).get("hpaName"), 60, "KEDA's HPA", 1,
                )  # fmt: skip
            service_ip = fixtures.eventually(
                lambda: _cluster_ip(kube, namespace, NAME), 60, "the Service"
            )
            start_state(kube, namespace, floor)
            time.sleep(5)  # the route to the activator through kube-proxy settles
            sent = offsets if not warmup else [*offsets, *(end + o for o in offsets)]
            length = end * (2 if warmup else 1)
            log(f"{policy}: trace starts ({len(sent)} requests, {length:.0f} s)")
            load = [_loadavg()]
            t0 = time.monotonic() + 1.0
            with sampling(kube, namespace, t0) as samples:
                requests = send_trace(
                    service_ip, names.HTTP_PORT, f"/v2/models/{realpods.MODEL}/infer",
                    {"Host": f"{NAME}.{namespace}.svc.cluster.local:{names.HTTP_PORT}"},
                    sent, t0,
                )  # fmt: skip
                rest = t0 + length - time.monotonic()
                if rest > 0:
                    time.sleep(rest)
            load.append(_loadavg())
            log(f"{policy}: loadavg {load[0]} -> {load[1]}")
            if dump is not None:
                lm.write_run(dump / policy, requests, list(samples), load)
            if warmup:  # only the second pass counts, on its own clock
                requests = [dataclasses.replace(r, offset=r.offset - end)
                            for r in requests if r.offset >= end]  # fmt: skip
                samples = lm.second_pass(list(samples), end)
            return lm.summarise(requests, list(samples), slo_s, end), load
        finally:
            testbed_prometheus.unregister(target, d)
            if policy.startswith("keda"):
                kube.kubectl("delete", "scaledobject", "-n", namespace, NAME, "--timeout=60s",
                             check=False, timeout=90)  # fmt: skip


def _cluster_ip(kube: fixtures.Kube, namespace: str, service: str) -> str | None:
    res = kube.kubectl("get", "service", service, "-n", namespace, "-o", "json", check=False)
    return json.loads(res.stdout)["spec"]["clusterIP"] if res.returncode == 0 else None


# --- main --------------------------------------------------------------------------------


def trace(name: str) -> tuple[list[float], float, str]:
    """(arrival offsets, seconds, description) of the step or the Azure code trace."""
    if name == "step":
        shape = "step [" + " ".join(f"{s.seconds:g}s@{s.rate:g}/s" for s in STEP) + "]"
        return lm.arrivals(STEP, SEED), sum(s.seconds for s in STEP), shape
    shape = f"azure-llm-code first {CODE_WINDOW_S:g}s x{CODE_FACTOR} rate (+15s tail)"
    return code_trace(), CODE_WINDOW_S + 15, shape


def simulated(args: argparse.Namespace, policies: list[str]) -> int:
    """The sim-vs-live table (live_sim) for the trace, against the runs in --dump."""
    offsets, end, shape = trace(args.trace)
    slo_s = args.slo_ms / 1000
    live: dict[str, lm.Summary] = {}
    runs = []
    for policy in policies:
        d = args.dump / policy if args.dump else None
        if d is not None and (d / "requests.csv").exists():
            requests, samples = lm.read_run(d)
            live[policy] = lm.summarise(requests, samples, slo_s, end)
            runs.append(samples)
    cold_s = live_sim.median_cold_start(runs, fallback=10.0)
    model = live_sim.live_model(DELAY_MS, cold_s)
    build = live_sim.policies(MAX_REPLICAS, float(KEDA_THRESHOLD), slo_s)
    rows = []
    for policy in policies:
        sim = live_sim.simulate(build[policy], offsets, end, model, slo_s, MAX_REPLICAS)
        rows.append((policy, sim, live.get(policy)))
        print(f"sim {lm.line(policy, sim.mean)}", flush=True)
    table = f"trace {shape}; " + live_sim.compare(rows, slo_s, cold_s)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hack/bench-live", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one line per policy, nothing else")
    p.add_argument("--trace", choices=("step", "azure-code"), default="step")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated subset")
    p.add_argument("--slo-ms", type=float, default=SLO_MS)
    p.add_argument("--markdown", type=pathlib.Path, help="also write the full table here")
    p.add_argument(
        "--warmup",
        action="store_true",
        help="steady state: the trace twice back to back, only the second pass "
        "measured (every policy has seen the same traffic before)",
    )
    p.add_argument(
        "--plot", type=pathlib.Path, help="no test bed: plot the runs in --dump to this PNG"
    )
    p.add_argument(
        "--sim",
        action="store_true",
        help="no test bed: the same trace through the simulator, beside the live runs "
        "found in --dump (their cold starts set the simulator's)",
    )
    p.add_argument(
        "--dump",
        type=pathlib.Path,
        help="write each policy's requests and replica samples (CSV) under here",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    asked = [p for p in args.policies.split(",") if p]
    unknown = set(asked) - set(POLICIES)
    policies = [p for p in POLICIES if p in asked]
    if unknown:
        log(f"unknown policies {sorted(unknown)}; known: {', '.join(POLICIES)}")
        return 2
    if args.plot:
        if args.dump is None:
            log("--plot reads the runs in --dump")
            return 2
        _, _, shape = trace(args.trace)
        live_plots.plot(args.dump, policies, args.plot, shape)
        return 0
    if args.sim:
        if args.warmup:
            log("--sim compares one pass from the start state; not with --warmup")
            return 2
        return simulated(args, policies)
    if not node.healthy(cli.state()):
        log("needs a running test bed with its real node (hack/cluster up)")
        return 2
    offsets, end, shape = trace(args.trace)
    slo_s = args.slo_ms / 1000
    print(f"# trace={shape} seed={SEED} requests={len(offsets)} "
          f"slo={args.slo_ms:g}ms model={DELAY_MS}ms/batch<=8 maxReplicas={MAX_REPLICAS} "
          f"machine={platform.node()} {os.cpu_count()}cpu"
          f"{' warmup=1 (second pass measured)' if args.warmup else ''}", flush=True)  # fmt: skip
    rows: list[tuple[str, lm.Summary]] = []
    loads: dict[str, list[str]] = {}
    out = sys.stdout  # the policy lines only: the test bed's own log lines go to stderr
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        keda_running = adapter_running = False
        adapter = contextlib.ExitStack()
        stack.enter_context(adapter)
        for policy in policies:
            if policy.startswith("hpa") and not adapter_running:
                adapter.enter_context(metrics_adapter.served(
                    procs.state_dir(), testbed_prometheus.url(cli.state()),
                    {HPA_METRIC: keda_query("$namespace")}))  # fmt: skip
                adapter_running = True
            if policy.startswith("keda") and not keda_running:
                adapter.close()  # the APIService is KEDA's from here
                stack.enter_context(keda.started(procs.state_dir()))
                keda_running = True
            summary, loads[policy] = run_policy(policy, offsets, end, slo_s, args.warmup, args.dump)
            rows.append((policy, summary))
            print(lm.line(policy, summary), file=out, flush=True)
            print(f"# {policy} loadavg {loads[policy][0]} -> {loads[policy][1]}", file=out,
                  flush=True)  # fmt: skip
            if not args.quick:
                log(repr(summary))
    # KEDA's namespace (its CRDs stay, as after the e2e test; `hack/cluster down` removes all).
    common.kube().kubectl("delete", "namespace", keda.NAMESPACE, "--ignore-not-found",
                          "--wait=false", check=False)  # fmt: skip
    if args.markdown:
        args.markdown.write_text(lm.table(rows, slo_s, loads))
    return 0
