"""hack/demo on the real node (the default): the demo endpoint's replicas are Triton pods.

The example InferenceServices stay in namespace `demo` on the kwok nodes (GPU shapes the
machine cannot hold); the endpoint `tiny` lives in `demo-real`, whose pods run on the real
node from the image built here, load the test model (100 ms of "GPU time" per batch)
from a PersistentVolume, and are reached through their Service's ClusterIP (kube-proxy).
The activator runs on the host, published as a Service on the node's bridge.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
from typing import Any

from tideserve_testbed import controlplane, demo, fixtures, images, procs, prometheus, realpods

REAL_NS = "demo-real"
MODELS = pathlib.Path("/tmp/tideserve-demo-models")  # noqa: S108 (read by the pods' uid)


def tiny(storage_uri: str) -> dict[str, Any]:
    return fixtures.isvc(
        demo.ENDPOINT,
        REAL_NS,
        model={"name": realpods.MODEL, "storageUri": storage_uri},
        runtime={"image": images.ref("triton")},
        resources={"accelerator": "cpu", "cpu": "100m", "memory": "1Gi"},
        scaling={
            "minReplicas": 0,
            "maxReplicas": 3,
            "target": {"type": "queueTime", "value": 80},
            "scaleToZero": {"idleSeconds": 20, "wakeDeadlineSeconds": 180},
            "behavior": {
                "stableWindowSeconds": 10,
                "scaleDown": {"stabilizationSeconds": 10, "maxPercent": 100,
                              "maxReplicasChange": 4, "periodSeconds": 5},
            },
        },
    )  # fmt: skip


def up() -> int:
    started = time.monotonic()
    demo.say("local test bed: control plane, kwok nodes, the real node, Prometheus")
    subprocess.run([str(demo.REPO / "hack" / "cluster"), "up"], check=True)
    d = procs.state_dir()
    env = os.environ | {
        "KUBECONFIG": str(controlplane.kubeconfig_path(d)),
        "TIDESERVE_PROMETHEUS_URL": prometheus.url(procs.read_json(d / "state.json")),
    }
    os.environ.update(env)
    prom_url = env["TIDESERVE_PROMETHEUS_URL"]
    kube = fixtures.Kube(kubeconfig=controlplane.kubeconfig_path(d), state_dir=d)
    print(demo.kubectl("get", "nodes", "-o", "wide", "-L", "nvidia.com/gpu.product"))

    demo.say(f"CRD; namespace {demo.NAMESPACE} (kwok) and {REAL_NS} (the real node)")
    demo.kubectl("create", "namespace", demo.NAMESPACE, check=False)
    realpods.create_namespace(kube, REAL_NS)
    storage_uri = realpods.create_model_volume(kube, REAL_NS, 100, MODELS)

    demo.say("the operator (on the host, watching both namespaces)")
    host, http_port = realpods.gateway_port()
    control_port = procs.free_port()
    demo.start_process(
        "operator",
        [str(demo.VENV_BIN / "tideserve"), "run", "--bind", "127.0.0.1"],
        env
        | {
            "TIDESERVE_TICK_SECONDS": "1",
            "TIDESERVE_WATCH_NAMESPACES": f"{demo.NAMESPACE},{REAL_NS}",
            "TIDESERVE_ACTIVATOR_URL": f"http://{host}:{control_port}",
            "TIDESERVE_ACTIVATOR_SERVICE": f"{REAL_NS}/activator",
            "TIDESERVE_METRICS_PORT": str(procs.free_port()),
            "TIDESERVE_HEALTH_PORT": str(procs.free_port()),
        },
    )
    realpods.publish_activator(kube, REAL_NS, host, http_port)

    demo.say("example InferenceServices on kwok nodes; 'tiny' on the real node")
    for example in ("01-cpu-model.yaml", "02-gpu-model.yaml", "03-night-off-schedule.yaml"):
        print(demo.kubectl("apply", "-n", demo.NAMESPACE, "-f", str(demo.REPO / "examples" /
                                                                     example)), end="")  # fmt: skip
    kube.apply(tiny(storage_uri))
    demo.wait("the predictor Service", lambda: _cluster_ip(kube, f"{demo.ENDPOINT}-predictor"), 60)

    demo.say("the activator (on the host, reached through its Service)")
    predictor = _cluster_ip(kube, f"{demo.ENDPOINT}-predictor")
    demo.start_process(
        "activator",
        [str(demo.VENV_BIN / "tideserve"), "activator", "--host", host,
         "--http-port", str(http_port), "--grpc-port", "0",
         "--control-port", str(control_port), "--namespace", REAL_NS,
         "--upstream", f"{REAL_NS}/{demo.ENDPOINT}=http://{predictor}:8000"],
        env,
    )  # fmt: skip
    url = f"http://{_cluster_ip(kube, demo.ENDPOINT)}:8000"
    print(f"    the endpoint's Service: {url}")
    # The route goes to the activator once the operator has seen its Service and kube-proxy
    # has programmed it: until then a connection is refused.
    demo.wait("the Service to accept connections", lambda: _connects(url), 60)
    demo.say("the first request through the Service wakes the endpoint (it starts at zero)")
    began = time.monotonic()
    status, body = demo.infer(url, 180, REAL_NS)
    print(f"    answered {status} after {time.monotonic() - began:.1f} s: {body}")
    print(demo.kubectl("get", "pods", "-n", REAL_NS, "-o", "wide"))

    demo.say("load: 24 clients for 40 s through the Service -> queue grows, real pods follow")
    loader = threading.Thread(
        target=demo.load, args=(url, 40, 24, REAL_NS), daemon=True
    )  # fmt: skip
    loader.start()
    demo.watch(prom_url, 42, namespace=REAL_NS)
    loader.join()
    print(demo.kubectl("get", "pods", "-n", REAL_NS, "-o", "wide"))

    demo.say("load stops -> scale down after the stable window, to zero after 20 s idle")
    demo.watch(prom_url, 150, lambda s: s["replicas"] == 0 and s["ready"] == 0, REAL_NS)
    demo.wait("no pod left on the real node", lambda: not _pods(kube), 90)

    demo.say("a request at zero goes to the activator: held, a pod starts, it is answered")
    result: dict[str, Any] = {}

    def one_request() -> None:
        t0 = time.monotonic()
        try:
            result["status"], result["body"] = demo.infer(url, 180, REAL_NS)
        except urllib.error.HTTPError as error:
            result["status"], result["body"] = error.code, error.read().decode()
        result["seconds"] = time.monotonic() - t0

    requester = threading.Thread(target=one_request, daemon=True)
    requester.start()
    demo.watch(prom_url, 180, lambda s: "status" in result, REAL_NS)
    requester.join(timeout=180)
    if result.get("status") != 200:
        raise SystemExit(f"demo: the request held at zero was not answered: {result}")
    print(f"    answered {result['status']} after {result['seconds']:.1f} s: {result['body']}")
    print(demo.kubectl("get", "pods", "-n", REAL_NS, "-o", "wide"))

    demo.say(f"done in {time.monotonic() - started:.0f} s; everything is still running")
    print(f"    export KUBECONFIG={env['KUBECONFIG']}")
    print(f"    kubectl get tisvc -A; kubectl logs -n {REAL_NS} -l "
          f"serving.tideserve.io/inferenceservice={demo.ENDPOINT}")  # fmt: skip
    print(f"    logs: {demo.demo_dir()}/operator.log, {demo.demo_dir()}/activator.log")
    print("    stop everything: hack/demo down")
    return 0


def _cluster_ip(kube: fixtures.Kube, service: str) -> str | None:
    try:
        return realpods.cluster_ip(kube, REAL_NS, service)
    except AssertionError:  # not created yet
        return None


def _connects(url: str) -> bool:
    host, _, port = url.removeprefix("http://").partition(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def _pods(kube: fixtures.Kube) -> list[Any]:
    items: list[Any] = kube.get_json("pods", "-n", REAL_NS)["items"]
    return items


def clean_up() -> None:
    """What up() left outside the test bed's state dir (the model copy)."""
    shutil.rmtree(MODELS, ignore_errors=True)  # the real node goes with `hack/cluster down`
