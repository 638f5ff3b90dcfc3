"""The predictor Deployment: args, resources per accelerator, storage, no replicas."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tideserve import settings as settings_mod
from tideserve.api import resource
from tideserve.render import children, deployment, hardware, names, storage

pytestmark = pytest.mark.unit

OWNER = names.Owner("ns", "demo", "uid-1", 3)
IMAGE = "triton:default"


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": {"name": "m", "storageUri": "s3://bucket/repo"}}
    for key, value in overrides.items():
        body[key] = value
    return body


def render(body: dict[str, Any], hw: hardware.Hardware | None = None) -> dict[str, Any]:
    return deployment.deployment(OWNER, resource.parse_spec(body), IMAGE, hw)


def triton(dep: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = dep["spec"]["template"]["spec"]["containers"][0]
    return container


def test_deployment_never_sets_replicas_so_the_autoscaler_owns_them() -> None:
    assert "replicas" not in render(spec())["spec"]


def test_rolling_update_adds_before_it_removes() -> None:
    strategy = render(spec())["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_triton_args_load_one_model_explicitly_and_append_user_args() -> None:
    args = triton(render(spec(runtime={"args": ["--log-verbose=1"]})))["args"]
    assert args[:3] == [
        "--model-repository=/models",
        "--model-control-mode=explicit",
        "--load-model=m",
    ]
    assert "--strict-readiness=true" in args and "--metrics-port=8002" in args
    assert args[-1] == "--log-verbose=1"


def test_response_cache_enables_a_cache_in_the_server() -> None:
    args = triton(
        render(spec(model={"name": "m", "storageUri": "s3://b/r", "responseCache": True}))
    )["args"]
    assert any(a.startswith("--cache-config=local,size=") for a in args)


def test_image_comes_from_spec_or_operator_default() -> None:
    assert triton(render(spec()))["image"] == IMAGE
    assert triton(render(spec(runtime={"image": "mine:1"})))["image"] == "mine:1"


def test_probes_allow_a_long_model_load() -> None:
    c = triton(render(spec()))
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_gpu_requests_whole_gpus_on_the_named_product_and_tolerates_the_taint() -> None:
    dep = render(
        spec(resources={"accelerator": "gpu", "gpu": {"product": "NVIDIA-L4", "count": 2}})
    )
    pod = dep["spec"]["template"]["spec"]
    assert triton(dep)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_mig_requests_the_slice_resource() -> None:
    dep = render(spec(resources={"accelerator": "mig", "mig": {"profile": "1g.10gb"}}))
    limits = triton(dep)["resources"]["limits"]
    assert limits["nvidia.com/mig-1g.10gb"] == "1" and "nvidia.com/gpu" not in limits


def test_cpu_requests_no_gpu_and_does_not_tolerate_gpu_nodes() -> None:
    dep = render(spec(resources={"accelerator": "cpu", "cpu": "2", "memory": "4Gi"}))
    res = triton(dep)["resources"]
    assert res == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}
    assert "tolerations" not in dep["spec"]["template"]["spec"]
    assert "nodeSelector" not in dep["spec"]["template"]["spec"]


def test_auto_starts_on_a_gpu() -> None:
    assert (
        "nvidia.com/gpu"
        in triton(render(spec(resources={"accelerator": "auto"})))["resources"]["limits"]
    )


def test_effective_hardware_overrides_the_spec_without_touching_it() -> None:
    body = spec(resources={"accelerator": "auto"})
    before = copy.deepcopy(body)
    dep = render(body, hardware.Hardware(kind="cpu", cpu="500m", memory="1Gi"))
    assert triton(dep)["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert dep["metadata"]["annotations"][names.ACCELERATOR_ANNOTATION] == "cpu"
    assert body == before


def test_s3_credentials_come_only_from_the_named_secret() -> None:
    dep = render(spec(model={"name": "m", "storageUri": "s3://b/r", "storageSecretRef": "creds"}))
    (fetch,) = [
        c for c in dep["spec"]["template"]["spec"]["initContainers"] if c["name"] == "fetch-model"
    ]
    assert fetch["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert {"name": "STORAGE_URI", "value": "s3://b/r"} in fetch["env"]
    assert "s3://b/r" not in fetch["command"][-1]  # the URI is never spliced into the script


@pytest.mark.parametrize("scheme", ["s3", "gs", "https"])
def test_the_fetch_image_is_the_operators_setting_for_the_scheme(scheme: str) -> None:
    env = {f"TIDESERVE_FETCH_IMAGE_{scheme.upper()}": f"mirror.local/{scheme}-fetch:1"}
    chosen = settings_mod.from_env(env).fetch_images
    uri = f"{scheme}://b/r" + (".tar.gz" if scheme == "https" else "")  # s3, gs: a folder
    body = resource.parse_spec(spec(model={"name": "m", "storageUri": uri}))
    options = children.Options(triton_image=IMAGE, fetch_images=chosen)
    [dep] = [m for m in children.plan(OWNER, body, options).apply if m["kind"] == "Deployment"]
    [fetch] = dep["spec"]["template"]["spec"]["initContainers"]
    assert fetch["image"] == f"mirror.local/{scheme}-fetch:1"
    # Unset (or blank): the pinned default.
    default = settings_mod.from_env({f"TIDESERVE_FETCH_IMAGE_{scheme.upper()}": ""})
    assert default.fetch_images == storage.DEFAULT_FETCH_IMAGES


def test_gcs_credentials_are_mounted_as_a_file() -> None:
    dep = render(spec(model={"name": "m", "storageUri": "gs://b/r", "storageSecretRef": "gcs"}))
    pod = dep["spec"]["template"]["spec"]
    assert {
        "name": storage.SECRET_VOLUME,
        "secret": {"secretName": "gcs", "defaultMode": 0o440},
    } in pod["volumes"]


def test_pvc_is_mounted_read_only_without_a_copy() -> None:
    dep = render(
        spec(
            model={"name": "m", "storageUri": "pvc://claim/sub/dir"},
            resources={"accelerator": "gpu"},
        )
    )
    pod = dep["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert {
        "name": "model-repository",
        "persistentVolumeClaim": {"claimName": "claim", "readOnly": True},
    } in pod["volumes"]
    mount = triton(dep)["volumeMounts"][0]
    assert mount == {
        "name": "model-repository",
        "mountPath": "/models",
        "readOnly": True,
        "subPath": "sub/dir",
    }


def test_config_override_adds_a_merge_step_and_rolls_pods_when_it_changes() -> None:
    a = render(spec(model={"name": "m", "storageUri": "s3://b/r", "maxBatchSize": 8}))
    b = render(spec(model={"name": "m", "storageUri": "s3://b/r", "maxBatchSize": 16}))
    init = [c["name"] for c in a["spec"]["template"]["spec"]["initContainers"]]
    assert init == ["fetch-model", "model-config"]
    hash_a = a["spec"]["template"]["metadata"]["annotations"][names.CONFIG_HASH_ANNOTATION]
    hash_b = b["spec"]["template"]["metadata"]["annotations"][names.CONFIG_HASH_ANNOTATION]
    assert hash_a != hash_b


def test_pod_labels_and_scrape_annotations_name_the_inferenceservice() -> None:
    template = render(spec())["spec"]["template"]["metadata"]
    assert template["labels"]["app.kubernetes.io/name"] == "tideserve-predictor"
    assert template["labels"]["app.kubernetes.io/instance"] == "demo"
    assert template["labels"]["serving.tideserve.io/inferenceservice"] == "demo"
    assert template["annotations"]["prometheus.io/port"] == "8002"


def test_rendering_is_deterministic_and_does_not_mutate_the_spec() -> None:
    parsed = resource.parse_spec(spec(scaling={"maxReplicas": 3}))
    before = parsed.dump()
    options = children.Options(triton_image=IMAGE)
    assert children.plan(OWNER, parsed, options) == children.plan(OWNER, parsed, options)
    assert parsed.dump() == before


def test_pdb_only_when_more_than_one_replica_is_allowed() -> None:
    options = children.Options(triton_image=IMAGE)
    one = children.plan(
        OWNER, resource.parse_spec(spec(scaling={"minReplicas": 1, "maxReplicas": 1})), options
    )
    many = children.plan(OWNER, resource.parse_spec(spec(scaling={"maxReplicas": 2})), options)
    assert "PodDisruptionBudget" not in [m["kind"] for m in one.apply]
    assert ("PodDisruptionBudget", "demo-predictor") in one.delete
    assert "PodDisruptionBudget" in [m["kind"] for m in many.apply]


def test_service_monitor_only_when_its_crd_exists() -> None:
    parsed = resource.parse_spec(spec())
    without = children.plan(OWNER, parsed, children.Options(triton_image=IMAGE))
    with_crd = children.plan(
        OWNER, parsed, children.Options(triton_image=IMAGE, service_monitor=True)
    )
    assert "ServiceMonitor" not in [m["kind"] for m in without.apply]
    assert "ServiceMonitor" in [m["kind"] for m in with_crd.apply]


def test_pvc_with_a_config_override_links_the_claim_into_a_writable_repository() -> None:
    model = {"name": "m", "storageUri": "pvc://claim/repo", "maxBatchSize": 8}
    dep = render(spec(model=model, resources={"accelerator": "gpu"}))
    pod = dep["spec"]["template"]["spec"]
    (merge,) = pod["initContainers"]
    source = {
        "name": "model-source",
        "mountPath": "/model-source",
        "readOnly": True,
        "subPath": "repo",
    }
    assert source in merge["volumeMounts"]
    # The links the merge step writes point into /model-source: Triton mounts it too.
    assert source in triton(dep)["volumeMounts"]
    assert {"name": "model-repository", "emptyDir": {}} in pod["volumes"]


def test_plan_digest_is_stamped_on_the_deployment_and_follows_the_spec() -> None:
    options = children.Options(triton_image=IMAGE)
    a = children.plan(OWNER, resource.parse_spec(spec()), options)
    b = children.plan(
        OWNER, resource.parse_spec(spec(runtime={"args": ["--log-verbose=1"]})), options
    )
    (dep,) = [m for m in a.apply if m["kind"] == "Deployment"]
    assert children.applied_digest(dep) == a.digest
    assert a.digest != b.digest
    assert children.plan(OWNER, resource.parse_spec(spec()), options).digest == a.digest


def test_triton_pauses_before_stopping_so_routes_drop_it_first() -> None:
    """A replica removed under traffic keeps serving until the route and kube-proxy stop
    sending to it: preStop sleeps (an exec: the kubelet's sleep action is refused before
    Kubernetes 1.30), leaving Triton its 30 s exit timeout inside the grace period."""
    dep = render(spec())
    command = triton(dep)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and int(command[1]) >= 5
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert int(command[1]) + 30 <= grace


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """What the kubelet makes of a container's env value or arg (k8s.io/kubernetes
    third_party/forked/golang/expansion): $$ is $, $(NAME) a defined variable's value."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i)) != -1:
            name = text[i + 2 : end]
            out.append(env.get(name, text[i : end + 1]))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def test_env_values_args_and_the_uri_reach_the_process_as_written() -> None:
    # "pa$$word" ran as "pa$word" and --id=$(A) as --id=secret: Kubernetes expands both.
    body = spec(
        runtime={
            "env": [{"name": "A", "value": "secret"}, {"name": "B", "value": "pa$$word$(A)"}],
            "args": ["--id=$(A)$$"],
        }
    )
    body["model"]["storageUri"] = "s3://bucket/price$$list/$(A)"
    pod = render(body)["spec"]["template"]["spec"]
    triton = pod["containers"][0]
    env: dict[str, str] = {}
    for item in triton["env"]:
        env[item["name"]] = kubelet_expand(item["value"], env)
    assert env == {"A": "secret", "B": "pa$$word$(A)"}
    assert kubelet_expand(triton["args"][-1], env) == "--id=$(A)$$"
    fetch = pod["initContainers"][0]
    uri = next(e["value"] for e in fetch["env"] if e["name"] == "STORAGE_URI")
    assert kubelet_expand(uri, {}) == "s3://bucket/price$$list/$(A)"
