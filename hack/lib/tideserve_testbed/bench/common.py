"""Helpers every benchmark uses: the test bed's cluster, percentiles, a process's CPU time
and memory from /proc, the operator's counters."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

from tideserve_testbed import controlplane, fixtures, harness, procs

ROOT = procs.REPO


def kube() -> fixtures.Kube:
    """The running test bed's cluster (hack/cluster up, TIDESERVE_CLUSTER_DIR), for kubectl."""
    state = procs.state_dir()
    return fixtures.Kube(kubeconfig=controlplane.kubeconfig_path(state), state_dir=state)


def kubectl_argv(*args: str) -> list[str]:
    """The command line of a kubectl against the test bed (for a Popen that streams)."""
    cluster = kube()
    return [str(cluster.kubectl_bin), f"--kubeconfig={cluster.kubeconfig}", *args]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile (0 <= q <= 1) of values (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int, children: bool = False) -> tuple[float, float]:
    """User and system CPU seconds of a process (with `children`: plus its reaped
    children's, e.g. socat's one fork per connection)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]), int(fields[12])
    if children:
        user, system = user + int(fields[13]), system + int(fields[14])
    return user / tick, system / tick


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A /proc/<pid>/status memory field in MiB: VmRSS now, VmHWM the peak."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def counters(metrics_text: str, prefixes: Sequence[str]) -> dict[str, float]:
    """The samples of the named metrics, by series (name and labels as exported)."""
    return {k: v for k, v in harness.samples(metrics_text).items() if k.startswith(tuple(prefixes))}
