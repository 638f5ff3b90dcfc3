"""Paths, state and background processes of the local test bed (stdlib only).

Every process we start is recorded with its pid *and* its kernel start time, so
that `down` never signals a recycled pid that now belongs to someone else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[3]
CACHE = pathlib.Path(
    os.environ.get("TIDESERVE_CACHE", pathlib.Path.home() / ".cache" / "tideserve")
)
BIN_DIR = CACHE / "bin"


def state_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("TIDESERVE_CLUSTER_DIR", CACHE / "cluster"))


_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"cluster: [{time.monotonic() - _T0:5.1f}s] {msg}", flush=True)


_LOCK_DEPTH = [0]


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialise up/down across processes (CLI, several pytest sessions).

    Re-entrant within a process, so a pytest session can hold it across `up` plus
    registering itself (or across deciding to tear down plus `down`).
    """
    if _LOCK_DEPTH[0]:
        _LOCK_DEPTH[0] += 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] -= 1
        return
    d = state_dir()
    d.parent.mkdir(parents=True, exist_ok=True)
    with open(d.parent / f".{d.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        _LOCK_DEPTH[0] = 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] = 0


def read_json(path: pathlib.Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data


def write_json(path: pathlib.Path, data: dict[str, Any]) -> None:
    """Atomic write: readers (Prometheus file_sd, other sessions) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


NETNS_DIR = pathlib.Path("/run/netns")


def is_mount_point(path: pathlib.Path) -> bool:
    """From the mount table: os.path.ismount misses a bind mount of a directory onto
    itself on the same filesystem (what `ip netns add` makes of /run/netns)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == str(path) for line in f)


def netns_dir_state() -> dict[str, bool]:
    """Whether /run/netns exists and is a mount point: `ip netns add` and the CNI plugins
    make it a (shared bind) mount the first time they need it, and nothing undoes that."""
    return {"exists": NETNS_DIR.exists(), "mounted": is_mount_point(NETNS_DIR)}


def restore_netns_dir(before: dict[str, bool]) -> None:
    """Undo what was made of /run/netns since `before`, if no namespace is left in it
    (another user's namespaces keep it as it is)."""
    if not NETNS_DIR.is_dir() or any(NETNS_DIR.iterdir()):
        return
    if is_mount_point(NETNS_DIR) and not before.get("mounted", True):
        subprocess.run(["umount", str(NETNS_DIR)], capture_output=True, check=False)
    if not before.get("exists", True) and not is_mount_point(NETNS_DIR):
        with contextlib.suppress(OSError):
            NETNS_DIR.rmdir()


# Ports handed out by this process, so two callers never get the same one before
# either binds it.
_HANDED_OUT: set[int] = set()
_LOWEST_PORT = 10000
# The API server's default NodePort range starts here; kube-proxy owns what is above.
_NODE_PORTS = 30000


def _ephemeral_range() -> tuple[int, int]:
    try:
        text = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = text.split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port nothing listens on, from below the kernel's ephemeral range.
    A port from bind(("", 0)) is an ephemeral one: between handing it out and the
    server binding it, any outgoing connection (kubectl, a watch, a probe) may take it
    as its source port, and the server dies with EADDRINUSE (CI saw the operator's
    liveness port taken so). Ports below the range are never given to connections;
    the NodePort range is kept clear too."""
    low = min(_ephemeral_range()[0], _NODE_PORTS)
    if low - _LOWEST_PORT >= 1000:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.randrange(_LOWEST_PORT, low)
            if port in _HANDED_OUT:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
        _HANDED_OUT.add(port)
        return port


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_get(
    url: str, timeout: float = 2.0, context: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    """GET a loopback URL; HTTP errors come back as (status, body), not exceptions."""
    if not url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
        raise ValueError(f"the test bed only talks to loopback, not {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:  # noqa: S310
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# The detached processes this process started, by pid. Kept, not dropped: a dropped Popen
# of a running child warns ("subprocess N is still running", a ResourceWarning) when it is
# collected. Reaped through it once dead.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def _start_time(pid: int) -> str | None:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie is dead; reap it if it is our child
        child = _STARTED.get(pid)
        if child is not None:
            # A Go program's main thread can be a zombie while its other threads still
            # exit: not reaped yet, so kept until it is.
            if child.poll() is not None:
                del _STARTED[pid]
        else:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        return None
    return fields[19]  # field 22 of stat: start time in clock ticks


def alive(proc: dict[str, Any] | None) -> bool:
    if not proc or "pid" not in proc:
        return False
    return _start_time(int(proc["pid"])) == proc.get("start")


def start(
    name: str,
    cmd: list[str],
    logfile: pathlib.Path,
    env: dict[str, str] | None = None,
    cwd: pathlib.Path | None = None,
) -> dict[str, Any]:
    """Start cmd detached (own session, so Ctrl-C in a shell or pytest does not hit it)."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        out.flush()
        p = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    _STARTED[p.pid] = p
    return {"pid": p.pid, "start": _start_time(p.pid), "log": str(logfile), "cmd": cmd}


def stop(proc: dict[str, Any] | None, timeout: float = 10.0) -> None:
    if alive(proc):
        assert proc is not None
        pid = int(proc["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(proc):
            os.kill(pid, signal.SIGKILL)
            while alive(proc):
                time.sleep(0.05)
    child = _STARTED.pop(int(proc["pid"]), None) if proc and "pid" in proc else None
    if child is not None:  # ours: reap it (its last threads may still be exiting)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout)


def tail(logfile: str | pathlib.Path, lines: int = 25) -> str:
    try:
        text = pathlib.Path(logfile).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(line[:400] for line in text.splitlines()[-lines:])


class StartupError(RuntimeError):
    pass


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    proc: dict[str, Any] | None = None,
    interval: float = 0.1,
) -> None:
    """Poll check() until true; fail early with the log tail if proc dies meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if proc is not None and not alive(proc):
            raise StartupError(f"{what}: process exited; last log lines:\n{tail(proc['log'])}")
        if time.monotonic() > deadline:
            extra = f"; last log lines:\n{tail(proc['log'])}" if proc else ""
            raise StartupError(f"{what}: not ready after {timeout:.0f}s{extra}")
        time.sleep(interval)
