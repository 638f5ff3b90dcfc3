"""Benchmark the autoscaler on the real local test bed (API server + Prometheus + Triton).

1. Reaction: a load step (tritonclient, 32 closed-loop clients) on a real Triton whose
   queue Prometheus scrapes (1 s); the autoscaler loop runs in-process as in the
   operator. Measured: load start -> the predictor Deployment's replicas patched (read
   back from the API server), several trials per tick setting, next to the defaults of
   the HPA (15 s sync) and KEDA (30 s polling).
2. Tick cost at 10 / 100 / 1,000 endpoints: that many InferenceServices and predictor
   Deployments (paused, so kwok starts no pods) in the API server, and that many
   endpoints' Triton series in a Prometheus of this script's own, scraping a small
   exporter (this process) that serves nv_inference_* series with namespace/name/pod
   labels for N endpoints (1 s scrape). Measured: one whole tick (list objects, 4 PromQL
   queries, decide, writes), cold (every status written) and warm (nothing changed),
   split into read / decide / write, and the Prometheus queries alone.

    hack/bench-autoscaler                  # writes docs/benchmarks/autoscaler.md
    hack/bench-autoscaler --quick          # fewer trials, prints only
    hack/bench-autoscaler --counts 10,100 --trials 3

Only 127.0.0.1 is contacted. Everything started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import http.server
import json
import os
import pathlib
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

from tideserve import kube as kube_api
from tideserve import settings as settings_mod
from tideserve.api import crd, resource
from tideserve.api import spec as spec_api
from tideserve.autoscaler import loop, policy, signals
from tideserve.render import names
from tideserve_testbed import fixtures
from tideserve_testbed import prometheus as testbed_prometheus
from tideserve_testbed.bench import common

ROOT = common.ROOT
ISVC = f"{resource.PLURAL}.{resource.GROUP}"
NOTES = "<!-- notes: kept by hack/bench-autoscaler -->"
SCALING = {
    "minReplicas": 1,
    "maxReplicas": 8,
    "target": {"type": "queueDepth", "value": 2},
}
# The tick-cost endpoints are pinned at one replica (min = max = 1): their Deployments
# are paused (no pods), so they would look like replicas still starting and keep asking
# for more. The policy still computes everything; only the outcome is fixed.
PINNED = {**SCALING, "maxReplicas": 1}


def log(text: str) -> None:
    print(f"bench-autoscaler: {text}", file=sys.stderr, flush=True)


# --- objects ---------------------------------------------------------------------------


TINY = {"name": "tiny", "storageUri": "pvc://models/tiny"}
ONE_CPU = {"accelerator": "cpu", "cpu": "1", "memory": "1Gi"}


def isvc(namespace: str, name: str, scaling: dict[str, Any] = SCALING) -> dict[str, Any]:
    return fixtures.isvc(name, namespace, model=TINY, resources=ONE_CPU, scaling=scaling)


def predictor(namespace: str, name: str, replicas: int, paused: bool) -> dict[str, Any]:
    labels = names.selector_labels(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "namespace": namespace,
            "name": names.predictor(name),
            "labels": names.common_labels(name),
        },
        "spec": {
            "replicas": replicas,
            "paused": paused,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "triton", "image": "tritonserver:bench"}]},
            },
        },
    }


def create(kube: fixtures.Kube, namespace: str, items: list[dict[str, Any]]) -> None:
    kube.kubectl("create", "namespace", namespace, check=False)
    for start in range(0, len(items), 200):
        kube.apply(items[start : start + 200], "--server-side",
                   f"--field-manager={resource.FIELD_MANAGER}")  # fmt: skip


# --- 1. reaction -------------------------------------------------------------------------


def deployment_replicas(namespace: str, name: str) -> int:
    body = kube_api.get("Deployment", namespace, names.predictor(name)) or {}
    return int((body.get("spec") or {}).get("replicas", -1))


def ready_replicas(namespace: str, name: str) -> int:
    body = kube_api.get("Deployment", namespace, names.predictor(name)) or {}
    return int((body.get("status") or {}).get("readyReplicas") or 0)


def pending(url: str, namespace: str) -> float:
    rows = testbed_prometheus.query(
        url, f'sum(nv_inference_pending_request_count{{namespace="{namespace}"}})'
    )
    return float(rows[0]["value"][1]) if rows else -1.0


def reaction(
    kube: fixtures.Kube, prometheus_url: str, server: fixtures.Triton, namespace: str,
    ticks: list[float], trials: int,
) -> dict[float, list[float]]:  # fmt: skip
    name = "tiny"
    results: dict[float, list[float]] = {}
    for tick in ticks:
        results[tick] = []
        settings = settings_mod.Settings(
            prometheus_url=prometheus_url, tick_seconds=tick, watch_namespaces=(namespace,)
        )
        for trial in range(trials):
            kube.kubectl("scale", "-n", namespace, f"deployment/{names.predictor(name)}",
                         "--replicas=1")  # fmt: skip
            fixtures.eventually(lambda: pending(prometheus_url, namespace) == 0, 60,
                                "an empty queue")  # fmt: skip
            # kwok marks the pod Ready once scheduled; the policy leaves a backlog to
            # replicas still starting, so a trial starts from a Ready replica.
            fixtures.eventually(lambda: ready_replicas(namespace, name) == 1, 300,
                                "a Ready replica")  # fmt: skip
            with fixtures.autoscaler(settings):
                # Start the step at a different phase of the tick each trial.
                time.sleep(2 * tick + (trial / max(trials, 1)) * tick)
                with fixtures.load(server, 32):
                    start = time.monotonic()
                    fixtures.eventually(
                        lambda: deployment_replicas(namespace, name) > 1, 120,
                        "the replica patch", interval=0.05,
                    )  # fmt: skip
                    elapsed = time.monotonic() - start
            results[tick].append(elapsed)
            log(f"tick {tick:g}s trial {trial + 1}: load step -> replica patch {elapsed:.2f}s")
    return results


# --- 2. tick cost ------------------------------------------------------------------------


class Exporter:
    """nv_inference_* series for `count` endpoints, as Triton exports them per model."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.count = 0
        self.started = time.time()
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def render(self) -> str:
        elapsed = time.time() - self.started
        lines = []
        for i in range(self.count):
            labels = (f'model="tiny",version="1",namespace="{self.namespace}",'
                      f'name="ep-{i:04d}",pod="ep-{i:04d}-predictor-0"')  # fmt: skip
            rate = 1.0 + i % 13
            lines.append(f"nv_inference_pending_request_count{{{labels}}} {i % 5}")
            lines.append(f"nv_inference_request_success{{{labels}}} {int(rate * elapsed)}")
            lines.append(f"nv_inference_queue_duration_us{{{labels}}} {int(rate * elapsed * 2000)}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()


def tick_cost(
    kube: fixtures.Kube, counts: list[int], warm_ticks: int, workdir: pathlib.Path
) -> list[dict[str, Any]]:
    namespace = f"bench-ticks-{os.getpid()}"
    exporter = Exporter(namespace)
    state: dict[str, Any] = {}
    testbed_prometheus.up(workdir, state)
    rows = []
    try:
        url = testbed_prometheus.url(state)
        targets = testbed_prometheus.targets_dir(workdir)
        targets.mkdir(parents=True, exist_ok=True)
        (targets / "exporter.json").write_text(
            json.dumps([{"targets": [exporter.address], "labels": {}}])
        )
        made = 0
        for count in counts:
            items: list[dict[str, Any]] = []
            for i in range(made, count):
                items += [isvc(namespace, f"ep-{i:04d}", PINNED),
                          predictor(namespace, f"ep-{i:04d}", 1, paused=True)]  # fmt: skip
            t0 = time.monotonic()
            create(kube, namespace, items)
            log(f"{count} endpoints in the API server (+{count - made} in "
                f"{time.monotonic() - t0:.0f}s)")  # fmt: skip
            made = count
            exporter.count = count
            def scraped(c: int = count) -> bool:
                query = ("count by (name) (nv_inference_pending_request_count"
                         f'{{namespace="{namespace}"}})')  # fmt: skip
                return len(testbed_prometheus.query(url, query)) == c

            fixtures.eventually(
                scraped, 60, f"{count} endpoints' series in Prometheus", interval=0.5
            )
            time.sleep(3)  # two scrapes: rates need two samples
            settings = settings_mod.Settings(
                prometheus_url=url, tick_seconds=5, watch_namespaces=(namespace,)
            )
            rows.append(asyncio.run(_ticks(settings, count, warm_ticks)))
            log(f"{count} endpoints: {rows[-1]}")
    finally:
        testbed_prometheus.down(state)
        exporter.close()
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return rows


async def _ticks(settings: settings_mod.Settings, count: int, warm: int) -> dict[str, Any]:
    autoscaler = loop.Autoscaler(settings)
    try:
        cold = await autoscaler.tick()
        assert cold.endpoints == count, (cold.endpoints, count)
        assert cold.prometheus_ok
        warms = []
        for _ in range(warm):
            await asyncio.sleep(1.0)
            warms.append(await autoscaler.tick())
        queries = []
        for _ in range(warm):
            t0 = time.perf_counter()
            answer = await signals.query_all(autoscaler.prometheus)
            queries.append(time.perf_counter() - t0)
            assert answer is not None
        assert answer is not None
        rows = len(answer[0]["pending"])
        # The pure policy alone, per endpoint (what the decide phase is made of).
        spec = autoscaler_spec()
        state = policy.PolicyState()
        now = datetime.datetime.now(datetime.UTC)
        sig = policy.Signals(3.0, 0.002, 5.0, 0, 1.0)
        t0 = time.perf_counter()
        for i in range(2000):
            _, state = policy.decide(spec, sig, 2, 2, now + datetime.timedelta(seconds=5 * i),
                                     state)  # fmt: skip
        per_decide = (time.perf_counter() - t0) / 2000
    finally:
        await autoscaler.close()
    seconds = sorted(w.seconds for w in warms)
    return {
        "endpoints": count,
        "series_rows": rows,
        "cold_s": round(cold.seconds, 3),
        "cold_writes": cold.status_writes,
        "cold_phases": {k: round(v, 3) for k, v in cold.phases.items()},
        "warm_p50_s": round(statistics.median(seconds), 3),
        "warm_max_s": round(seconds[-1], 3),
        "warm_writes": sum(w.status_writes for w in warms),
        "warm_phases": {
            k: round(statistics.median(w.phases[k] for w in warms), 3) for k in warms[0].phases
        },
        "queries_p50_s": round(statistics.median(queries), 3),
        "decide_us": round(per_decide * 1e6, 1),
    }


def autoscaler_spec() -> Any:
    return spec_api.ScalingSpec.model_validate(SCALING)  # the unpinned spec: full path


# --- report ------------------------------------------------------------------------------


def markdown(reactions: dict[float, list[float]], ticks: list[dict[str, Any]]) -> str:
    lines = [
        "# Autoscaler benchmark",
        "",
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by `hack/bench-autoscaler` "
        f"on {platform.machine()}, {os.cpu_count()} CPUs (shared with other work), "
        "against the local test bed: kube-apiserver + kwok, Debian's Prometheus (1 s "
        "scrape), Triton on CPU.",
        "",
        "## Load step -> replica patch",
        "",
        "32 closed-loop tritonclient clients start at once against a Triton serving the "
        "`tiny` model with 100 ms per batch of 8 (~80 requests/s, so ~24 requests queue). "
        "Timed from the first request to the predictor Deployment's `spec.replicas` "
        "changing in the API server (polled every 50 ms). The step lands at a different "
        "phase of the tick in each trial.",
        "",
        "| Controller | Tick / sync | Load step -> replica patch (s) |",
        "|---|---|---|",
    ]
    for tick, measured in reactions.items():
        values = sorted(measured)
        lines.append(
            f"| tideserve (measured, {len(values)} trials) | {tick:g} s | "
            f"median {statistics.median(values):.2f}, min {values[0]:.2f}, "
            f"max {values[-1]:.2f} |"
        )
    lines += [
        "| HPA (default, not measured here) | 15 s sync | up to 15 s + metrics pipeline "
        "(metrics-server resolution 15 s, or a Prometheus adapter) |",
        "| KEDA (default, not measured here) | 30 s polling | up to 30 s + the HPA it drives |",
        "",
        "What the figure is made of: Prometheus scrape interval (1 s here; production "
        "installs often use 15-30 s: add it), up to one tick, the decision (microseconds), "
        "the scale patch (milliseconds). The policy reacts on the first tick that sees the "
        "queue: no averaging delays a scale up (the panic window and the latest tick drive "
        "it). Pods becoming Ready (image pull, model load) comes after and is not included.",
        "",
        "## One tick at 10 / 100 / 1,000 endpoints",
        "",
        "N InferenceServices and N predictor Deployments in the API server (paused: kwok "
        "runs no pods); a Prometheus of the benchmark's own scraping an exporter that "
        "serves Triton's `nv_inference_*` series for N endpoints with namespace/name/pod "
        "labels (3 series per endpoint, 1 s scrape). A tick = list InferenceServices + list "
        "Deployments (1 call each) + 4 PromQL queries for all endpoints + N decisions + "
        "the writes. Cold = the first tick after start (every endpoint's status is written); "
        "warm = later ticks (nothing changed, nothing written).",
        "",
        "| Endpoints | Cold tick (s) | writes | Warm tick p50 / max (s) | warm read / decide / "
        "write (s) | 4 queries (s) | decide per endpoint (µs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ticks:
        phases = row["warm_phases"]
        lines.append(
            f"| {row['endpoints']:,} | {row['cold_s']:.3f} | {row['cold_writes']} | "
            f"{row['warm_p50_s']:.3f} / {row['warm_max_s']:.3f} | "
            f"{phases['read']:.3f} / {phases['decide']:.3f} / {phases['write']:.3f} | "
            f"{row['queries_p50_s']:.3f} | {row['decide_us']:.0f} |"
        )
    lines += ["", "Raw figures:", "", "```json", json.dumps(
        {"reaction_s": {str(k): v for k, v in reactions.items()}, "ticks": ticks}, indent=1
    ), "```", ""]  # fmt: skip
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop Triton, Prometheus, namespaces


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(
        prog="hack/bench-autoscaler",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ticks", default="5,1", help="tick settings for the reaction (s)")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--counts", default="10,100,1000")
    parser.add_argument("--warm-ticks", type=int, default=5)
    parser.add_argument("--skip-reaction", action="store_true")
    parser.add_argument("--skip-ticks", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2 trials, 3 warm ticks, no file")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "autoscaler.md"))
    args = parser.parse_args(argv)
    trials = 2 if args.quick else args.trials
    warm = 3 if args.quick else args.warm_ticks
    with fixtures.Session() as session:
        kube = session.kube()
        os.environ["KUBECONFIG"] = str(kube.kubeconfig)
        kube_api.configure(str(kube.kubeconfig))
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                     str(crd.targets(ROOT)[0]))  # fmt: skip
        reactions: dict[float, list[float]] = {}
        ticks: list[dict[str, Any]] = []
        if not args.skip_reaction:
            namespace = f"bench-react-{os.getpid()}"
            labels = {"namespace": namespace, "name": "tiny", "pod": "tiny-predictor-0"}
            server = fixtures.start_triton(f"bench-autoscaler-{os.getpid()}", labels=labels,
                                           delay_ms=100)  # fmt: skip
            try:
                create(
                    kube,
                    namespace,
                    [isvc(namespace, "tiny"), predictor(namespace, "tiny", 1, paused=False)],
                )
                prometheus_url = session.prometheus().url
                fixtures.eventually(lambda: pending(prometheus_url, namespace) >= 0, 60,
                                    "Triton scraped")  # fmt: skip
                reactions = reaction(
                    kube,
                    prometheus_url,
                    server,
                    namespace,
                    [float(t) for t in args.ticks.split(",")],
                    trials,
                )
            finally:
                fixtures.stop_triton(server.name)
                kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        if not args.skip_ticks:
            with tempfile.TemporaryDirectory(prefix="bench-autoscaler-") as tmp:
                ticks = tick_cost(
                    kube, [int(c) for c in args.counts.split(",")], warm, pathlib.Path(tmp)
                )
    text = markdown(reactions, ticks)
    print(text)
    if not args.quick:
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Hand-written notes after the marker survive a re-run.
        previous = out.read_text() if out.exists() else ""
        notes = previous[previous.index(NOTES) :] if NOTES in previous else ""
        out.write_text(text + ("\n" + notes if notes else ""))
        log(f"wrote {out}")
    return 0
