"""Where a command finds its API server, and the one error it gives when there is none.
Kept apart from kube.py so that the activator can say it without importing kopf."""

from __future__ import annotations

import os


class NoCluster(RuntimeError):
    """Neither a pod's service account nor a usable kubeconfig to reach an API server."""


def no_cluster(kubeconfig: str | None, error: Exception) -> NoCluster:
    where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return NoCluster(
        f"no API server to talk to: not in a pod, and no usable kubeconfig at {where} ({error})"
    )
