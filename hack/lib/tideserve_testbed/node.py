"""One real node beside the kwok nodes: containerd + runc + CNI bridge + kubelet + kube-proxy,
CoreDNS as the cluster DNS, and a device plugin that gives it GPU identities (DEVICES).

Pods scheduled here really run (images imported by images.py, never pulled). The node
is tainted so that no test's pod lands on it by accident: a namespace opts in with
`opt_in_annotations()` (the API server's PodNodeSelector and PodTolerationRestriction
admission plugins add the node selector and the toleration to its pods).

Everything lives under <state>/node except what the kernel holds machine-wide: the
bridge, kube-proxy's nftables tables, sysctls, cgroups and mounts. `down` removes each
of those and restores the sysctls it found; only one real node per machine (one
kube-proxy owns the service rules), claimed in CLAIM.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import socket as socket_lib
import subprocess
import sys
import time
from typing import Any

from tideserve_testbed import certs, controlplane, images, procs

NAME = "real-0"
BRIDGE = "tsnode0"
SUBNET = "10.88.0.0/16"
GATEWAY = "10.88.0.1"  # the bridge's address: the node's InternalIP, the pods' gateway
SERVICE_CIDR = f"{certs.SERVICE_IP.rsplit('.', 2)[0]}.0.0/16"
TAINT_KEY = "tideserve.dev/real-node"
NODE_LABEL = "tideserve.dev/node"
KUBELET_PORT = 10250
PROXY_HEALTHZ_PORT = 10256
PROXY_METRICS_PORT = 10249
CLAIM = pathlib.Path("/run/tideserve/real-node.json")
# containerd's content store and unpacked images, kept across `up`s like the built tools
# (importing and deleting ~1 GB of layers costs a minute); one real node per machine.
IMAGE_ROOT = procs.CACHE / "node" / "containerd-root"
ORDER = ["containerd", "kubelet", "device-plugin", "kube-proxy", "coredns", "pod-sd"]
# GPU identities the node advertises through its device plugin (hack/tools/deviceplugin):
# GPU and MIG replicas are scheduled, admitted and allocated devices here for real, and
# run on CPU. No product label: a request naming a GPU product still goes to kwok nodes.
DEVICES = {"nvidia.com/gpu": 2, "nvidia.com/mig-1g.10gb": 2}
# The kubelet's device plugin socket directory, fixed whatever its --root-dir.
KUBELET_VAR = pathlib.Path("/var/lib/kubelet")
DEVICE_PLUGINS = KUBELET_VAR / "device-plugins"
DNS_DOMAIN = "cluster.local"
# What the kubelet and kube-proxy may change; restored on `down` to what `up` found.
SYSCTLS = [
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
]
# Kernel features the node needs, each named so that a missing one says what it is.
KERNEL = {
    "overlayfs (containerd's snapshotter)": "/sys/module/overlay",
    "cgroup v1 memory controller": "/sys/fs/cgroup/memory",
    "cgroup v1 cpu controller": "/sys/fs/cgroup/cpu",
    "cgroup v1 pids controller": "/sys/fs/cgroup/pids",
    "network namespaces": "/proc/self/ns/net",
    "bridge netfilter (br_netfilter)": "/proc/sys/net/bridge/bridge-nf-call-iptables",
}
PACKAGES = {  # binary -> Debian package (hack/lib/bootstrap.sh installs them)
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "nft": "nftables",
    "ip": "iproute2",
}


def node_dir(d: pathlib.Path) -> pathlib.Path:
    return d / "node"


def socket(d: pathlib.Path) -> pathlib.Path:
    return node_dir(d) / "containerd" / "containerd.sock"


def opt_in_annotations() -> dict[str, str]:
    """Namespace annotations that put every pod of the namespace on the real node."""
    toleration = [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "scheduler.alpha.kubernetes.io/node-selector": f"{NODE_LABEL}=real",
        "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(toleration),
    }


def enabled() -> bool:
    return os.environ.get("TIDESERVE_REAL_NODE", "1") != "0"


def preflight() -> None:
    """Fail loudly, naming the missing piece, instead of a node that never gets Ready."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the real node needs root (containerd, mounts, netns, nftables)")
    for feature, path in KERNEL.items():
        if not os.path.exists(path):
            problems.append(f"kernel feature missing: {feature} ({path} not found)")
    for binary, package in PACKAGES.items():
        if shutil.which(binary) is None:
            problems.append(f"{binary} not found (Debian package {package}; hack/lib/bootstrap.sh)")
    if not pathlib.Path("/usr/lib/cni/bridge").exists():
        problems.append("CNI plugins not found in /usr/lib/cni (containernetworking-plugins)")
    if _listening(DEVICE_PLUGINS / "kubelet.sock") and not _running_here():
        # The kubelet's device plugin directory is fixed: another kubelet on this machine
        # (a self-hosted runner that is itself a node) would lose its plugins' sockets.
        problems.append(f"another kubelet serves {DEVICE_PLUGINS}/kubelet.sock on this machine")
    if problems:
        raise procs.StartupError(
            "real node: " + "; ".join(problems) + " (TIDESERVE_REAL_NODE=0 starts without it)"
        )


def _listening(path: pathlib.Path) -> bool:
    """A unix socket someone accepts on (a dead kubelet's leftover is not)."""
    if not path.exists():
        return False
    with socket_lib.socket(socket_lib.AF_UNIX, socket_lib.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(str(path)) == 0


def _running_here() -> bool:
    """Whether this machine's real node (the claim's test bed) is up: its kubelet owns
    the device plugin directory."""
    owner = procs.read_json(CLAIM).get("state_dir")
    return bool(owner) and _running(pathlib.Path(owner))


def _claim(d: pathlib.Path) -> None:
    owner = procs.read_json(CLAIM).get("state_dir")
    if owner and owner != str(d) and _running(pathlib.Path(owner)):
        raise procs.StartupError(
            f"real node: the test bed in {owner} runs this machine's real node (one kube-proxy "
            "per machine); take it down (TIDESERVE_CLUSTER_DIR=... hack/cluster down) or start "
            "this one with TIDESERVE_REAL_NODE=0"
        )
    if owner and owner != str(d):
        # A stale claim (its test bed died without `down`): keep what it found before it
        # changed anything, so our `down` restores the machine as it was then.
        procs.write_json(CLAIM, procs.read_json(CLAIM) | {"state_dir": str(d)})
    elif not owner:
        sysctls = {k: _sysctl(k) for k in SYSCTLS}
        var_log = {p: os.path.exists(p) for p in ("/var/log/containers", "/run/containerd",
                                                  "/run/netns", str(KUBELET_VAR),
                                                  str(DEVICE_PLUGINS))}  # fmt: skip
        var_log["/run/netns mounted"] = procs.is_mount_point(procs.NETNS_DIR)
        procs.write_json(CLAIM, {"state_dir": str(d), "sysctls": sysctls, "existed": var_log,
                                 "nft_tables": [list(t) for t in _nft_tables()]})  # fmt: skip


def _nft() -> list[dict[str, Any]]:
    out = _run("nft", "-j", "list", "ruleset", check=False).stdout
    items: list[dict[str, Any]] = json.loads(out)["nftables"] if out.strip() else []
    return items


def _nft_tables() -> set[tuple[str, str]]:
    return {(i["table"]["family"], i["table"]["name"]) for i in _nft() if "table" in i}


def _remove_kube_chains(before: set[tuple[str, str]]) -> None:
    """The kubelet's iptables(-nft) chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...):
    kube-proxy --cleanup leaves them. A table that did not exist before `up` and holds a
    KUBE-* chain goes whole; in an older table only the KUBE-* chains and jumps to them."""
    items = _nft()
    chains = [i["chain"] for i in items if "chain" in i]
    kube_tables = {(c["family"], c["table"]) for c in chains if c["name"].startswith("KUBE-")}
    for family, table in sorted(kube_tables - before):
        _run("nft", "delete", "table", family, table, check=False)
    for rule in (i["rule"] for i in items if "rule" in i):
        if (rule["family"], rule["table"]) not in kube_tables & before:
            continue
        if any(str(e.get("jump", {}).get("target", "")).startswith("KUBE-")
               for e in rule.get("expr", [])):  # fmt: skip
            _run("nft", "delete", "rule", rule["family"], rule["table"], rule["chain"],
                 "handle", str(rule["handle"]), check=False)  # fmt: skip
    for c in chains:
        if (c["family"], c["table"]) in before and c["name"].startswith("KUBE-"):
            _run("nft", "flush", "chain", c["family"], c["table"], c["name"], check=False)
            _run("nft", "delete", "chain", c["family"], c["table"], c["name"], check=False)


def _running(d: pathlib.Path) -> bool:
    """Whether the test bed in d still runs any part of its real node (a crashed one's
    claim is stale: its sysctls and leftovers are restored by the next `down` there)."""
    comps = procs.read_json(d / "state.json").get("components", {})
    return any(procs.alive(comps.get(n)) for n in ORDER)


def _sysctl(key: str) -> str | None:
    try:
        return (pathlib.Path("/proc/sys") / key).read_text().strip()
    except OSError:
        return None


def _set_sysctl(key: str, value: str) -> None:
    with contextlib.suppress(OSError):
        (pathlib.Path("/proc/sys") / key).write_text(value)


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise procs.StartupError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc


def _bridge() -> None:
    if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = _run("ip", "-o", "addr", "show", "dev", BRIDGE).stdout
    if f" {GATEWAY}/" not in addrs:
        _run("ip", "addr", "add", f"{GATEWAY}/16", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    # Service traffic from the host goes to the bridge, never towards the default route,
    # even for a ClusterIP kube-proxy has not programmed yet. Gone with the bridge.
    _run("ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE)


def _containerd_config(nd: pathlib.Path) -> str:
    c = nd / "containerd"
    return f"""version = 2
root = "{IMAGE_ROOT}"
state = "{c / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{c / 'containerd.sock'}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / 'opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.ref('pause')}"
  # Root here lacks CAP_SYS_RESOURCE: lowering a score fails every sandbox otherwise.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{c / 'state' / 'runc'}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{nd / 'cni' / 'net.d'}"
"""


def _cni_config(nd: pathlib.Path) -> dict[str, Any]:
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
        "dataDir": str(nd / "cni" / "ipam"),
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    bridge = {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
              "hairpinMode": True, "ipam": ipam}  # fmt: skip
    return {"cniVersion": "0.4.0", "name": "tideserve", "plugins": [bridge]}


def _kubelet_config(d: pathlib.Path, nd: pathlib.Path) -> str:
    k = nd / "kubelet"
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{socket(d)}
address: {GATEWAY}
port: {KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {d / 'pki' / 'ca.crt'}}}
authorization: {{mode: Webhook}}
registerWithTaints:
- {{key: {TAINT_KEY}, value: "true", effect: NoSchedule}}
failSwapOn: false
# The test bed shares a small disk with everything else: never evict, never GC images
# (they were imported, not pulled, so a collected image could not come back).
evictionHard: {{memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%",
  nodefs.inodesFree: "1%", imagefs.inodesFree: "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: {k / 'pod-logs'}
resolvConf: ""
# The cluster DNS (CoreDNS on the bridge, _corefile): pods resolve Services by name.
clusterDNS: ["{GATEWAY}"]
clusterDomain: {DNS_DOMAIN}
maxPods: 40
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
rotateCertificates: false
serverTLSBootstrap: false
"""


def _proxy_config(d: pathlib.Path) -> str:
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {d / 'kube-proxy.kubeconfig'}}}
hostnameOverride: {NAME}
mode: nftables
clusterCIDR: {SUBNET}
bindAddress: {GATEWAY}
healthzBindAddress: 127.0.0.1:{PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:{PROXY_METRICS_PORT}
nodePortAddresses: ["{GATEWAY}/32"]
# It may not write nf_conntrack_max here: 0 leaves every conntrack setting alone.
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
# Masquerade service traffic so replies from a pod on the same bridge come back
# through the gateway (and its conntrack entry), whatever br_netfilter does.
nftables: {{masqueradeAll: true}}
"""


def _corefile(d: pathlib.Path, ready_port: int) -> str:
    """Services and pods by name from the API server, on the bridge only (pods' resolver);
    nothing outside the cluster domain is answered (no pod here needs the internet)."""
    return f"""{DNS_DOMAIN}:53 {{
    bind {GATEWAY}
    errors
    ready 127.0.0.1:{ready_port}
    cache 5
    kubernetes {DNS_DOMAIN} {{
        kubeconfig {controlplane.kubeconfig_path(d)} {controlplane.CONTEXT}
    }}
}}
"""


def _commands(d: pathlib.Path, nd: pathlib.Path, sd_port: int) -> dict[str, list[str]]:
    b = procs.BIN_DIR
    labels = f"{NODE_LABEL}=real,type=real,kubernetes.io/os=linux"
    return {
        "containerd": ["containerd", f"--config={nd / 'containerd' / 'config.toml'}",
                       "--log-level=warn"],
        "kubelet": [
            str(b / "kubelet"), f"--config={nd / 'kubelet' / 'config.yaml'}",
            f"--kubeconfig={d / 'kubelet.kubeconfig'}", f"--root-dir={nd / 'kubelet' / 'root'}",
            f"--hostname-override={NAME}", f"--node-ip={GATEWAY}", f"--node-labels={labels}",
            # Its self-signed serving certificate, by default in /var/lib/kubelet/pki.
            f"--cert-dir={nd / 'kubelet' / 'pki'}",
            "--v=1",
        ],
        "device-plugin": [str(b / "tideserve-device-plugin"),
                          f"--dir={DEVICE_PLUGINS}",
                          *(f"--resource={k}={v}" for k, v in DEVICES.items())],
        "kube-proxy": [str(b / "kube-proxy"), f"--config={nd / 'kube-proxy.yaml'}", "--v=1"],
        "coredns": [str(b / "coredns"), f"-conf={nd / 'Corefile'}"],
        # Prometheus's discovery of the node's pods (podsd.py).
        "pod-sd": [sys.executable, "-m", "tideserve_testbed.podsd", str(d), str(sd_port)],
    }  # fmt: skip


def _crictl(d: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(procs.BIN_DIR / "crictl"), f"--runtime-endpoint=unix://{socket(d)}",
           "--timeout=30s", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def up(d: pathlib.Path, state: dict[str, Any], api: controlplane.Api) -> list[str]:
    """Start the real node's parts that are not running; return the names started."""
    preflight()
    _claim(d)
    nd = node_dir(d)
    comps: dict[str, Any] = state.setdefault("components", {})
    for sub in ("containerd", "kubelet/root", "cni/net.d", "cni/ipam"):
        (nd / sub).mkdir(parents=True, exist_ok=True)
    _write(nd / "containerd" / "config.toml", _containerd_config(nd))
    _write(nd / "cni" / "net.d" / "10-tideserve.conflist", json.dumps(_cni_config(nd)))
    _write(nd / "kubelet" / "config.yaml", _kubelet_config(d, nd))
    _write(nd / "kube-proxy.yaml", _proxy_config(d))
    ports = state.setdefault("ports", {})
    _write(nd / "Corefile", _corefile(d, ports.setdefault("coredns-ready", procs.free_port())))
    _bridge()
    _set_sysctl("net/ipv4/ip_forward", "1")  # pod -> ClusterIP -> pod is routed back out
    cmds = _commands(d, nd, ports.setdefault("pod-sd", procs.free_port()))
    started = []
    for name in ORDER:
        if procs.alive(comps.get(name)):
            continue
        procs.log(f"starting {name} (real node {NAME})")
        env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).parent.parent))
        proc = procs.start(name, cmds[name], d / "logs" / f"{name}.log", env=env)
        comps[name] = proc
        started.append(name)
        procs.write_json(d / "state.json", state)
        if name == "containerd":
            procs.wait_for("containerd socket", lambda: _crictl(d, "info").returncode == 0,
                           30, proc)  # fmt: skip
            images.import_all(d, socket(d))
    if "containerd" not in started:  # an image rebuilt since (operator/ changed) goes in too
        images.import_all(d, socket(d))
    procs.wait_for(f"real node {NAME} Ready", lambda: NAME in controlplane.ready_nodes(api),
                   120, comps["kubelet"])  # fmt: skip
    procs.wait_for(
        f"real node {NAME} allocatable {', '.join(DEVICES)} (device plugin)",
        lambda: _advertised(api),
        60,
        comps["device-plugin"],
    )
    procs.wait_for(
        "kube-proxy /healthz",
        lambda: procs.http_get(f"http://127.0.0.1:{PROXY_HEALTHZ_PORT}/healthz", 1.0)[0] == 200,
        60,
        comps["kube-proxy"],
    )
    procs.wait_for(
        "CoreDNS /ready (its Service and EndpointSlice caches synced)",
        lambda: procs.http_get(f"http://127.0.0.1:{ports['coredns-ready']}/ready", 1.0)[0] == 200,
        60,
        comps["coredns"],
    )
    return started


def _write(path: pathlib.Path, text: str) -> None:
    """Only a changed file is written: kube-proxy exits when its config file is written
    ("content of the proxy server's configuration file was updated"), so rewriting the same
    text at a second `up` stopped a running node's kube-proxy."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _advertised(api: controlplane.Api) -> bool:
    node = api.json(f"/api/v1/nodes/{NAME}") or {}
    allocatable = node.get("status", {}).get("allocatable", {})
    return all(allocatable.get(k) == str(v) for k, v in DEVICES.items())


def healthy(state: dict[str, Any]) -> bool:
    comps = state.get("components", {})
    return all(procs.alive(comps.get(n)) for n in ORDER)


def status(state: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for name in ORDER:
        proc = state.get("components", {}).get(name)
        if proc is None:
            continue
        ok = procs.alive(proc)
        rows.append((name, f"running (pid {proc['pid']})" if ok else f"DEAD; log {proc['log']}"))
    return rows


def down(d: pathlib.Path, state: dict[str, Any]) -> None:
    """Stop the node and remove everything it put on the machine (idempotent)."""
    nd = node_dir(d)
    comps = state.get("components", {})
    if not nd.exists() and not any(comps.get(n) for n in ORDER):
        return
    _stop(comps, "pod-sd")
    _stop(comps, "coredns")
    _stop(comps, "device-plugin")
    _stop(comps, "kubelet")
    if procs.alive(comps.get("containerd")):
        # Through the CRI, so containerd runs CNI DEL and removes each sandbox's netns.
        res = _crictl(d, "rmp", "--all", "--force")
        if res.returncode != 0:
            procs.log(f"crictl rmp: {res.stderr.strip()}")
    _stop(comps, "kube-proxy")
    if (procs.BIN_DIR / "kube-proxy").exists():
        subprocess.run([str(procs.BIN_DIR / "kube-proxy"), "--cleanup", "--v=0"],
                       capture_output=True, check=False)  # fmt: skip
    _stop(comps, "containerd")
    _kill_shims(d)
    _unmount_under(nd)
    _unmount_under(IMAGE_ROOT)
    _run("ip", "link", "del", BRIDGE, check=False)
    _remove_cgroups()
    _restore(d)


def _stop(comps: dict[str, Any], name: str) -> None:
    if procs.alive(comps.get(name)):
        procs.log(f"stopping {name} (pid {comps[name]['pid']})")
        procs.stop(comps[name], timeout=20)


def _kill_shims(d: pathlib.Path) -> None:
    """Shims outlive containerd by design; ours name our socket on their command line."""
    needle = str(socket(d)).encode()
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes()
            if b"containerd-shim" in cmdline and needle in cmdline:
                os.kill(int(entry.name), 9)


def _unmount_under(root: pathlib.Path) -> None:
    for _ in range(5):
        mounts = [
            line.split()[1].replace("\\040", " ")
            for line in pathlib.Path("/proc/self/mounts").read_text().splitlines()
        ]
        ours = [m for m in mounts if m == str(root) or m.startswith(f"{root}/")]
        if not ours:
            return
        for m in reversed(ours):
            if subprocess.run(["umount", m], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", m], capture_output=True, check=False)
        time.sleep(0.2)


def _remove_cgroups() -> None:
    """The kubelet's pod cgroups (cgroupfs driver: /kubepods in every v1 hierarchy)."""
    for hierarchy in pathlib.Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _restore(d: pathlib.Path) -> None:
    claim = procs.read_json(CLAIM)
    if claim.get("state_dir") != str(d):
        return
    _remove_kube_chains({(f, t) for f, t in claim.get("nft_tables", [])})
    for key, value in claim.get("sysctls", {}).items():
        if value is not None and _sysctl(key) != value:
            _set_sysctl(key, value)
    existed = claim.get("existed", {})
    logs = pathlib.Path("/var/log/containers")
    if logs.is_dir():
        for link in logs.iterdir():  # the kubelet's links into our pod-logs dir
            if link.is_symlink() and os.readlink(link).startswith(str(node_dir(d))):
                link.unlink()
        if not existed.get(str(logs)):
            with contextlib.suppress(OSError):
                logs.rmdir()
    # The kubelet's device plugin directory (missing from an older claim: then kept).
    if DEVICE_PLUGINS.is_dir() and not existed.get(str(DEVICE_PLUGINS), True):
        shutil.rmtree(DEVICE_PLUGINS, ignore_errors=True)
    if KUBELET_VAR.is_dir() and not existed.get(str(KUBELET_VAR), True):
        with contextlib.suppress(OSError):
            KUBELET_VAR.rmdir()
    procs.restore_netns_dir({"exists": existed.get(str(procs.NETNS_DIR), True),
                             "mounted": existed.get("/run/netns mounted", True)})  # fmt: skip
    run = pathlib.Path("/run/containerd")
    if run.is_dir() and not existed.get(str(run)):
        for path in sorted(run.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else None
        with contextlib.suppress(OSError):
            run.rmdir()
    CLAIM.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        CLAIM.parent.rmdir()
