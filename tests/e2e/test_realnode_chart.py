"""The chart installed for real, its pods running on the test bed's real node.

`helm install` of charts/tideserve with the image built from this repository's
Dockerfile: the operator (2 replicas, leader election over a Lease) and the activator
run as pods under their ServiceAccounts in a namespace that enforces the restricted Pod
Security Standard. They reach the API server through the `kubernetes` Service
(kube-proxy) with their in-cluster config, Prometheus at the node's bridge address, and
Services by name through the cluster DNS (CoreDNS). An InferenceService becomes a Triton
pod; a request through the activator's Service is answered; the leading operator pod
crashes (SIGKILL) and, restarted by the kubelet, leads again; deleted, it releases the
Lease, and a standby takes it and reconciles the next spec change.

The figures the README quotes are printed (run with -s to see them).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tideserve_testbed import fixtures, images, node, procs, realpods

from tideserve.api import resource

pytestmark = [pytest.mark.e2e, pytest.mark.real_node]

CHART = fixtures.ROOT / "charts" / "tideserve"
HELM = procs.BIN_DIR / "helm"
NAME = "chart"
ISVC = f"{resource.PLURAL}.{resource.GROUP}"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"


def helm(kube: fixtures.Kube, *args: str) -> None:
    cmd = [str(HELM), f"--kubeconfig={kube.kubeconfig}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, f"helm {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"


def values(namespace: str, prometheus_url: str) -> dict[str, Any]:
    """The chart's defaults but for what this test bed differs in: images built here (never
    pulled), Prometheus at the node's bridge address, and a one-second autoscaler tick."""
    repository, _, tag = images.ref("tideserve").rpartition(":")
    port = prometheus_url.rsplit(":", 1)[1]
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "prometheus": {"url": f"http://{node.GATEWAY}:{port}"},
        "triton": {"image": images.ref("triton")},
        "watchNamespaces": [namespace],
        "autoscaler": {"tickSeconds": 1},
        # Two CPUs for the whole test bed: one activator is enough to route through.
        "activator": {"replicas": 1},
    }


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    with realpods.namespace(kube, "chart") as name:
        yield name


@pytest.fixture
def figures() -> Iterator[dict[str, Any]]:
    measured: dict[str, Any] = {}
    try:
        yield measured
    finally:
        print("\nchart-on-the-real-node figures:")
        for key, value in measured.items():
            print(f"  {key}: {value}")


@contextlib.contextmanager
def release(kube: fixtures.Kube, namespace: str, chart_values: dict[str, Any]) -> Iterator[str]:
    """The chart installed into namespace (the release namespace, also the one watched);
    uninstalled afterwards."""
    name = f"ts{uuid.uuid4().hex[:6]}"
    path = pathlib.Path(kube.state_dir) / f"{name}-values.json"
    path.write_text(json.dumps(chart_values))
    try:
        helm(kube, "install", name, str(CHART), "-n", namespace, "-f", str(path),
             "--wait", "--timeout=240s")  # fmt: skip
        yield name
    finally:
        helm(kube, "uninstall", name, "-n", namespace, "--wait", "--timeout=120s")
        path.unlink(missing_ok=True)


def release_pods(kube: fixtures.Kube, namespace: str, name: str, component: str) -> list[Any]:
    sel = f"{INSTANCE}={name},{COMPONENT}={component}"
    items: list[dict[str, Any]] = kube.get_json("pods", "-n", namespace, "-l", sel)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return realpods.pod_ready_seconds(pod) is not None


def lease_holder(kube: fixtures.Kube, namespace: str, lease: str) -> str | None:
    obj = kube.get_json("lease", lease, "-n", namespace)
    holder: str | None = obj["spec"].get("holderIdentity")
    return holder


def triton_pods(kube: fixtures.Kube, namespace: str) -> list[dict[str, Any]]:
    sel = f"serving.tideserve.io/inferenceservice={NAME}"
    items = kube.get_json("pods", "-n", namespace, "-l", sel)["items"]
    return [p for p in items if ready(p) and not p["metadata"].get("deletionTimestamp")]


def test_chart_pods_serve_on_the_real_node_and_a_standby_takes_over_from_a_deleted_leader(
    kube: fixtures.Kube,
    namespace: str,
    prometheus: fixtures.Prometheus,
    figures: dict[str, Any],
) -> None:
    if not HELM.exists():
        pytest.fail(f"{HELM} missing: run hack/build-tools helm")
    # Restricted Pod Security is enforced here: a privileged pod is refused.
    refused = kube.kubectl(
        "run", "privileged", "-n", namespace, f"--image={images.ref('pause')}",
        "--dry-run=server", "--overrides",
        json.dumps({"spec": {"containers": [{"name": "privileged", "image": images.ref("pause"),
                                             "securityContext": {"privileged": True}}]}}),
        check=False,
    )  # fmt: skip
    assert "violates PodSecurity" in refused.stderr, refused

    with realpods.model_volume(kube, namespace, delay_ms=20) as storage_uri:
        installing = time.monotonic()
        with release(kube, namespace, values(namespace, prometheus.url)) as name:
            # 1. helm --wait returned: both operator pods and the activator are Ready.
            figures["helm install -> operator and activator pods Ready (s)"] = round(
                time.monotonic() - installing, 1
            )
            operators = release_pods(kube, namespace, name, "operator")
            [activator] = release_pods(kube, namespace, name, "activator")
            assert len(operators) == 2 and all(map(ready, operators)), operators
            assert ready(activator), activator["status"]
            figures["operator pods: created -> Ready (s, API timestamps)"] = sorted(
                realpods.pod_ready_seconds(p) for p in operators
            )
            for pod in [*operators, activator]:
                assert pod["spec"]["nodeName"] == node.NAME, pod["spec"].get("nodeName")
                assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
                assert all(c["restartCount"] == 0 for c in pod["status"]["containerStatuses"])
            accounts = {p["spec"]["serviceAccountName"] for p in operators}
            assert accounts == {f"{name}-tideserve"}, accounts
            assert activator["spec"]["serviceAccountName"] == f"{name}-tideserve-activator"

            # 2. One operator pod leads (the Lease names it), the other stands by.
            lease = f"{name}-tideserve-leader"
            pod_names = {p["metadata"]["name"] for p in operators}
            leader = fixtures.eventually(
                lambda: (h := lease_holder(kube, namespace, lease)) in pod_names and h,
                60,
                "an operator pod holding the Lease",
            )
            [standby] = pod_names - {leader}

            # 3. An InferenceService becomes a Ready Triton pod on the real node.
            applied = time.monotonic()
            kube.apply(
                fixtures.isvc(
                    NAME,
                    namespace,
                    model={"name": realpods.MODEL, "storageUri": storage_uri},
                    resources={"accelerator": "cpu", "cpu": "100m", "memory": "1Gi"},
                    scaling={"minReplicas": 1, "maxReplicas": 2},
                )
            )
            [pod] = fixtures.eventually(
                lambda: triton_pods(kube, namespace), 180, "a Ready Triton pod", interval=0.5
            )
            figures["InferenceService applied -> Triton pod Ready (s)"] = round(
                time.monotonic() - applied, 1
            )
            assert pod["spec"]["nodeName"] == node.NAME
            # The chart's default Triton image (TIDESERVE_TRITON_IMAGE) is what runs.
            assert pod["spec"]["containers"][0]["image"] == images.ref("triton")

            # 4. Through the activator pod's Service (kube-proxy), which forwards to the
            # predictor Service by its DNS name (CoreDNS), and back from Triton.
            ip = realpods.cluster_ip(kube, namespace, f"{name}-tideserve-activator")
            url = f"http://{ip}:8080/v2/models/{realpods.MODEL}/infer"
            by_name = {"Host": f"{NAME}.{namespace}.svc.cluster.local"}
            answer = fixtures.eventually(
                lambda: _answered(url, 1.0, by_name), 60, "an answer through the activator"
            )
            assert answer.json()["outputs"][0]["data"] == [2.0]

            # 5. The leader crashes (its process SIGKILLed: no Lease released). The kubelet
            # restarts its container, which holds the Lease under the same identity (the
            # pod's name) and renews it at once, before it could expire for the standby.
            crashed = time.monotonic()
            killed_at = datetime.datetime.now(datetime.UTC)
            kill_operator(leader)
            fixtures.eventually(
                lambda: restarted_and_renewing(kube, namespace, leader, lease, killed_at),
                60,
                f"{leader} restarted and renewing the Lease",
                interval=0.2,
            )
            figures["leader process killed -> restarted, renewing the Lease again (s)"] = round(
                time.monotonic() - crashed, 1
            )
            assert lease_holder(kube, namespace, lease) == leader

            # 6. The leader pod is deleted: on SIGTERM it releases the Lease and a standby
            # takes it at once: the one waiting, or the pod replacing the deleted one if it
            # reads the released Lease first (both poll; measured: either may win).
            deleted = time.monotonic()
            kube.kubectl("delete", "pod", leader, "-n", namespace, "--wait=false")

            def new_leader() -> str | None:
                holder = lease_holder(kube, namespace, lease)
                alive = {p["metadata"]["name"] for p in release_pods(kube, namespace, name,
                                                                     "operator")}  # fmt: skip
                return holder if holder in alive - {leader} else None

            holder = fixtures.eventually(new_leader, 60, "another operator pod holding the Lease",
                                         interval=0.1)  # fmt: skip
            figures["leader pod deleted -> another pod holds the Lease (s)"] = round(
                time.monotonic() - deleted, 1
            )
            figures["the new leader"] = "the standby" if holder == standby else "the replacement"
            # ... and reconciles a spec change: a second replica, its status observed.
            kube.kubectl(
                "patch", ISVC, NAME, "-n", namespace, "--type=merge",
                "-p", '{"spec":{"scaling":{"minReplicas":2}}}',
            )  # fmt: skip
            generation = kube.get_json(ISVC, NAME, "-n", namespace)["metadata"]["generation"]
            fixtures.eventually(
                lambda: len(triton_pods(kube, namespace)) == 2, 120, "a second Triton pod", 0.5
            )
            fixtures.eventually(
                lambda: (
                    (kube.get_json(ISVC, NAME, "-n", namespace).get("status", {})).get(
                        "observedGeneration"
                    )
                    == generation
                ),
                60,
                "the new leader to observe the changed spec",
                interval=0.5,
            )
            figures["leader pod deleted -> spec change served by 2 pods (s)"] = round(
                time.monotonic() - deleted, 1
            )
            assert lease_holder(kube, namespace, lease) == holder
            kube.kubectl("delete", ISVC, NAME, "-n", namespace, "--timeout=120s", timeout=150)
        # 7. Uninstalled: nothing of the release is left, its pods included.
        fixtures.eventually(
            lambda: not leftovers(kube, name), 120, "the release's objects and pods gone", 1
        )


def leftovers(kube: fixtures.Kube, release: str) -> list[str]:
    """What is left labelled with the release, namespaced and cluster-scoped."""
    sel = f"{INSTANCE}={release}"
    kinds = ("pods,deployments,services,serviceaccounts,configmaps,poddisruptionbudgets,roles,"
             "rolebindings,networkpolicies")  # fmt: skip
    cluster = "clusterroles,clusterrolebindings,validatingadmissionpolicies"
    items = (kube.get_json(kinds, "-A", "-l", sel)["items"]
             + kube.get_json(cluster, "-l", sel)["items"])  # fmt: skip
    return [f"{o['kind']}/{o['metadata']['name']}" for o in items]


def restarted_and_renewing(
    kube: fixtures.Kube, namespace: str, pod: str, lease: str, since: datetime.datetime
) -> bool:
    [status] = kube.get_json("pod", pod, "-n", namespace)["status"]["containerStatuses"]
    spec = kube.get_json("lease", lease, "-n", namespace)["spec"]
    renewed = datetime.datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))
    return status["restartCount"] == 1 and spec["holderIdentity"] == pod and renewed > since


def kill_operator(pod: str) -> None:
    """SIGKILL the operator process of `pod` on the real node (this host): a crash, which
    releases nothing. It is found by the POD_NAME the chart gives it."""
    needle = f"POD_NAME={pod}".encode()
    killed = 0
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
    assert killed == 1, f"{killed} processes with {needle!r}"


def _answered(url: str, value: float, headers: dict[str, str]) -> httpx.Response | None:
    try:
        r = httpx.post(url, json=realpods.infer_body(value), headers=headers, timeout=10)
    except httpx.TransportError:  # no route yet (kube-proxy: no ready endpoint)
        return None
    return r if r.status_code == 200 else None
