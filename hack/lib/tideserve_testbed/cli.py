"""hack/cluster: the local test bed's one entry point.

  hack/cluster up [--with triton] [--no-prometheus]   start (or reuse) everything, including
                                                       the real node (TIDESERVE_REAL_NODE=0: none)
  hack/cluster down                                    stop what `up` started; remove state
  hack/cluster status                                  each component's state
  hack/cluster env                                     shell exports (eval "$(hack/cluster env)")
  hack/cluster triton start --name N [--http-port P] [--grpc-port P] [--metrics-port P]
                          [--delay-ms MS] [--namespace NS --isvc NAME --pod POD]
  hack/cluster triton stop --name N | triton list
  hack/cluster target add ID HOST:PORT --namespace NS --isvc NAME --pod POD | target rm ID

State lives in $TIDESERVE_CLUSTER_DIR (default ~/.cache/tideserve/cluster).
"""

from __future__ import annotations

import argparse
import pathlib
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any

from tideserve_testbed import controlplane, images, node, procs, prometheus, triton

DEFAULT_TRITON = "default"
DEFAULT_TRITON_LABELS = {"namespace": "default", "name": "tiny", "pod": "triton-default-0"}


def build_tools() -> None:
    real = ["k8s-node", "crictl", "coredns", "deviceplugin"] if node.enabled() else []
    proc = subprocess.run(
        [str(procs.REPO / "hack" / "build-tools"), "k8s", "etcd", "kwok", *real],
        stdout=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        raise procs.StartupError("hack/build-tools failed (see its output above)")


def state() -> dict[str, Any]:
    return procs.read_json(procs.state_dir() / "state.json")


def up(
    *, with_prometheus: bool = True, with_triton: bool = False, owner: str = "cli"
) -> dict[str, Any]:
    """Bring the test bed up, reusing healthy running parts; return what was started.

    state["owners"] records who started the control plane and Prometheus, so a
    pytest session tears down only what a pytest session started; a human's
    `hack/cluster up` claims everything (pytest will then leave it running).
    """
    d = procs.state_dir()
    with procs.locked():
        build_tools()
        st = state()
        started: list[str] = []
        if controlplane.healthy(d, st):
            if node.enabled() and st.get("advertise") != node.GATEWAY:
                raise procs.StartupError(
                    f"the test bed in {d} runs without a real node (its API server and "
                    "Prometheus listen on loopback only, out of reach of pods): take it down "
                    "first (hack/cluster down), or reuse it with TIDESERVE_REAL_NODE=0"
                )
            procs.log("control plane already running and healthy; reusing it")
        else:
            started += controlplane.up(d, st, advertise=node.GATEWAY if node.enabled() else None)
        if with_prometheus and prometheus.up(d, st, reachable_from_pods=node.enabled()):
            started.append("prometheus")
        try:
            if node.enabled():
                images.ensure()
                api = controlplane.Api(d, st["ports"]["kube-apiserver"])
                started += node.up(d, st, api)
        finally:  # even when the real node fails: whoever started the rest stops it
            _own(d, st, started, owner)
    if with_triton:

        was_running = triton.record_path(DEFAULT_TRITON).exists() and any(
            t["alive"] for t in triton.running() if t["name"] == DEFAULT_TRITON
        )
        triton.start(DEFAULT_TRITON, labels=DEFAULT_TRITON_LABELS)
        if not was_running:
            started.append(f"triton-{DEFAULT_TRITON}")
    return {"started": started, "state": st}


def _own(d: pathlib.Path, st: dict[str, Any], started: list[str], owner: str) -> None:
    owners = st.setdefault("owners", {})
    if any(s in controlplane.ORDER or s in node.ORDER for s in started):
        owners["controlplane"] = owner
    owners.setdefault("controlplane", "cli")  # unknown starter: never tear it down
    if "prometheus" in started:
        owners["prometheus"] = owner
    if owner == "cli":
        owners.update(dict.fromkeys(owners, "cli"))
    procs.write_json(d / "state.json", st)


def env_lines() -> list[str]:
    d = procs.state_dir()
    st = state()
    exports = {
        "KUBECONFIG": str(controlplane.kubeconfig_path(d)),
        "TIDESERVE_CLUSTER_DIR": str(d),
    }
    if "prometheus" in st.get("ports", {}):
        exports["TIDESERVE_PROMETHEUS_URL"] = prometheus.url(st)
        exports["TIDESERVE_PROMETHEUS_TARGETS_DIR"] = str(prometheus.targets_dir(d))
    for rec in triton.running(d):
        if rec["name"] == DEFAULT_TRITON and rec["alive"]:
            exports["TIDESERVE_TESTBED_TRITON_HTTP_URL"] = rec["http_url"]
            exports["TIDESERVE_TESTBED_TRITON_GRPC_URL"] = rec["grpc_url"]
            exports["TIDESERVE_TESTBED_TRITON_METRICS_URL"] = rec["metrics_url"]
    lines = [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
    lines.append(f'export PATH={shlex.quote(str(procs.BIN_DIR))}:"$PATH"')
    return lines


def down() -> None:
    d = procs.state_dir()
    with procs.locked():
        for rec in triton.running(d):
            triton.stop(rec["name"], d)
        st = state()
        prometheus.down(st)
        node.down(d, st)
        controlplane.down(st)
        shutil.rmtree(d, ignore_errors=True)
    procs.log(f"down; removed {d}")


def status() -> int:
    d = procs.state_dir()
    st = state()
    if not st:
        print(f"no test bed state in {d} (run hack/cluster up)")
        return 3
    rows = controlplane.status(d, st) + node.status(st)
    prom = st.get("components", {}).get("prometheus")
    if prom:
        ok = procs.alive(prom)
        rows.append(("prometheus", f"running {prometheus.url(st)}" if ok else "DEAD"))
    for rec in triton.running(d):
        rows.append(
            (f"triton {rec['name']}", f"running {rec['http_url']}" if rec["alive"] else "DEAD")
        )
    for name, text in rows:
        print(f"{name:26} {text}")
    bad = any("DEAD" in t or "NOT READY" in t or "unreachable" in t for _, t in rows)
    return 1 if bad or not controlplane.healthy(d, st) else 0


def _triton(args: argparse.Namespace) -> int:
    if args.action == "list":
        for rec in triton.running():
            alive = "running" if rec["alive"] else "DEAD"
            print(f"{rec['name']:16} {alive:8} http={rec['http_url']} grpc={rec['grpc_url']} "
                  f"metrics={rec['metrics_url']} labels={rec.get('labels')}")  # fmt: skip
        return 0
    if not args.name:
        raise SystemExit("--name is required")
    if args.action == "stop":
        triton.stop(args.name)
        return 0
    labels = None
    if args.isvc:
        labels = {"namespace": args.namespace, "name": args.isvc, "pod": args.pod or args.name}
    rec = triton.start(
        args.name,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        delay_ms=args.delay_ms,
        labels=labels,
    )
    print(f"http={rec['http_url']} grpc={rec['grpc_url']} metrics={rec['metrics_url']}")
    return 0


def _target(args: argparse.Namespace) -> int:
    if args.action == "rm":
        prometheus.unregister(args.id)
    elif args.action == "add":
        prometheus.register(
            args.id, args.address, namespace=args.namespace, name=args.isvc, pod=args.pod
        )
    for path in sorted(prometheus.targets_dir().glob("*.json")):
        print(f"{path.stem}: {path.read_text().strip()}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hack/cluster", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up")
    u.add_argument("--with", dest="with_", default="", help="extra parts: triton")
    u.add_argument("--no-prometheus", action="store_true")
    for name in ("down", "status", "env"):
        sub.add_parser(name)
    t = sub.add_parser("triton")
    t.add_argument("action", choices=["start", "stop", "list"])
    t.add_argument("--name")
    t.add_argument("--http-port", type=int)
    t.add_argument("--grpc-port", type=int)
    t.add_argument("--metrics-port", type=int)
    t.add_argument("--delay-ms", type=int, help="model time per batch (default 20)")
    t.add_argument("--namespace", default="default")
    t.add_argument("--isvc", help="InferenceService name: registers the target with Prometheus")
    t.add_argument("--pod")
    g = sub.add_parser("target")
    g.add_argument("action", choices=["add", "rm", "list"])
    g.add_argument("id", nargs="?")
    g.add_argument("address", nargs="?")
    g.add_argument("--namespace", default="default")
    g.add_argument("--isvc", default="")
    g.add_argument("--pod", default="")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        if args.cmd == "up":
            t0 = time.monotonic()
            extras = {x for x in args.with_.split(",") if x}
            res = up(with_prometheus=not args.no_prometheus, with_triton="triton" in extras)
            took = time.monotonic() - t0
            what = ", ".join(res["started"]) or "nothing (all running)"
            procs.log(f"up in {took:.1f}s; started: {what}")
            print("# to use it:")
            print("\n".join(env_lines()))
            return 0
        if args.cmd == "down":
            down()
            return 0
        if args.cmd == "status":
            return status()
        if args.cmd == "env":
            print("\n".join(env_lines()))
            return 0
        if args.cmd == "triton":
            return _triton(args)
        return _target(args)
    except procs.StartupError as e:
        print(f"cluster: FAILED: {e}", file=sys.stderr)
        return 1
