"""etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback.

The same start-up as envtest (real binaries, generated certificates) plus kwok,
which plays the kubelets of the fake nodes in hack/testbed/nodes.yaml.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import pathlib
import ssl
import subprocess
from typing import Any

from tideserve_testbed import certs, procs

NODES_FILE = procs.REPO / "hack" / "testbed" / "nodes.yaml"
ORDER = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
CONTEXT = "tideserve-local"


def kubeconfig_text(d: pathlib.Path, user: str, port: int) -> str:
    def b64(name: str) -> str:
        return base64.b64encode((d / "pki" / name).read_bytes()).decode()

    return f"""apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {b64("ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(user + ".crt")}
    client-key-data: {b64(user + ".key")}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {user}
    namespace: default
current-context: {CONTEXT}
"""


def kubeconfig_path(d: pathlib.Path | None = None) -> pathlib.Path:
    return (d or procs.state_dir()) / "kubeconfig"


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Request
    verbs: ["create", "update", "patch"]
    resources:
      - group: apps
        resources: ["deployments", "deployments/scale"]
  - level: None
"""


def audit_log(d: pathlib.Path) -> pathlib.Path:
    return d / "logs" / "audit.log"


def _audit_flags(d: pathlib.Path) -> list[str]:
    """With TIDESERVE_AUDIT_DEPLOYMENTS=1 (hack/chaos), the API server logs every write to
    a Deployment or its scale with its body and field manager: who set replicas."""
    if os.environ.get("TIDESERVE_AUDIT_DEPLOYMENTS") != "1":
        return []
    policy = d / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    return [f"--audit-policy-file={policy}", f"--audit-log-path={audit_log(d)}"]


def _apiserver_address(advertise: str | None) -> list[str]:
    """Loopback only, unless pods must reach the API server (a real node): then it also
    listens beyond loopback and advertises the node's bridge address, which the API
    server publishes as the endpoint of the `kubernetes` Service (10.96.0.1:443), so pods
    reach it through kube-proxy with their in-cluster config, as in any cluster."""
    if advertise is None:
        # Endpoints may not hold a loopback address, so do not publish one.
        return ["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none"]  # fmt: skip
    return ["--bind-address=0.0.0.0", f"--advertise-address={advertise}",
            "--endpoint-reconciler-type=lease"]  # fmt: skip


def _commands(
    d: pathlib.Path, ports: dict[str, int], advertise: str | None
) -> dict[str, list[str]]:
    b, pki = procs.BIN_DIR, d / "pki"
    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"

    def component_kubeconfig(name: str) -> list[str]:
        k = str(d / f"{name}.kubeconfig")
        return [f"--kubeconfig={k}", f"--authentication-kubeconfig={k}",
                f"--authorization-kubeconfig={k}"]  # fmt: skip

    return {
        # Plain HTTP on loopback, no fsync: throwaway test data, fast start.
        "etcd": [
            str(b / "etcd"), "--name=default", f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
        ],
        "kube-apiserver": [
            str(b / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            *_apiserver_address(advertise),
            f"--secure-port={ports['kube-apiserver']}", f"--cert-dir={d / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}", f"--client-ca-file={pki / 'ca.crt'}",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--authorization-mode=Node,RBAC",
            # PodNodeSelector and PodTolerationRestriction let a namespace opt into the
            # real node (node.opt_in_annotations); namespaces without them are unaffected.
            "--enable-admission-plugins=NodeRestriction,PodSecurity,PodNodeSelector,"
            "PodTolerationRestriction",
            # kubectl logs/exec on the real node: reach its kubelet at its InternalIP.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={certs.SERVICE_IP.rsplit('.', 2)[0]}.0.0/16",
            *_audit_flags(d),
            # Aggregated APIs (KEDA's external metrics, keda.py) are reached at their
            # Service's endpoint address, not its ClusterIP: nothing routes ClusterIPs
            # on a test bed without kube-proxy.
            "--enable-aggregator-routing=true",
        ],
        "kube-controller-manager": [
            str(b / "kube-controller-manager"), *component_kubeconfig("controller-manager"),
            "--bind-address=127.0.0.1", f"--secure-port={ports['kube-controller-manager']}",
            f"--tls-cert-file={pki / 'controller-manager-serving.crt'}",
            f"--tls-private-key-file={pki / 'controller-manager-serving.key'}",
            "--leader-elect=false",
            "--controllers=*,-service-lb-controller,-node-route-controller,"
            "-cloud-node-lifecycle-controller",
            "--use-service-account-credentials=true",
            # Client-side rate limits, not the API server, pace the controllers' start-up.
            "--kube-api-qps=200", "--kube-api-burst=400",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
        ],
        "kube-scheduler": [
            str(b / "kube-scheduler"), *component_kubeconfig("scheduler"),
            "--bind-address=127.0.0.1", f"--secure-port={ports['kube-scheduler']}",
            f"--tls-cert-file={pki / 'scheduler-serving.crt'}",
            f"--tls-private-key-file={pki / 'scheduler-serving.key'}",
            "--leader-elect=false",
        ],
        # Default stages: nodes become Ready and keep leases; scheduled pods become
        # Running/Ready; deleted pods go away. An empty --config keeps ~/.kwok out.
        "kwok": [
            str(b / "kwok"), f"--config={d / 'kwok.yaml'}",
            f"--kubeconfig={d / 'kwok.kubeconfig'}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40", "--cidr=10.244.0.1/16",
        ],
    }  # fmt: skip


class Api:
    """Minimal HTTPS client for readiness checks (kubectl would cost ~0.3s per call)."""

    def __init__(self, d: pathlib.Path, port: int) -> None:
        self.base = f"https://127.0.0.1:{port}"
        self.ctx = ssl.create_default_context(cafile=str(d / "pki" / "ca.crt"))
        self.ctx.load_cert_chain(str(d / "pki" / "admin.crt"), str(d / "pki" / "admin.key"))

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        return procs.http_get(self.base + path, timeout, self.ctx)

    def get_url(self, url: str) -> tuple[int, bytes]:
        """GET another loopback component whose serving cert our CA signed."""
        return procs.http_get(url, 2.0, self.ctx)

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        return json.loads(body) if status == 200 else None


def ready_nodes(api: Api) -> set[str]:
    data = api.json("/api/v1/nodes") or {"items": []}
    out = set()
    for n in data["items"]:
        conds = {c["type"]: c["status"] for c in n.get("status", {}).get("conditions", [])}
        if conds.get("Ready") == "True":
            out.add(n["metadata"]["name"])
    return out


def node_names() -> list[str]:
    return [
        line.split(":", 1)[1].strip()
        for line in NODES_FILE.read_text().splitlines()
        if line.startswith("      name: ")
    ]


def kubectl(d: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(procs.BIN_DIR / "kubectl"), f"--kubeconfig={kubeconfig_path(d)}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _prepare(d: pathlib.Path, state: dict[str, Any]) -> dict[str, int]:
    certs.ensure(d / "pki")
    ports: dict[str, int] = state.setdefault("ports", {})
    for name in (
        "etcd",
        "etcd-peer",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ):
        ports.setdefault(name, procs.free_port())
    port = ports["kube-apiserver"]
    for user, fname in (("admin", "kubeconfig"), ("controller-manager", "controller-manager"),
                        ("scheduler", "scheduler"), ("kwok", "kwok"),
                        ("kubelet", "kubelet"), ("kube-proxy", "kube-proxy")):  # fmt: skip
        path = d / (fname if fname == "kubeconfig" else f"{fname}.kubeconfig")
        path.write_text(kubeconfig_text(d, user, port))
        path.chmod(0o600)
    (d / "kwok.yaml").write_text(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"
    )
    return ports


def up(
    d: pathlib.Path, state: dict[str, Any], timeout: float = 120.0, advertise: str | None = None
) -> list[str]:
    """Start what is not running; return names of the components (re)started. advertise:
    the address pods reach the API server at (the real node's bridge), None for none;
    recorded, so that a restart (hack/chaos) keeps it."""
    ports = _prepare(d, state)
    if advertise is not None:
        state["advertise"] = advertise
    cmds = _commands(d, ports, state.get("advertise"))
    comps: dict[str, Any] = state.setdefault("components", {})
    started = []
    api = Api(d, ports["kube-apiserver"])
    for name in ORDER:
        old = comps.get(name)
        if procs.alive(old):
            continue
        if old:  # recorded but gone: it crashed (or was killed) since the last `up`
            procs.log(f"{name} (pid {old['pid']}) is not running; its log ends with:")
            print(procs.tail(old["log"]), flush=True)
        procs.log(f"starting {name}")
        proc = procs.start(name, cmds[name], d / "logs" / f"{name}.log")
        comps[name] = proc
        started.append(name)
        procs.write_json(d / "state.json", state)
        if name == "etcd":
            procs.wait_for(
                "etcd", lambda: _http_ok(f"http://127.0.0.1:{ports['etcd']}/health"), 30, proc
            )
        elif name == "kube-apiserver":
            procs.wait_for("kube-apiserver /readyz", api.ready, timeout, proc)
            procs.log("kube-apiserver ready")
    for name in ("kube-controller-manager", "kube-scheduler"):
        if name in started:  # a bad flag or a taken port shows here, not minutes later
            url = f"https://127.0.0.1:{ports[name]}/healthz"
            check = functools.partial(_ok, api, url)
            procs.wait_for(f"{name} /healthz", check, 30, comps[name])
    _check_alive(comps)
    wanted = set(node_names())
    if not wanted <= {n["metadata"]["name"] for n in (api.json("/api/v1/nodes") or {})["items"]}:
        procs.log("creating the kwok nodes")
        res = kubectl(d, "apply", "-f", str(NODES_FILE))
        if res.returncode != 0:
            raise procs.StartupError(f"kubectl apply nodes failed:\n{res.stderr}")
    procs.wait_for(
        f"nodes Ready ({', '.join(sorted(wanted))})",
        lambda: wanted <= ready_nodes(api),
        timeout,
        comps["kwok"],
    )
    procs.log("nodes Ready")
    # Pods are rejected until the controller-manager has created the namespace's
    # default ServiceAccount; wait for it so the cluster is usable as soon as `up` returns.
    procs.wait_for(
        "default ServiceAccount",
        lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
        timeout,
        comps["kube-controller-manager"],
    )
    _check_alive(comps)  # e.g. the scheduler, which nothing above waits on
    return started


def _check_alive(comps: dict[str, Any]) -> None:
    for name in ORDER:
        if not procs.alive(comps[name]):
            raise procs.StartupError(
                f"{name} exited; last log lines:\n{procs.tail(comps[name]['log'])}"
            )


def _ok(api: Api, url: str) -> bool:
    return api.get_url(url)[0] == 200


def _http_ok(url: str) -> bool:
    return procs.http_get(url, 1.0)[0] == 200


def status(d: pathlib.Path, state: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    comps = state.get("components", {})
    for name in ORDER:
        proc = comps.get(name)
        if proc is None:
            rows.append((name, "not started"))
        elif procs.alive(proc):
            rows.append((name, f"running (pid {proc['pid']})"))
        else:
            rows.append((name, f"DEAD (pid {proc['pid']}); log: {proc['log']}"))
    if procs.alive(comps.get("kube-apiserver")):
        api = Api(d, state["ports"]["kube-apiserver"])
        try:
            ok = api.ready()
            ready = ready_nodes(api)
            rows.append(("api /readyz", "ok" if ok else "NOT READY"))
            rows.append(("nodes Ready", f"{len(ready)}/{len(node_names())}: {sorted(ready)}"))
        except OSError as e:
            rows.append(("api /readyz", f"unreachable: {e}"))
    return rows


def healthy(d: pathlib.Path, state: dict[str, Any]) -> bool:
    comps = state.get("components", {})
    if not all(procs.alive(comps.get(n)) for n in ORDER):
        return False
    try:
        api = Api(d, state["ports"]["kube-apiserver"])
        return api.ready() and set(node_names()) <= ready_nodes(api)
    except (OSError, KeyError):
        return False


def down(state: dict[str, Any]) -> None:
    comps = state.get("components", {})
    for name in reversed(ORDER):
        if procs.alive(comps.get(name)):
            procs.log(f"stopping {name} (pid {comps[name]['pid']})")
            procs.stop(comps[name])
