"""hack/demo: tideserve end to end on the local test bed, narrated.

1. the local control plane with kwok GPU/CPU nodes, Prometheus and a real Triton;
2. the CRD, the operator (`tideserve run`) and the activator (`tideserve activator`);
3. example InferenceServices become Ready on the right kind of node;
4. an endpoint backed by the real Triton: load raises replicas, idleness takes them to
   zero, and a request sent at zero is held by the activator, wakes the endpoint and is
   answered.

Pods are simulated by kwok (no kubelet here), so every replica of the demo endpoint is
served by the one real Triton process; the queue signals, Prometheus, the API server,
the operator and the activator are all real.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from tideserve_testbed import procs, prometheus, triton

REPO = procs.REPO
VENV_BIN = REPO / ".venv" / "bin"
NAMESPACE = "demo"
ENDPOINT = "tiny"

TINY = f"""
apiVersion: serving.tideserve.io/v1alpha1
kind: InferenceService
metadata:
  name: {ENDPOINT}
  namespace: {NAMESPACE}
spec:
  model:
    name: tiny
    storageUri: https://models.example.com/tiny.tar.gz
  resources:
    accelerator: cpu
    cpu: "1"
    memory: 1Gi
  scaling:
    minReplicas: 0
    maxReplicas: 6
    target: {{type: queueDepth, value: 2}}
    scaleToZero: {{idleSeconds: 20, wakeDeadlineSeconds: 120}}
    behavior:
      stableWindowSeconds: 10
      scaleDown: {{stabilizationSeconds: 10, maxPercent: 100, maxReplicasChange: 4,
                  periodSeconds: 5}}
"""


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def demo_dir() -> pathlib.Path:
    path = procs.state_dir() / "demo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        [str(procs.BIN_DIR / "kubectl"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def start_process(name: str, cmd: list[str], env: dict[str, str]) -> None:
    record = demo_dir() / f"{name}.json"
    if procs.alive(procs.read_json(record).get("proc")):
        procs.stop(procs.read_json(record)["proc"])
    proc = procs.start(name, cmd, demo_dir() / f"{name}.log", env=env)
    procs.write_json(record, {"proc": proc})
    print(f"    {name}: pid {proc['pid']}, log {proc['log']}")


def stop_processes() -> None:
    for record in sorted(demo_dir().glob("*.json")):
        procs.stop(procs.read_json(record).get("proc"))
        record.unlink()
    triton.stop("demo")


def wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise SystemExit(f"demo: timed out after {timeout:.0f} s waiting for {what}")


def endpoint_state(namespace: str = NAMESPACE) -> dict[str, Any]:
    obj = json.loads(kubectl("get", "tisvc", ENDPOINT, "-n", namespace, "-o", "json"))
    status = obj.get("status", {})
    deploy = json.loads(
        kubectl("get", "deploy", f"{ENDPOINT}-predictor", "-n", namespace, "-o", "json")
    )
    last = status.get("lastScaling") or {}
    return {
        "replicas": deploy["spec"].get("replicas", 0),
        "ready": status.get("readyReplicas", 0),
        "desired": status.get("desiredReplicas"),
        "reason": last.get("reason", ""),
    }


def pending(prom_url: str, namespace: str = NAMESPACE) -> float:
    rows = prometheus.query(
        prom_url, f'sum(nv_inference_pending_request_count{{namespace="{namespace}"}})'
    )
    return float(rows[0]["value"][1]) if rows else 0.0


def infer(url: str, timeout: float = 150, namespace: str = NAMESPACE) -> tuple[int, str]:
    body = json.dumps(
        {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32",
                     "data": [1, 2, 3, 4]}]}
    ).encode()  # fmt: skip
    request = urllib.request.Request(  # noqa: S310 - loopback URL built by this script
        f"{url}/v2/models/tiny/infer",
        data=body,
        headers={"Content-Type": "application/json", "Host": f"{ENDPOINT}.{namespace}.svc"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return response.status, response.read().decode()


def load(url: str, seconds: float, workers: int, namespace: str = NAMESPACE) -> int:
    done = [0]
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop_at:
            try:
                infer(url, timeout=10, namespace=namespace)
                done[0] += 1
            except OSError:
                time.sleep(0.1)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    return_after = stop_at
    while time.monotonic() < return_after:
        time.sleep(0.2)
    for thread in threads:
        thread.join(timeout=15)
    return done[0]


def watch(
    prom_url: str, seconds: float, until: Any = None, namespace: str = NAMESPACE
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = endpoint_state(namespace)
        print(
            f"    t={time.strftime('%H:%M:%S')}  queue={pending(prom_url, namespace):5.0f}  "
            f"replicas={state['replicas']}  ready={state['ready']}  "
            f"desired={state['desired']}  {state['reason']}",
            flush=True,
        )
        if until and until(state):
            return state
        time.sleep(2)
    return state


def up() -> int:
    started = time.monotonic()
    say("local test bed: control plane, kwok nodes, Prometheus")
    subprocess.run([str(REPO / "hack" / "cluster"), "up"], check=True)
    env_lines = subprocess.run(
        [str(REPO / "hack" / "cluster"), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(os.environ)
    for line in env_lines.splitlines():
        if line.startswith("export ") and "=" in line and not line.startswith("export PATH"):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip('"')
    os.environ.update(env)
    prom_url = env["TIDESERVE_PROMETHEUS_URL"]
    print(kubectl("get", "nodes", "-L", "nvidia.com/gpu.product"))

    say("CRD, namespace, a real Triton (model 'tiny') scraped as demo/tiny")
    print(kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")))
    kubectl("create", "namespace", NAMESPACE, check=False)
    server = triton.start(
        "demo", labels={"namespace": NAMESPACE, "name": ENDPOINT, "pod": "tiny-0"}
    )
    print(f"    triton: {server['http_url']} (metrics {server['metrics_url']})")

    say("the activator and the operator")
    http_port, control_port = procs.free_port(), procs.free_port()
    activator_url = f"http://127.0.0.1:{http_port}"
    start_process(
        "activator",
        [str(VENV_BIN / "tideserve"), "activator", "--host", "127.0.0.1",
         "--http-port", str(http_port), "--grpc-port", "0",
         "--control-port", str(control_port), "--namespace", NAMESPACE,
         "--upstream", f"{NAMESPACE}/{ENDPOINT}={server['http_url']}"],
        env,
    )  # fmt: skip
    start_process(
        "operator",
        [str(VENV_BIN / "tideserve"), "run", "--bind", "127.0.0.1"],
        env
        | {
            "TIDESERVE_TICK_SECONDS": "2",
            # Only the demo's namespace: the test bed is shared (hack/test, other
            # sessions), and a cluster-wide demo operator would handle their objects too.
            "TIDESERVE_WATCH_NAMESPACES": NAMESPACE,
            "TIDESERVE_ACTIVATOR_URL": f"http://127.0.0.1:{control_port}",
            "TIDESERVE_METRICS_PORT": str(procs.free_port()),
            "TIDESERVE_HEALTH_PORT": str(procs.free_port()),
        },
    )
    wait("activator", lambda: procs.port_open(http_port), 30)

    say("example InferenceServices (CPU model, GPU model, night-off schedule)")
    for example in ("01-cpu-model.yaml", "02-gpu-model.yaml", "03-night-off-schedule.yaml"):
        print(kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "examples" / example)), end="")
    kubectl("apply", "-f", "-", stdin=TINY)
    kubectl(
        "wait", "--for=condition=Ready", "-n", NAMESPACE, "tisvc/resnet-cpu",
        f"tisvc/{ENDPOINT}", "--timeout=120s",
    )  # fmt: skip
    time.sleep(2)
    print(kubectl("get", "tisvc", "-n", NAMESPACE, "-o", "wide"))
    print(kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide"))

    say("load: 24 clients for 30 s against the real Triton -> the queue grows, replicas follow")
    loader = threading.Thread(target=load, args=(server["http_url"], 30, 24), daemon=True)
    loader.start()
    watch(prom_url, 32)
    loader.join()

    say("load stops -> scale down after the stable window, to zero after 20 s idle")
    # Zero means no ready replica in the status the activator reads, not only a Deployment
    # scaled to 0 (its last pod may still be terminating): a request sent earlier would be
    # forwarded at once, not held.
    watch(prom_url, 120, until=lambda s: s["replicas"] == 0 and s["ready"] == 0)

    say("a request at zero goes to the activator: held, the endpoint wakes, it is answered")
    result: dict[str, Any] = {}

    def one_request() -> None:
        began = time.monotonic()
        try:
            result["status"], result["body"] = infer(activator_url)
        except urllib.error.HTTPError as error:
            result["status"], result["body"] = error.code, error.read().decode()
        result["seconds"] = time.monotonic() - began

    requester = threading.Thread(target=one_request, daemon=True)
    requester.start()
    watch(prom_url, 60, until=lambda s: "status" in result)
    requester.join(timeout=120)
    if result.get("status") != 200:
        raise SystemExit(f"demo: the request held at zero was not answered: {result}")
    print(f"    answered {result['status']} after {result['seconds']:.1f} s: {result['body']}")

    say(f"done in {time.monotonic() - started:.0f} s; everything is still running")
    print(f"    export KUBECONFIG={env['KUBECONFIG']}")
    print(f"    kubectl get tisvc -n {NAMESPACE}; kubectl describe tisvc {ENDPOINT} -n {NAMESPACE}")
    print(f"    logs: {demo_dir()}/operator.log, {demo_dir()}/activator.log")
    print("    stop everything: hack/demo down")
    return 0


def main(argv: list[str]) -> int:
    from tideserve_testbed import demo_real, node  # noqa: PLC0415 (imports the test libs)

    if argv and argv[0] == "down":
        stop_processes()
        demo_real.clean_up()
        subprocess.run([str(REPO / "hack" / "cluster"), "down"], check=False)
        return 0
    if argv and argv[0] not in ("up",):
        print("usage: hack/demo [up|down]   (TIDESERVE_REAL_NODE=0: kwok only)", file=sys.stderr)
        return 2
    # The real node by default: the demo endpoint's replicas are Triton pods that serve.
    return demo_real.up() if node.enabled() else up()
