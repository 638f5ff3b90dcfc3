"""Benchmark the reconciler: N InferenceServices created at once, time until all are Ready.

Runs against the local test bed (hack/cluster up), with the operator as a real
subprocess (`tideserve run`), and reports:
- wall time from the first `kubectl apply` until every object has Ready=True,
- the operator's peak RSS (VmHWM from /proc),
- per-object creation->Ready latency (p50/p95/max) and the operator's own counters;
- a spec update of every object that renders nothing new (spec.replicas through the
  scale subresource, as an HPA or KEDA writes it): time until every generation is
  observed, and how many children were applied for it (none: the digest is unchanged).
Extra fake kwok nodes (bench-cpu-*) give the N pods room; they are removed afterwards.

  hack/bench-reconcile [--count 500] [--out docs/benchmarks/reconcile.md]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from tideserve_testbed import fixtures, harness
from tideserve_testbed.bench import common

ROOT = common.ROOT
PODS_PER_NODE = 250
COUNTERS = (
    "tideserve_reconciles_total",
    "tideserve_status_writes_total",
    "tideserve_child_applies_total",
    "tideserve_drift_repairs_total",
)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    return common.kube().kubectl(*args, input=stdin, check=check, timeout=300).stdout


def bench_nodes(count: int) -> list[dict[str, Any]]:
    nodes = []
    for i in range((count + PODS_PER_NODE - 1) // PODS_PER_NODE):
        name = f"bench-cpu-{i}"
        capacity = {"cpu": "1000", "memory": "4Ti", "pods": str(PODS_PER_NODE)}
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "type": "kwok",
                        "tideserve.dev/bench": "true",
                    },
                },
                "spec": {},
                "status": {"capacity": capacity, "allocatable": capacity},
            }
        )
    return nodes


def isvc(name: str) -> dict[str, Any]:
    return fixtures.isvc(
        name,
        resources={"accelerator": "cpu", "cpu": "10m", "memory": "16Mi"},
        scaling={"minReplicas": 1, "maxReplicas": 1},
    )


def ready_times(namespace: str) -> dict[str, float | None]:
    items = json.loads(kubectl("get", "tisvc", "-n", namespace, "-o", "json"))["items"]
    out: dict[str, float | None] = {}
    for obj in items:
        created = parse_time(obj["metadata"]["creationTimestamp"])
        ready = next(
            (
                c
                for c in obj.get("status", {}).get("conditions") or []
                if c["type"] == "Ready" and c["status"] == "True"
            ),
            None,
        )
        out[obj["metadata"]["name"]] = (
            parse_time(ready["lastTransitionTime"]) - created if ready else None
        )
    return out


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def api_latency_ms(namespace: str) -> float:
    """One GET of a small object: how loaded the API server (and the machine) is."""
    start = time.monotonic()
    kubectl("get", "namespace", namespace, "-o", "name")
    kubectl_overhead = time.monotonic() - start
    return kubectl_overhead * 1000


def cpu_seconds(pid: int) -> float:
    return sum(common.cpu_seconds(pid))


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return common.counters(r.read().decode(), COUNTERS)


def resumed_unchanged(port: int) -> float:
    """Resumes that found the children applied already (tideserve_reconciles_total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return harness.metric(text, "tideserve_reconciles_total", result="unchanged") or 0.0


def observed_all(namespace: str) -> int:
    items = json.loads(kubectl("get", "-n", namespace, "inferenceservices", "-o", "json"))["items"]
    return sum(
        1
        for i in items
        if (i.get("status") or {}).get("observedGeneration") == i["metadata"]["generation"]
    )


def spec_update_wave(namespace: str, names: list[str], timeout: float) -> float | None:
    """spec.replicas of every object set to 2 through the scale subresource, as an HPA or
    KEDA writes it (five concurrent `kubectl scale` of 100); seconds until every object's
    observedGeneration caught up, or None on timeout."""
    start = time.monotonic()
    writers = []
    for chunk in range(0, len(names), 100):
        targets = [
            f"inferenceservices.serving.tideserve.io/{n}" for n in names[chunk : chunk + 100]
        ]
        writers.append(
            subprocess.Popen(
                common.kubectl_argv("scale", "-n", namespace, "--replicas=2", *targets),
                stdout=subprocess.DEVNULL,
            )
        )
    for proc in writers:
        proc.wait(600)
    while time.monotonic() - start < timeout:
        if observed_all(namespace) == len(names):
            return time.monotonic() - start
        time.sleep(2)
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--reconciler-only",
        action="store_true",
        help="run the operator without its autoscaler and right-sizing loops",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "reconcile.md"))
    args = parser.parse_args(argv)

    subprocess.run([str(ROOT / "hack" / "cluster"), "up"], check=True)
    cluster_env = subprocess.run(
        [str(ROOT / "hack" / "cluster"), "env"], capture_output=True, text=True, check=True
    ).stdout
    # The autoscaler and right-sizing loops run too (as in production), against the test
    # bed's Prometheus on loopback.
    prometheus_url = next(
        line.split("=", 1)[1]
        for line in cluster_env.splitlines()
        if line.startswith("export TIDESERVE_PROMETHEUS_URL=")
    )
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    namespace = f"bench-reconcile-{os.getpid()}"
    kubectl("create", "namespace", namespace)
    nodes = bench_nodes(args.count)
    kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})
    )
    log = pathlib.Path(tempfile.mkdtemp(prefix="bench-reconcile-")) / "operator.log"
    op = harness.Operator(
        common.kube().kubeconfig,
        namespace,
        log,
        harness.RECONCILER_ONLY if args.reconciler_only else (),
        TIDESERVE_PROMETHEUS_URL=prometheus_url,
    )
    op.start()
    assert op.proc is not None
    operator = op.proc
    restart_seconds: float | None = None
    wave_seconds: float | None = None
    wave: dict[str, float] = {}
    try:
        time.sleep(3)  # kopf's watches start; their latency is not what is measured
        idle_rss = common.memory_mib(operator.pid)
        cpu_before = cpu_seconds(operator.pid)
        names = [f"bench-{i:04d}" for i in range(args.count)]
        start = time.monotonic()
        started_at = time.time()
        # Five concurrent `kubectl create` streams of 100: a burst, as a GitOps sync makes.
        creators = []
        for chunk in range(0, len(names), 100):
            items = [isvc(n) for n in names[chunk : chunk + 100]]
            proc = subprocess.Popen(
                common.kubectl_argv("create", "-n", namespace, "-f", "-"),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
            proc.stdin.close()
            creators.append(proc)
        for proc in creators:
            proc.wait(600)
        applied = time.monotonic() - start
        ready = 0
        max_rss = idle_rss
        latencies_ms = [api_latency_ms(namespace)]
        while time.monotonic() - start < args.timeout:
            times = ready_times(namespace)
            ready = sum(1 for t in times.values() if t is not None)
            max_rss = max(max_rss, common.memory_mib(operator.pid))
            latencies_ms.append(api_latency_ms(namespace))
            print(f"{time.monotonic() - start:7.1f}s  ready {ready}/{args.count}", flush=True)
            if ready == args.count:
                break
            time.sleep(2)
        elapsed = time.monotonic() - start
        peak = common.memory_mib(operator.pid, "VmHWM")
        cpu_used = cpu_seconds(operator.pid) - cpu_before
        counters = scrape(op.metrics_port)
        latencies = [t for t in ready_times(namespace).values() if t is not None]
        if ready == args.count:
            before_wave = scrape(op.metrics_port)
            wave_seconds = spec_update_wave(namespace, names, args.timeout)
            after_wave = scrape(op.metrics_port)
            wave = {k: v - before_wave.get(k, 0.0) for k, v in after_wave.items()}
            # A restart: every object is resumed; unchanged ones must not be re-applied.
            op.stop(60)
            restart = time.monotonic()
            op.start()
            assert op.proc is not None
            operator = op.proc
            while time.monotonic() - restart < args.timeout:
                with contextlib.suppress(OSError):
                    if resumed_unchanged(op.metrics_port) >= args.count:
                        restart_seconds = time.monotonic() - restart
                        break
                time.sleep(1)
    finally:
        op.stop(30)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        kubectl("delete", "node", "-l", "tideserve.dev/bench=true", "--wait=false", check=False)

    ok = ready == args.count
    cpus = os.cpu_count()
    lines = [
        "# Reconciler benchmark",
        "",
        "Produced by `hack/bench-reconcile` (not a timed test): "
        f"{args.count} InferenceServices (CPU, one replica each) applied at once to the local "
        "test bed (real etcd, kube-apiserver, controller-manager and scheduler; kwok nodes), "
        "with the operator (`tideserve run`) as a subprocess watching their namespace.",
        "",
        f"- Date: {datetime.datetime.fromtimestamp(started_at, datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"machine: {cpus} CPUs, shared by the control plane, kwok and the operator "
        f"(and whatever else runs; 1-min load average at the end: {os.getloadavg()[0]:.1f}).",
        f"- `kubectl get namespace` round trip during the run (API server load indicator, "
        f"includes kubectl start-up): median {statistics.median(latencies_ms):.0f} ms, "
        f"max {max(latencies_ms):.0f} ms.",
        f"- Result: {'all' if ok else 'NOT all'} {ready}/{args.count} Ready.",
        "- Operator: "
        + (
            "reconciler only (`--without autoscaler --without rightsizing`)."
            if args.reconciler_only
            else "as deployed, with the autoscaler and right-sizing loops running."
        ),
        f"- Time from the first `kubectl create` until all Ready: **{elapsed:.1f} s** "
        f"(the `kubectl create` calls themselves took {applied:.1f} s; from the last create "
        f"to all Ready: {elapsed - applied:.1f} s).",
        f"- Operator CPU time during the run: {cpu_used:.1f} s.",
        f"- Operator peak RSS (VmHWM): **{peak:.0f} MiB** "
        f"(idle before the burst: {idle_rss:.0f} MiB; highest sampled VmRSS: {max_rss:.0f} MiB).",
    ]
    if latencies:
        lines.append(
            "- Per object, creation to Ready (1 s resolution of API timestamps): "
            f"p50 {common.percentile(latencies, 0.5):.0f} s, p95 {common.percentile(latencies, 0.95):.0f} s, "
            f"max {max(latencies):.0f} s, mean {statistics.fmean(latencies):.1f} s."
        )
    if restart_seconds is not None:
        lines.append(
            f"- Operator restart with all {args.count} in place: every object resumed and found "
            f"unchanged (no child re-applied) in {restart_seconds:.1f} s from process start."
        )
    for key, value in sorted(counters.items()):
        lines.append(f"- `{key}`: {value:.0f}")
    if wave_seconds is not None:
        lines.append(
            f"- Spec update of all {args.count} (`kubectl scale`: spec.replicas, which renders "
            "nothing): every "
            f"generation observed in {wave_seconds:.1f} s; counters during it:"
        )
        lines += [f"  - `{k}`: +{v:.0f}" for k, v in sorted(wave.items()) if v]
    lines += [
        "",
        "Each object yields a Deployment (and its ReplicaSet and pod, scheduled on a kwok node), "
        "two Services, the route EndpointSlice and a ConfigMap (CPU instance override); status "
        "is written only when it changes.",
        "",
        f"Reproduce: `hack/bench-reconcile --count {args.count}`.",
        "",
    ]
    out_path = pathlib.Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"operator log: {log}")
    return 0 if ok else 1
