"""The s3:// fetch init container, for real: a pod on the real node copies the model
repository from the test bed's S3-compatible store (versitygw, SigV4 verified) with the
credentials of the Secret named by storageSecretRef, then Triton loads it and answers
through the predictor Service.

The store listens on the node's bridge, where pods reach the host; the Secret's
AWS_ENDPOINT_URL points the AWS CLI at it. The fetch image is the test bed's AWS CLI
image (hack/images/aws-cli), given to the operator as TIDESERVE_FETCH_IMAGE_S3, as a
cluster pulling from a mirror would.
"""

from __future__ import annotations

import pathlib
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tideserve_testbed import fixtures, images, node, procs, realpods, s3, triton

from tideserve.render import names

pytestmark = [pytest.mark.e2e, pytest.mark.real_node]

NAME = "fetched"


@pytest.fixture
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    with realpods.namespace(kube, "realfetch") as name:
        yield name


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[s3.Store]:
    """The store on the node's bridge, holding the test model under s3://models/repo."""
    with s3.server(host=node.GATEWAY) as running:
        repo = triton._repository_with_delay(tmp_path / "repo", 20)
        for args in (("mb", "s3://models"), ("cp", "--recursive", str(repo), "s3://models/repo")):
            done = s3.aws(running, "s3", *args)
            assert done.returncode == 0, done.stderr
        yield running


def test_a_pod_fetches_its_model_from_s3_with_the_secrets_credentials_and_serves_it(
    kube: fixtures.Kube,
    namespace: str,
    store: s3.Store,
    prometheus: fixtures.Prometheus,
    processes: Callable[..., subprocess.Popen[bytes]],
) -> None:
    kube.apply({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "model-store", "namespace": namespace},
        "stringData": store.credentials(),
    })  # fmt: skip
    processes(
        "operator",
        ["run", "--bind", "127.0.0.1", "--namespace", namespace],
        {
            "KUBECONFIG": str(kube.kubeconfig),
            "TIDESERVE_PROMETHEUS_URL": prometheus.url,
            "TIDESERVE_FETCH_IMAGE_S3": images.ref("aws-cli"),
            "TIDESERVE_METRICS_PORT": str(procs.free_port()),
            "TIDESERVE_HEALTH_PORT": str(procs.free_port()),
        },
    )
    applied = time.monotonic()
    kube.apply(
        fixtures.isvc(
            NAME,
            namespace,
            model={
                "name": realpods.MODEL,
                "storageUri": "s3://models/repo",
                "storageSecretRef": "model-store",
            },
            runtime={"image": images.ref("triton")},
            resources={"accelerator": "cpu", "cpu": "100m", "memory": "1Gi"},
            scaling={"minReplicas": 1, "maxReplicas": 1},
        )
    )

    def ready() -> dict[str, Any] | None:
        selector = f"serving.tideserve.io/inferenceservice={NAME}"
        for pod in kube.get_json("pods", "-n", namespace, "-l", selector)["items"]:
            if realpods.pod_ready_seconds(pod) is not None:
                return dict(pod)
        return None

    pod = fixtures.eventually(ready, 180, "a Ready pod with its model fetched from S3")
    seconds = time.monotonic() - applied
    assert pod["spec"]["nodeName"] == node.NAME
    [fetch] = [c for c in pod["spec"]["initContainers"] if c["name"] == "fetch-model"]
    assert fetch["image"] == images.ref("aws-cli")
    assert fetch["envFrom"] == [{"secretRef": {"name": "model-store"}}]
    [done] = [s for s in pod["status"]["initContainerStatuses"] if s["name"] == "fetch-model"]
    assert done["state"]["terminated"]["exitCode"] == 0, done

    # The fetched model answers through the predictor Service (kube-proxy -> the pod).
    service_ip = realpods.cluster_ip(kube, namespace, f"{NAME}-predictor")
    url = f"http://{service_ip}:{names.HTTP_PORT}/v2/models/{realpods.MODEL}/infer"

    def answered() -> httpx.Response | None:
        try:
            r = httpx.post(url, json=realpods.infer_body(41.0), timeout=10)
        except httpx.ConnectError:  # no route yet
            return None
        return r if r.status_code == 200 else None

    r = fixtures.eventually(answered, 60, "an answer through the predictor Service")
    assert r.json()["outputs"][0]["data"] == [42.0]
    print(f"\nreal-node fetch: apply -> Ready with the model fetched from S3: {seconds:.1f} s")
