"""Real KEDA (operator + metrics adapter) on the test bed, started on demand (stdlib only).

Both are the upstream binaries built by `hack/build-tools keda`, run as processes with the
admin kubeconfig (as kwok is). The adapter serves external.metrics.k8s.io to the real HPA
controller in kube-controller-manager through the aggregation layer: an APIService backed
by a selectorless Service whose EndpointSlice names the adapter's address. The API server
runs with --enable-aggregator-routing (it dials that address, not the ClusterIP), and an
EndpointSlice may not hold a loopback address, so the adapter listens on the host end of a
veth pair into a network namespace created here (10.250.N.1/30): the only non-loopback
address involved, and traffic to it never leaves the machine.

The operator serves KEDA's gRPC metrics service on loopback; the adapter is its client.
Both use one certificate from a CA of their own (KEDA checks client certificates), which
the APIService's caBundle also trusts. `down` deletes the APIService first (a dead
aggregated API stalls discovery and namespace deletion), clears the finalizers of any
ScaledObject left behind, then stops the processes and removes the veth and netns.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

from tideserve_testbed import certs, controlplane, procs

NAMESPACE = "keda"
APISERVICE = "v1beta1.external.metrics.k8s.io"
SERVICE = "keda-metrics-apiserver"
OPERATOR_AUTHORITY = f"keda-operator.{NAMESPACE}.svc.cluster.local"
BINARIES = ("keda-operator", "keda-adapter")
SUBNET_PREFIX = "10.250"  # clear of the service (10.96/16), kwok (10.244/16), CNI (10.88/16)


def keda_dir(d: pathlib.Path) -> pathlib.Path:
    return d / "keda"


def crds_dir() -> pathlib.Path:
    """KEDA's CRDs as build-tools copied them beside the binaries (same version)."""
    return pathlib.Path(os.path.realpath(procs.BIN_DIR / "keda-operator")).parent / "crds"


def _state_path(d: pathlib.Path) -> pathlib.Path:
    return keda_dir(d) / "state.json"


def state(d: pathlib.Path) -> dict[str, Any]:
    return procs.read_json(_state_path(d))


def running(d: pathlib.Path) -> bool:
    st = state(d)
    return bool(st) and all(procs.alive(st.get(b)) for b in BINARIES)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise procs.StartupError(f"ip {' '.join(args)} failed: {res.stderr.strip()}")
    return res


def _network(d: pathlib.Path) -> dict[str, str]:
    """A netns and a veth pair named after the state dir; the host end's address is the
    first 10.250.N.1 that no interface on this machine holds yet."""
    tag = hashlib.sha256(str(d).encode()).hexdigest()[:8]
    net = {"netns": f"tskeda-{tag}", "host_if": f"tkh{tag}", "peer_if": f"tkn{tag}"}
    used = _ip("-o", "-4", "addr", "show").stdout
    start = int(tag[:2], 16)
    for i in range(256):
        n = (start + i) % 256
        if f" {SUBNET_PREFIX}.{n}.1/" not in used:
            net["host_ip"], net["peer_ip"] = f"{SUBNET_PREFIX}.{n}.1", f"{SUBNET_PREFIX}.{n}.2"
            break
    else:
        raise procs.StartupError(f"no free {SUBNET_PREFIX}.N.0/30 for KEDA's netns")
    _ip("netns", "add", net["netns"])
    _ip("link", "add", net["host_if"], "type", "veth", "peer", "name", net["peer_if"],
        "netns", net["netns"])  # fmt: skip
    _ip("addr", "add", f"{net['host_ip']}/30", "dev", net["host_if"])
    _ip("link", "set", net["host_if"], "up")
    _ip("-n", net["netns"], "addr", "add", f"{net['peer_ip']}/30", "dev", net["peer_if"])
    _ip("-n", net["netns"], "link", "set", net["peer_if"], "up")
    return net


def _remove_network(st: dict[str, Any]) -> None:
    net = st.get("network") or {}
    if net.get("host_if"):
        _ip("link", "del", net["host_if"], check=False)  # removes both ends
    if net.get("netns"):
        _ip("netns", "del", net["netns"], check=False)
    if "netns_dir" in st:
        procs.restore_netns_dir(st["netns_dir"])


def kubectl(d: pathlib.Path, *args: str, stdin: str | None = None) -> str:
    """kubectl against the test bed in d: its stdout; StartupError on failure or after 60 s."""
    cmd = [str(procs.BIN_DIR / "kubectl"), f"--kubeconfig={controlplane.kubeconfig_path(d)}"]
    try:
        res = subprocess.run(
            [*cmd, *args], input=stdin, capture_output=True, text=True, check=False, timeout=60
        )
    except subprocess.TimeoutExpired:
        raise procs.StartupError(f"kubectl {' '.join(args)} timed out") from None
    if res.returncode != 0:
        raise procs.StartupError(f"kubectl {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout


def _manifests(net: dict[str, str], port: int, ca_pem: str) -> list[dict[str, Any]]:
    return external_metrics_manifests(NAMESPACE, SERVICE, net["host_ip"], port, ca_pem)


def external_metrics_manifests(
    namespace: str, service: str, address: str, port: int, ca_pem: str
) -> list[dict[str, Any]]:
    """An external-metrics adapter listening on the host at address:port, as the API server
    reaches it: a namespace, a selectorless Service, its EndpointSlice, the APIService."""
    meta = {"namespace": namespace, "name": service}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {**meta, "labels": {
             "kubernetes.io/service-name": service,
             "endpointslice.kubernetes.io/managed-by": "tideserve-testbed"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": APISERVICE},
         "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                  "groupPriorityMinimum": 100, "versionPriority": 100,
                  "caBundle": base64.b64encode(ca_pem.encode()).decode(),
                  "service": {"namespace": namespace, "name": service, "port": 443}}},
    ]  # fmt: skip


def _commands(d: pathlib.Path, net: dict[str, str], ports: dict[str, int]) -> dict[str, list[str]]:
    k, tls = str(controlplane.kubeconfig_path(d)), keda_dir(d) / "certs"
    return {
        "keda-operator": [
            str(procs.BIN_DIR / "keda-operator"), "--leader-elect=false",
            f"--metrics-bind-address=127.0.0.1:{ports['operator-metrics']}",
            f"--health-probe-bind-address=127.0.0.1:{ports['operator-probe']}",
            f"--metrics-service-bind-address=127.0.0.1:{ports['grpc']}",
            f"--cert-dir={tls}", f"--ca-dir={keda_dir(d) / 'custom-ca'}",
            "--enable-webhook-patching=false", "--enable-apiservice-patching=false",
            f"--kubeconfig={k}",
        ],
        "keda-adapter": [
            str(procs.BIN_DIR / "keda-adapter"),
            f"--bind-address={net['host_ip']}", f"--secure-port={ports['adapter']}",
            f"--cert-dir={tls}", f"--tls-cert-file={tls / 'tls.crt'}",
            f"--tls-private-key-file={tls / 'tls.key'}", f"--port={ports['adapter-metrics']}",
            f"--metrics-service-address=127.0.0.1:{ports['grpc']}",
            f"--metrics-service-grpc-authority={OPERATOR_AUTHORITY}",
            f"--lister-kubeconfig={k}", f"--authentication-kubeconfig={k}",
            f"--authorization-kubeconfig={k}", f"--kubeconfig={k}",
        ],
    }  # fmt: skip


def apiservice_available(d: pathlib.Path) -> bool:
    """Whether the external-metrics APIService is registered and Available."""
    try:
        out = json.loads(kubectl(d, "get", "apiservice", APISERVICE, "-o", "json"))
    except (procs.StartupError, json.JSONDecodeError):
        return False
    conds = out.get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conds)


def up(d: pathlib.Path, timeout: float = 120.0) -> dict[str, Any]:
    """Start KEDA against the running test bed in d; return its state. Raises if running."""
    missing = [b for b in BINARIES if not os.access(procs.BIN_DIR / b, os.X_OK)]
    if missing or not crds_dir().is_dir():
        raise procs.StartupError(f"KEDA not built ({missing or 'crds'}): run hack/build-tools keda")
    if running(d):
        raise procs.StartupError(f"KEDA already runs for this test bed ({_state_path(d)})")
    down(d)  # whatever a crashed run left
    st: dict[str, Any] = {"netns_dir": procs.netns_dir_state()}
    st["network"] = _network(d)
    procs.write_json(_state_path(d), st)
    net = st["network"]
    kd = keda_dir(d)
    dns = ",".join(f"DNS:{n}" for n in (OPERATOR_AUTHORITY, f"{SERVICE}.{NAMESPACE}.svc"))
    shutil.rmtree(kd / "certs", ignore_errors=True)  # the host address may differ this time
    certs.issue_own_ca(kd / "certs", "tideserve-keda-ca", {
        "tls": ("/CN=keda", "serverAuth,clientAuth", f"{dns},IP:127.0.0.1,IP:{net['host_ip']}"),
    })  # fmt: skip
    (kd / "custom-ca").mkdir(exist_ok=True)
    names = ("operator-metrics", "operator-probe", "grpc", "adapter", "adapter-metrics")
    ports = st["ports"] = {p: procs.free_port() for p in names}
    apply = ("apply", "--server-side", "--force-conflicts", "-f")
    kubectl(d, *apply, str(crds_dir()))
    items = _manifests(net, ports["adapter"], (kd / "certs" / "ca.crt").read_text())
    kubectl(d, *apply, "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    env = {
        **os.environ, "KUBECONFIG": str(controlplane.kubeconfig_path(d)), "WATCH_NAMESPACE": "",
        "POD_NAMESPACE": NAMESPACE, "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
    }  # fmt: skip
    for name, cmd in _commands(d, net, ports).items():
        procs.log(f"starting {name}")
        st[name] = procs.start(name, cmd, kd / "logs" / f"{name}.log", env=env, cwd=kd)
        procs.write_json(_state_path(d), st)
    probe = f"http://127.0.0.1:{ports['operator-probe']}/readyz"
    procs.wait_for("keda-operator /readyz", lambda: procs.http_get(probe)[0] == 200, timeout,
                   st["keda-operator"])  # fmt: skip
    procs.wait_for(f"APIService {APISERVICE} Available", lambda: apiservice_available(d),
                   timeout, st["keda-adapter"])  # fmt: skip
    procs.log("KEDA ready")
    return st


def down(d: pathlib.Path) -> None:
    """Undo up (also after a crash): APIService, ScaledObject finalizers, processes, net."""
    st = state(d)
    if not st:
        return
    with contextlib.suppress(procs.StartupError):
        kubectl(d, "delete", "apiservice", APISERVICE, "--ignore-not-found", "--wait=false")
    with contextlib.suppress(procs.StartupError, json.JSONDecodeError):
        left = json.loads(kubectl(d, "get", "scaledobjects.keda.sh", "-A", "-o", "json"))
        for item in left["items"]:
            m = item["metadata"]
            kubectl(d, "patch", "scaledobjects.keda.sh", "-n", m["namespace"], m["name"],
                     "--type=merge", "-p", '{"metadata":{"finalizers":null}}')  # fmt: skip
    for name in reversed(BINARIES):
        if procs.alive(st.get(name)):
            procs.log(f"stopping {name} (pid {st[name]['pid']})")
            procs.stop(st[name])
    _remove_network(st)
    _state_path(d).unlink(missing_ok=True)


@contextlib.contextmanager
def started(d: pathlib.Path | None = None) -> Iterator[dict[str, Any]]:
    """KEDA for the duration of the block, stopped and cleaned up afterwards."""
    d = d or procs.state_dir()
    st = up(d)
    try:
        yield st
    finally:
        down(d)
