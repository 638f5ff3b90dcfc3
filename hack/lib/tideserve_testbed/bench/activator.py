"""Benchmark the activator against a real Triton on loopback, side by side in one run.

1. Pass-through: wrk (a separate process, Debian's `wrk` with a Lua POST script) sends the
   same KServe v2 infer request straight to Triton and through the activator, alternating
   runs, at several connection counts. Reported: p50/p99 latency, requests/s, ratios.
2. Wake: the endpoint's Triton is not running. A request arrives and is held; this script
   plays the autoscaler (polls GET /demand, starts Triton when held > 0, as the autoscaler
   would scale 0 -> 1). Reported: first request -> first answer, minus the model's own
   load time (Triton process start -> /v2/models/<model>/ready 200, polled directly).

    hack/bench-activator                 # writes docs/benchmarks/activator.md
    hack/bench-activator --quick         # shorter runs, prints only
    hack/bench-activator --seconds 15 --connections 1,8,32 --wakes 3
    hack/bench-activator --baseline <commit>   # also that commit's activator, side by side

Only 127.0.0.1 is contacted. Everything started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import httpx

from tideserve_testbed import fixtures, harness, procs, triton
from tideserve_testbed.bench import common

ROOT = common.ROOT

ENDPOINT = "bench/tiny"
COLD = "bench/cold"
BODY = {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tideserve-Endpoint"] = "%s"
"""


def model_repository(tmp: pathlib.Path, delay_ms: int) -> pathlib.Path:
    """The test bed's tiny model with its artificial per-batch delay set to `delay_ms`, and
    without the dynamic batcher's queue delay: the benchmark measures the proxy, so the
    model should answer as fast as the Python backend can."""
    repo = tmp / f"models-{delay_ms}"
    if repo.exists():
        return repo
    shutil.copytree(triton.MODEL_REPOSITORY, repo, ignore=shutil.ignore_patterns("__pycache__"))
    config = repo / "tiny" / "config.pbtxt"
    text = config.read_text()
    text = re.sub(r"dynamic_batching \{[^}]*\}\n", "", text)
    text = text.replace('string_value: "20"', f'string_value: "{delay_ms}"')
    config.write_text(text)
    return repo


def start_activator(
    ports: dict[str, int],
    upstreams: dict[str, str],
    log: pathlib.Path,
    loop: str = "asyncio",
    kube: Kube | None = None,
    source: pathlib.Path | None = None,
) -> subprocess.Popen[bytes]:
    """`source`: run the activator from another source root (an older commit's operator/
    tree, for a before/after comparison in the same run) instead of the installed one."""
    program = [str(harness.TIDESERVE), "activator"]
    if source:
        program = [sys.executable, "-c",
                   "import sys; from tideserve.activator import server; sys.exit(server.main(sys.argv[1:]))"]  # fmt: skip
    cmd = [
        *program, "--host=127.0.0.1",
        f"--http-port={ports['http']}", f"--control-port={ports['control']}", "--grpc-port=0",
        "--log-level=WARNING", f"--loop={loop}",
    ]  # fmt: skip
    if kube:  # endpoint state from the real API server (watch), as in a cluster
        cmd += [f"--kubeconfig={kube.kubeconfig}", f"--namespace={kube.namespace}"]
    else:  # endpoints declared ready on the command line
        cmd += ["--no-watch"] + [f"--static={key}=tiny" for key in upstreams]
    for key, url in upstreams.items():
        cmd += [f"--upstream={key}={url}"]
    env = dict(os.environ, TIDESERVE_ACTIVATOR_UPSTREAMS="", TIDESERVE_WATCH_NAMESPACES="")
    if source:
        env["PYTHONPATH"] = str(source)
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"http://127.0.0.1:{ports['control']}/readyz", timeout=1).status_code
                == 200
            ):
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"activator exited: see {log}")
        time.sleep(0.1)
    raise SystemExit("activator did not become ready")


def start_relay(upstream: str) -> tuple[str, subprocess.Popen[bytes]]:
    """A plain TCP relay written in C (socat): the cost of the extra hop alone."""
    port = procs.free_port()
    target = upstream.removeprefix("http://")
    proc = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", f"TCP:{target}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return f"http://127.0.0.1:{port}/v2/models/tiny/infer", proc


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def wrk(url: str, connections: int, seconds: int, script: pathlib.Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
         "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    result = {
        "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "non2xx": float((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1]),
        "errors": float(
            sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        ),
    }
    return result


def loops() -> list[str]:
    try:
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        return ["asyncio"]
    return ["asyncio", "uvloop"]


def pass_through(args: argparse.Namespace, work: pathlib.Path) -> list[dict[str, object]]:
    repo = model_repository(work, delay_ms=0)
    name = f"bench-activator-{os.getpid()}"
    server = triton.start(name, model_repository=repo)
    script = work / "post.lua"
    script.write_text(LUA % (json.dumps(BODY), ENDPOINT))
    paths: dict[str, tuple[str, subprocess.Popen[bytes] | None]] = {
        "direct": (f"{server['http_url']}/v2/models/tiny/infer", None)
    }
    try:
        for loop in loops():
            ports = {"http": procs.free_port(), "control": procs.free_port()}
            log = work / f"activator-{loop}.log"
            proc = start_activator(ports, {ENDPOINT: server["http_url"]}, log, loop)
            paths[f"activator ({loop})"] = (
                f"http://127.0.0.1:{ports['http']}/v2/models/tiny/infer",
                proc,
            )
        if args.baseline:  # the same activator as of an older commit, side by side
            source = work / "baseline"
            source.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "operator"],
                                     capture_output=True, check=True).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
            ports = {"http": procs.free_port(), "control": procs.free_port()}
            log = work / "activator-baseline.log"
            proc = start_activator(
                ports, {ENDPOINT: server["http_url"]}, log, source=source / "operator"
            )
            paths[f"activator at {args.baseline} (before)"] = (
                f"http://127.0.0.1:{ports['http']}/v2/models/tiny/infer", proc)  # fmt: skip
        if shutil.which("socat"):
            paths["TCP relay (socat)"] = start_relay(server["http_url"])
        for url, _ in paths.values():  # warm every path (connection pools, Python caches)
            wrk(url, 8, 2, script)
        rows: list[dict[str, object]] = []
        for connections in args.connections:
            runs: dict[str, list[dict[str, float]]] = {path: [] for path in paths}
            for _ in range(args.rounds):  # alternate so load drift hits every path alike
                for path, (url, process) in paths.items():
                    before = (
                        common.cpu_seconds(process.pid, children=True) if process else (0.0, 0.0)
                    )
                    result = wrk(url, connections, args.seconds, script)
                    if process:
                        time.sleep(0.3)  # let socat reap its per-connection children
                        after = common.cpu_seconds(process.pid, children=True)
                        done = max(1.0, result["rps"] * args.seconds)
                        result["user_us"] = (after[0] - before[0]) / done * 1e6
                        result["sys_us"] = (after[1] - before[1]) / done * 1e6
                    runs[path].append(result)
            for path, results in runs.items():
                row: dict[str, object] = {"connections": connections, "path": path}
                for metric in ("p50_ms", "p99_ms", "rps", "user_us", "sys_us"):
                    if metric in results[0]:
                        row[metric] = statistics.median(r[metric] for r in results)
                row["bad"] = sum(r["non2xx"] + r["errors"] for r in results)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for _, process in paths.values():
            if process:
                process.send_signal(signal.SIGTERM)
                proc.wait(10)
        triton.stop(name)
    return rows


@dataclasses.dataclass
class Kube:
    """The wake's endpoint as a real InferenceService on the test bed's API server; this
    script writes its status the way the reconciler would (readyReplicas)."""

    cluster: fixtures.Kube
    namespace: str
    name: str

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.cluster.kubeconfig

    def set_ready(self, ready: int) -> None:
        self.cluster.patch_status(
            self.namespace, self.name, {"replicas": ready, "readyReplicas": ready}
        )


def kube_setup(kubeconfig: str) -> Kube | None:
    cluster = fixtures.Kube(kubeconfig=pathlib.Path(kubeconfig), state_dir=procs.state_dir())
    found = cluster.kubectl("get", "crd", "inferenceservices.serving.tideserve.io", check=False)
    if found.returncode != 0:
        print(f"wake through the API server skipped: {found.stderr}".splitlines()[0], flush=True)
        return None
    namespace = f"bench-activator-{os.getpid()}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.apply(
        fixtures.isvc(
            "cold", namespace, model={"name": "tiny", "storageUri": "pvc://models/tiny"},
            scaling={"minReplicas": 0},
        )
    )  # fmt: skip
    kube = Kube(cluster, namespace, "cold")
    kube.set_ready(0)
    return kube


def kube_teardown(kube: Kube) -> None:
    kube.cluster.kubectl("delete", "namespace", kube.namespace, "--wait=false", check=False)


def wake(args: argparse.Namespace, work: pathlib.Path, kube: Kube | None) -> list[dict[str, Any]]:
    """Cold wakes: the endpoint's Triton is down; this script is the autoscaler (and, with
    an API server, the reconciler writing readyReplicas)."""
    repo = model_repository(work, delay_ms=0)
    tports = {"http": procs.free_port(), "grpc": procs.free_port(), "metrics": procs.free_port()}
    upstream = f"http://127.0.0.1:{tports['http']}"
    ports = {"http": procs.free_port(), "control": procs.free_port()}
    key = f"{kube.namespace}/{kube.name}" if kube else COLD
    mode = "api-server" if kube else "static"
    activator = start_activator(
        ports, {key: upstream}, work / f"activator-wake-{mode}.log", kube=kube
    )
    name = f"bench-activator-cold-{os.getpid()}"
    results = []
    try:
        for _ in range(args.wakes):
            result = asyncio.run(
                one_wake(name, repo, tports, ports, upstream, key, args.wake_requests, kube)
            )
            results.append({"mode": mode, **result})
            print(json.dumps(results[-1]), flush=True)
            triton.stop(name)
            if kube:
                kube.set_ready(0)
                wait_known(ports, kube, ready=0)
    finally:
        activator.send_signal(signal.SIGTERM)
        activator.wait(10)
        triton.stop(name)
    return results


def wait_known(ports: dict[str, int], kube: Kube, ready: int) -> None:
    """Until the activator's watch has seen the endpoint with `ready` replicas."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        endpoints = httpx.get(f"http://127.0.0.1:{ports['control']}/endpoints", timeout=5).json()
        if any(
            e["name"] == kube.name and e["readyReplicas"] == ready for e in endpoints["endpoints"]
        ):
            return
        time.sleep(0.05)
    raise SystemExit("the activator never saw the endpoint's status")


async def one_wake(
    name: str, repo: pathlib.Path, tports: dict[str, int], ports: dict[str, int],
    upstream: str, key: str, count: int, kube: Kube | None,
) -> dict[str, float]:  # fmt: skip
    control = f"http://127.0.0.1:{ports['control']}/demand"
    proxied = f"http://127.0.0.1:{ports['http']}/v2/models/tiny/infer"
    marks: dict[str, float] = {}

    def model_ready_watcher(stop: threading.Event) -> None:
        # The model's own load time, observed directly at Triton, independent of the
        # activator's probe schedule.
        while not stop.is_set():
            try:
                if httpx.get(f"{upstream}/v2/models/tiny/ready", timeout=1).status_code == 200:
                    marks["model_ready"] = time.monotonic()
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.005)

    async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=5)) as http:
        start = time.monotonic()

        async def request(i: int) -> float:
            headers = {"X-Tideserve-Endpoint": key}
            response = await http.post(proxied, json=BODY, headers=headers)
            response.raise_for_status()
            return time.monotonic()

        pending = [asyncio.create_task(request(i)) for i in range(count)]
        while True:  # the autoscaler's view: poll the demand signal
            body = (await http.get(control)).json()
            if any(e["held"] > 0 for e in body["endpoints"]):
                marks["demand"] = time.monotonic()
                break
            await asyncio.sleep(0.005)
        stop = threading.Event()
        watcher = threading.Thread(target=model_ready_watcher, args=(stop,), daemon=True)
        marks["spawn"] = time.monotonic()
        watcher.start()
        await asyncio.to_thread(
            triton.start, name, model_repository=repo, http_port=tports["http"],
            grpc_port=tports["grpc"], metrics_port=tports["metrics"],
        )  # fmt: skip
        if kube:
            # Triton's readiness probe passed: the reconciler would now write readyReplicas.
            await asyncio.to_thread(kube.set_ready, 1)
        marks["signal"] = time.monotonic()
        answered = await asyncio.wait_for(asyncio.gather(*pending), 120)
        stop.set()
        watcher.join(5)
    first = min(answered)
    load = marks["model_ready"] - marks["spawn"]
    return {
        "requests": count,
        "demand_visible_ms": (marks["demand"] - start) * 1e3,
        "first_answer_s": first - start,
        "last_answer_s": max(answered) - start,
        "model_load_s": load,
        "wake_minus_load_s": first - start - load,
        "model_ready_to_first_answer_ms": (first - marks["model_ready"]) * 1e3,
        "ready_signal_to_first_answer_ms": (first - marks["signal"]) * 1e3,
    }


def report(
    rows: list[dict[str, object]], wakes: list[dict[str, Any]], args: argparse.Namespace
) -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    lines = [
        "# Activator benchmark",
        "",
        f"Generated by `hack/bench-activator` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC;"
        f" {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, everything on loopback."
        " Load generator: `wrk -t1` (a separate process) with a Lua POST script; the same"
        " KServe v2 infer request (FP32[1,4]) goes straight to Triton and through the"
        f" activator, alternating {args.rounds} runs of {args.seconds} s per setting (medians shown)."
        " Model: the test bed's `tiny` Python-backend model with no artificial delay and no"
        " batching delay, so the proxy's cost is as visible as it can be. Triton, the activator"
        " and wrk share the same CPUs, so throughput ratios are a lower bound on a multi-core node."
        f" The machine was shared with other work: load average {args.load_before[0]:.1f} at the"
        f" start and {args.load_after[0]:.1f} at the end (1-minute), so latency and throughput"
        " vary between runs; CPU time per request is the steadier figure.",
        "",
        "## Pass-through (endpoint ready)",
        "",
        "| connections | path | p50 ms | added p50 ms | p99 ms | req/s | of direct | CPU µs/request user + sys | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    direct = {r["connections"]: r for r in rows if r["path"] == "direct"}
    for r in rows:
        base = direct[r["connections"]]
        added = "" if r is base else f"{float(r['p50_ms']) - float(base['p50_ms']):+.3f}"  # type: ignore[arg-type]
        ratio = float(r["rps"]) / float(base["rps"])  # type: ignore[arg-type]
        cpu = f"{r['user_us']:.0f} + {r['sys_us']:.0f}" if "user_us" in r else ""
        lines.append(
            f"| {r['connections']} | {r['path']} | {r['p50_ms']:.3f} | {added} | {r['p99_ms']:.3f} | "
            f"{r['rps']:.0f} | {ratio:.0%} | {cpu} | {int(r['bad'])} |"  # type: ignore[call-overload]
        )
    lines += [
        "",
        "Aims (issue 6): under 1 ms added p50, at least 90% of direct throughput. How to read"
        " this: *added p50* at 1 connection is the hop's latency; with more connections the"
        " CPUs are saturated (Triton, wrk and the proxy share 2 CPUs) and the added time is"
        " mostly waiting for a CPU. The TCP relay (socat, C, no HTTP parsing) is the cost of"
        " an extra hop alone; the activator's extra cost over it is Python's per-request CPU"
        " (the last column). That is why the activator is out of the path of a ready endpoint"
        " (docs/design/activator.md): clients reach Triton directly, and only requests that"
        " arrive while the route switches pay for the pass-through.",
        *baseline_note(rows, args),
        "",
        "## Wake from zero",
        "",
        f"{args.wake_requests} concurrent requests arrive while the endpoint's Triton is not running; the"
        " benchmark plays the autoscaler: it polls `GET /demand` and starts Triton as soon as"
        " a request is held. *Model load* is Triton's own start-to-ready time"
        " (`/v2/models/tiny/ready` polled directly every 5 ms). *Wake minus load* is what the"
        " activator and the demand signal add: first request to first answer, minus model load."
        ' *Ready signal*: with flags the endpoint is always "ready" and the activator\'s own'
        " model probe finds Triton; with the API server this script writes readyReplicas=1"
        " on the status subresource once Triton's health is ready (as the reconciler would),"
        " and the column is status write -> watch -> model probe -> first answer."
        " In a cluster, the autoscaler tick (up to `TIDESERVE_TICK_SECONDS`), pod scheduling, image"
        " pull and the status watch add to this; they are not the activator's.",
        "",
        "| endpoint state from | demand visible ms | model load s | first answer s | last answer s | wake minus load s | model ready -> first answer ms | ready signal -> first answer ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in wakes:
        source = "API server (watch)" if w["mode"] == "api-server" else "flags (--static)"
        lines.append(
            f"| {source} | {w['demand_visible_ms']:.1f} | {w['model_load_s']:.3f} | {w['first_answer_s']:.3f} | "
            f"{w['last_answer_s']:.3f} | {w['wake_minus_load_s']:.3f} | {w['model_ready_to_first_answer_ms']:.1f} | "
            + (
                f"{w['ready_signal_to_first_answer_ms']:.1f} |"
                if w["mode"] == "api-server"
                else "– |"  # noqa: RUF001
            )
        )
    lines += [
        "",
        f"Reproduce: `hack/bench-activator{' --baseline ' + args.baseline if args.baseline else ''}` (about "
        f"{len(rows) * args.rounds * 2 * args.seconds // 60 + 1} minutes).",
    ]
    return "\n".join(lines) + "\n"


def baseline_note(rows: list[dict[str, object]], args: argparse.Namespace) -> list[str]:
    """Before/after in the same run, and why 90% of direct is out of reach here."""
    if not args.baseline:
        return []

    def cpu(row: dict[str, object]) -> float:
        return float(row["user_us"]) + float(row["sys_us"])  # type: ignore[arg-type]

    def by_connections(keep: Callable[[str], bool]) -> dict[int, dict[str, object]]:
        return {cast(int, r["connections"]): r for r in rows if keep(str(r["path"]))}

    before = by_connections(lambda path: path.endswith("(before)"))
    after = by_connections(lambda path: path == "activator (asyncio)")
    relay = by_connections(lambda path: path == "TCP relay (socat)")
    direct = by_connections(lambda path: path == "direct")
    lines = ["", f"Before/after: *activator at {args.baseline} (before)* is the same activator as of"
             f" commit {args.baseline}, run side by side in this run (same Triton, alternating runs)."]  # fmt: skip
    for c in sorted(after):
        if c in before:
            change = cpu(after[c]) / cpu(before[c]) - 1
            lines[-1] += (f" At {c} connection{'s' if c > 1 else ''}: {cpu(before[c]):.0f} -> {cpu(after[c]):.0f}"
                          f" µs CPU per request ({change:+.0%}).")  # fmt: skip
    top = max(direct)
    if 1 in relay and 1 in direct and top in relay and top in after:
        d1 = float(direct[1]["p50_ms"])  # type: ignore[arg-type]
        added = float(after[1]["p50_ms"]) - d1  # type: ignore[arg-type]
        relay_added = float(relay[1]["p50_ms"]) - d1  # type: ignore[arg-type]
        budget = 2e6 / float(direct[top]["rps"])  # type: ignore[arg-type]  # µs of 2 CPUs
        lines += ["", f"Why 90% is out of reach on this machine: at 1 connection a request's time is"
                  f" latency, and the ratio is direct p50 / (direct p50 + added): 90% allows a hop"
                  f" to add {d1 / 9 * 1e3:.0f} µs to Triton's {d1 * 1e3:.0f} µs; the C relay alone adds"
                  f" {relay_added * 1e3:.0f} µs, the activator {added * 1e3:.0f} µs. At {top} connections the"
                  f" 2 CPUs are saturated and direct runs at {float(direct[top]['rps']):.0f} req/s, so Triton,"  # type: ignore[arg-type]
                  f" wrk and the kernel use at most {budget:.0f} µs of CPU per request; the ratio is about"
                  " their cost / (their cost + the proxy's), so 90% allows the proxy about"
                  f" {budget / 9:.0f} µs per request: the relay uses {cpu(relay[top]):.0f}, the activator"
                  f" {cpu(after[top]):.0f}. The activator's cost is Python's HTTP handling; py-spy (GIL held)"
                  " puts about a quarter of it in the activator's own handler and upstream client and"
                  " the rest in aiohttp's server and asyncio's loop, so trimming the activator's code"
                  " (the before/after above) cannot close the gap; only a non-Python data path could."
                  " Hence the design keeps the activator out of the path of ready endpoints."]  # fmt: skip
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--wakes", type=int, default=3)
    parser.add_argument("--wake-requests", type=int, default=50)
    parser.add_argument(
        "--kubeconfig",
        default="",
        help="API server for the watch-driven wake (default: the test bed's)",
    )
    parser.add_argument("--quick", action="store_true", help="3 s runs, one round, print only")
    parser.add_argument(
        "--baseline", default="", help="also run the activator as of this git commit, side by side"
    )
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks" / "activator.md"))
    args = parser.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",")]
    if args.quick:
        args.seconds, args.rounds, args.wakes = 3, 1, 1
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    args.load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-activator-") as tmp:
        work = pathlib.Path(tmp)
        rows = pass_through(args, work)
        wakes = wake(args, work, None)
        kubeconfig = args.kubeconfig or str(procs.state_dir() / "kubeconfig")
        kube = kube_setup(kubeconfig) if pathlib.Path(kubeconfig).exists() else None
        if kube:
            try:
                wakes += wake(args, work, kube)
            finally:
                kube_teardown(kube)
    args.load_after = os.getloadavg()
    text = report(rows, wakes, args)
    print(text)
    if not args.quick:
        pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.output).write_text(text)
        print(f"written to {args.output}")
    return 0
