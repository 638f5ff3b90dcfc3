"""Rendered pods write only to emptyDirs, and each endpoint admits only its peers."""

from __future__ import annotations

from typing import Any

import pytest

from tideserve import settings
from tideserve.api import resource
from tideserve.render import children, deployment, names, policies

pytestmark = pytest.mark.unit

OWNER = names.Owner("ns", "demo", "uid-1", 3)
# Where each container writes (strace of the test bed's tritonserver; the fetch scripts
# and the config step in render/storage.py and render/triton_config.py).
WRITES = {
    "triton": ("/tmp", "/dev/shm"),
    "fetch-model": ("/models", "/tmp"),
    "model-config": ("/models",),
}


def _pod(uri: str, **model: Any) -> dict[str, Any]:
    body = {"model": {"name": "m", "storageUri": uri, **model}}
    dep = deployment.deployment(OWNER, resource.parse_spec(body), "triton:x")
    pod: dict[str, Any] = dep["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize(
    ("uri", "model"),
    [
        ("s3://b/r", {}),
        ("https://h/m.tar.gz", {}),
        ("gs://b/r", {"storageSecretRef": "gcs"}),
        ("pvc://claim/models", {}),
        ("pvc://claim/models", {"maxBatchSize": 8}),  # the config step copies the top level
        ("s3://b/r", {"maxBatchSize": 8}),
    ],
)
def test_every_container_has_a_read_only_root_and_writes_only_to_empty_dirs(
    uri: str, model: dict[str, Any]
) -> None:
    pod = _pod(uri, **model)
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in pod.get("initContainers", []) + pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        writable = {
            m["mountPath"]
            for m in container["volumeMounts"]
            if m["name"] in empty_dirs and not m.get("readOnly")
        }
        assert set(WRITES[container["name"]]) <= writable, container["name"]


SERVING = ({"podSelector": {}},)
METRICS = ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}},)


def test_the_policy_admits_serving_peers_on_http_and_grpc_and_metrics_peers_on_metrics() -> None:
    policy = policies.network_policy(OWNER, SERVING, METRICS)
    assert policy["spec"]["podSelector"] == {"matchLabels": names.selector_labels("demo")}
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress: the fetch step downloads
    [serving, metrics] = policy["spec"]["ingress"]
    assert (serving["from"], [p["port"] for p in serving["ports"]]) == (
        list(SERVING),
        [names.HTTP_PORT, names.GRPC_PORT],
    )
    assert (metrics["from"], [p["port"] for p in metrics["ports"]]) == (
        list(METRICS),
        [names.METRICS_PORT],
    )


def test_no_peers_admits_nobody_rather_than_everybody() -> None:
    # An ingress rule without `from` admits every source: none may be written.
    assert policies.network_policy(OWNER, (), ())["spec"]["ingress"] == []
    [rule] = policies.network_policy(OWNER, (), METRICS)["spec"]["ingress"]
    assert rule["from"]


def test_the_plan_applies_the_policy_when_configured_and_deletes_it_otherwise() -> None:
    spec = resource.parse_spec({"model": {"name": "m", "storageUri": "s3://b/r"}})
    on = children.plan(OWNER, spec, children.Options("t", network_peers=(SERVING, METRICS)))
    off = children.plan(OWNER, spec, children.Options("t"))
    assert "NetworkPolicy" in [m["kind"] for m in on.apply]
    assert "NetworkPolicy" not in [m["kind"] for m in off.apply]
    assert ("NetworkPolicy", "demo-predictor") in off.delete


def test_the_operator_reads_peers_from_json_and_names_the_variable_when_bad() -> None:
    raw = '{"serving": [{"podSelector": {}}], "metrics": []}'
    loaded = settings.from_env({"TIDESERVE_NETWORK_POLICY": raw}).network_policy
    assert loaded == settings.NetworkPeers(serving=({"podSelector": {}},), metrics=())
    assert settings.from_env({}).network_policy is None
    for bad in ("{not json", '{"servng": []}', '{"serving": "all"}'):
        with pytest.raises(settings.SettingsError, match="TIDESERVE_NETWORK_POLICY"):
            settings.from_env({"TIDESERVE_NETWORK_POLICY": bad})
