"""The reconciler against the real local cluster (kwok nodes), run as a real subprocess."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tideserve_testbed import fixtures, harness

pytestmark = pytest.mark.integration


ROOT = pathlib.Path(__file__).resolve().parents[2]
# kopf's progress of the "apply" handler (AnnotationsProgressStorage, tideserve's prefix).
PROGRESS = "serving.tideserve.io/apply"
ISVC_LABEL = "serving.tideserve.io/inferenceservice"


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return None


TIMEOUT = 90.0


@pytest.fixture(scope="module")
def crd(kube: fixtures.Kube) -> None:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube.kubectl(
        "wait", "--for=condition=Established", "crd/inferenceservices.serving.tideserve.io"
    )


@pytest.fixture(scope="module")
def namespace(kube: fixtures.Kube, crd: None) -> Iterator[str]:
    name = f"rk-it-{os.getpid()}"
    kube.kubectl("create", "namespace", name)
    # A stand-in for the activator: a Service whose EndpointSlice names one address.
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "activator", "namespace": name},
                "spec": {"ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 8081}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "activator-1",
                    "namespace": name,
                    "labels": {"kubernetes.io/service-name": "activator"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.99.0.1"], "conditions": {"ready": True}}],
                "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 8081}],
            },
        ]
    )
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(
    kube: fixtures.Kube, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[harness.Operator]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    # The reconciler alone: these tests scale Deployments by hand, as the autoscaler would.
    op = harness.Operator(
        kube.kubeconfig,
        namespace,
        log,
        harness.RECONCILER_ONLY,
        TIDESERVE_ACTIVATOR_SERVICE=f"{namespace}/activator",
    )
    with harness.running(op):
        yield op
    print(op.tail())


def get(kube: fixtures.Kube, namespace: str, *what: str) -> Any:
    return kube.get_json("-n", namespace, *what)


def example(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "examples" / name).read_text()) if d]


def wait_ready(kube: fixtures.Kube, namespace: str, name: str, op: harness.Operator) -> None:
    res = kube.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"tisvc/{name}",
        "--timeout=90s",
        check=False,
        timeout=120,
    )
    assert res.returncode == 0, f"{res.stderr}\noperator log:\n{op.tail()}"


def node_of_pods(kube: fixtures.Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = get(kube, namespace, "pods", "-l", f"serving.tideserve.io/inferenceservice={name}")
    nodes = [p["spec"].get("nodeName") for p in pods["items"]]
    assert nodes and all(nodes), nodes
    return [kube.get_json("node", n) for n in nodes]


def test_cpu_model_becomes_ready_on_a_cpu_node(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "01-cpu-model.yaml"))
    wait_ready(kube, namespace, "resnet-cpu", operator)
    dep = get(kube, namespace, "deployment", "resnet-cpu-predictor")
    assert dep["metadata"]["ownerReferences"][0]["name"] == "resnet-cpu"
    get(kube, namespace, "service", "resnet-cpu-predictor")
    route = get(kube, namespace, "service", "resnet-cpu")
    assert "selector" not in route["spec"]
    for node in node_of_pods(kube, namespace, "resnet-cpu"):
        assert "nvidia.com/gpu.product" not in node["metadata"]["labels"]
    obj = get(kube, namespace, "tisvc", "resnet-cpu")
    assert obj["status"]["url"] == f"http://resnet-cpu.{namespace}.svc.cluster.local:8000"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    columns = kube.kubectl("get", "-n", namespace, "tisvc", "resnet-cpu").stdout
    header, row = columns.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "READY", "REPLICAS"]
    assert row.split()[1:3] == ["True", "1"] and "cpu" in row and "http://resnet-cpu" in row


def test_gpu_model_runs_on_a_node_with_that_gpu(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "02-gpu-model.yaml"))
    wait_ready(kube, namespace, "bert-gpu", operator)
    for node in node_of_pods(kube, namespace, "bert-gpu"):
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert get(kube, namespace, "tisvc", "bert-gpu")["status"]["accelerator"] == "gpu:NVIDIA-L4"


def test_route_points_at_ready_pods_and_at_the_activator_at_zero(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.apply(fixtures.isvc("routed", resources={"accelerator": "cpu"}), "-n", namespace)
    wait_ready(kube, namespace, "routed", operator)

    def route_addresses() -> list[str]:
        slice_ = get(kube, namespace, "endpointslice", "routed-route")
        return sorted(a for e in slice_["endpoints"] or [] for a in e["addresses"])

    pod_ips = [
        p["status"]["podIP"]
        for p in get(kube, namespace, "pods", "-l", "serving.tideserve.io/inferenceservice=routed")[
            "items"
        ]
    ]
    fixtures.eventually(lambda: route_addresses() == sorted(pod_ips), TIMEOUT, "route to pods")
    scale(kube, namespace, "routed-predictor", 0)
    fixtures.eventually(lambda: route_addresses() == ["10.99.0.1"], TIMEOUT, "route to activator")
    # The activator gains a pod: routes at zero follow it (activator events refresh them).
    activator_slice = get(kube, namespace, "endpointslice", "activator-1")
    activator_slice["metadata"] = {
        k: activator_slice["metadata"][k] for k in ("name", "namespace", "labels")
    }
    activator_slice["endpoints"].append({"addresses": ["10.99.0.2"], "conditions": {"ready": True}})
    kube.apply(activator_slice, "-n", namespace)
    fixtures.eventually(
        lambda: route_addresses() == ["10.99.0.1", "10.99.0.2"], TIMEOUT, "route follows"
    )

    def scaled_to_zero() -> bool:
        ready = condition(get(kube, namespace, "tisvc", "routed"), "Ready")
        return bool(ready and ready["status"] == "True" and ready["reason"] == "ScaledToZero")

    fixtures.eventually(scaled_to_zero, TIMEOUT, "Ready=True ScaledToZero")


def scale(kube: fixtures.Kube, namespace: str, deployment: str, replicas: int) -> None:
    """As the autoscaler does: the scale subresource, under its own field manager."""
    kube.kubectl(
        "patch",
        "-n",
        namespace,
        "deployment",
        deployment,
        "--subresource=scale",
        "--type=merge",
        "-p",
        f'{{"spec":{{"replicas":{replicas}}}}}',
        "--field-manager=tideserve-autoscaler",
    )


def test_edit_rolls_out_without_resetting_the_scale(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.apply(fixtures.isvc("edited", resources={"accelerator": "cpu"}), "-n", namespace)
    wait_ready(kube, namespace, "edited", operator)
    scale(kube, namespace, "edited-predictor", 3)
    kube.kubectl(
        "patch",
        "-n",
        namespace,
        "tisvc",
        "edited",
        "--type=merge",
        "-p",
        '{"spec":{"runtime":{"args":["--log-verbose=1"]}}}',
    )

    def rolled_out() -> dict[str, Any] | None:
        dep = get(kube, namespace, "deployment", "edited-predictor")
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        return dep if "--log-verbose=1" in args else None

    dep = fixtures.eventually(rolled_out, TIMEOUT, "new template")
    assert dep["spec"]["replicas"] == 3
    sets = get(kube, namespace, "replicasets", "-l", "serving.tideserve.io/inferenceservice=edited")
    assert len(sets["items"]) == 2

    def settled() -> bool:
        obj = get(kube, namespace, "tisvc", "edited")
        d = get(kube, namespace, "deployment", "edited-predictor")
        return (
            obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
            and d["status"].get("updatedReplicas") == 3
            and d["status"].get("readyReplicas") == 3
            and d["spec"]["replicas"] == 3
        )

    fixtures.eventually(settled, TIMEOUT, "rollout of 3 replicas")


def test_gpu_request_with_no_fitting_node_is_pending_with_a_clear_reason(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.apply(
        fixtures.isvc("h100", resources={"accelerator": "gpu", "gpu": {"product": "NVIDIA-H100"}}),
        "-n",
        namespace,
    )

    def pending() -> dict[str, Any] | None:
        ready = condition(get(kube, namespace, "tisvc", "h100"), "Ready")
        return ready if ready and ready["reason"] == "Pending" else None

    ready = fixtures.eventually(pending, TIMEOUT, "Ready=False Pending")
    assert ready["status"] == "False"
    assert "nvidia.com/gpu.product=NVIDIA-H100" in ready["message"]
    schedulable = condition(get(kube, namespace, "tisvc", "h100"), "Schedulable")
    assert schedulable and schedulable["reason"] == "NoNodeOffersGpuProduct"
    events = kube.events(namespace, "h100")
    assert any(e["reason"] == "Pending" and e["type"] == "Warning" for e in events)


def test_delete_garbage_collects_the_children(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.apply(fixtures.isvc("doomed", resources={"accelerator": "cpu"}), "-n", namespace)
    wait_ready(kube, namespace, "doomed", operator)
    assert not get(kube, namespace, "tisvc", "doomed")["metadata"].get("finalizers")
    kube.kubectl("delete", "-n", namespace, "tisvc", "doomed", "--wait=true")

    def gone() -> bool:
        for kind in ("deployment", "service", "endpointslice", "pdb", "replicaset"):
            items = get(kube, namespace, kind, "-l", "serving.tideserve.io/inferenceservice=doomed")
            if items["items"]:
                return False
        return True

    fixtures.eventually(gone, TIMEOUT, "children garbage-collected")


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    names = [f"burst-{i}" for i in range(8)]
    operator.kill()
    kube.apply([fixtures.isvc(n, resources={"accelerator": "cpu"}) for n in names], "-n", namespace)
    operator.start()
    # Kill it again while it works through the burst, then let a fresh process finish.
    fixtures.eventually(
        lambda: get(
            kube, namespace, "deployments", "-l", "serving.tideserve.io/inferenceservice=burst-0"
        )["items"],
        TIMEOUT,
        "first deployment",
        interval=0.05,
    )
    operator.kill()
    operator.start()
    for n in names:
        wait_ready(kube, namespace, n, operator)
    for n in names:
        selector = f"serving.tideserve.io/inferenceservice={n}"
        assert len(get(kube, namespace, "deployments", "-l", selector)["items"]) == 1
        assert len(get(kube, namespace, "replicasets", "-l", selector)["items"]) == 1
        slices = get(kube, namespace, "endpointslices", "-l", f"kubernetes.io/service-name={n}")
        assert [s["metadata"]["name"] for s in slices["items"]] == [f"{n}-route"]


def test_operator_liveness_endpoint_answers(operator: harness.Operator) -> None:
    fixtures.eventually(lambda: operator.healthz() == 200, 30, "liveness")


def test_operator_starts_the_autoscaler_loop_beside_kopf(
    kube: fixtures.Kube, namespace: str, tmp_path: pathlib.Path
) -> None:
    op = harness.Operator(kube.kubeconfig, f"{namespace}-unused", tmp_path / "operator.log")
    with harness.running(op):
        # The loop's first tick (Prometheus may be unreachable from here: a tick still ends).
        fixtures.eventually(
            lambda: (op.metric("tideserve_autoscaler_tick_seconds_count") or 0) >= 1,
            60, f"an autoscaler tick\n{op.tail()}",
        )  # fmt: skip


def test_missing_storage_secret_is_a_condition_not_a_hot_loop(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    model = {"name": "m", "storageUri": "s3://bucket/repo", "storageSecretRef": "nowhere"}
    kube.apply(
        fixtures.isvc("secretless", model=model, resources={"accelerator": "cpu"}), "-n", namespace
    )

    def blocked() -> dict[str, Any] | None:
        ready = condition(get(kube, namespace, "tisvc", "secretless"), "Ready")
        return ready if ready and ready["reason"] == "StorageSecretNotFound" else None

    ready = fixtures.eventually(blocked, TIMEOUT, "Ready=False StorageSecretNotFound")
    assert ready["status"] == "False" and "'nowhere'" in ready["message"]
    # Nothing that would crash-loop was created, and the operator is not retrying hot.
    deployments = get(
        kube, namespace, "deployments", "-l", "serving.tideserve.io/inferenceservice=secretless"
    )
    assert deployments["items"] == []
    # kopf keeps its progress in an annotation: the next try is a minute away, not now.
    progress = json.loads(
        get(kube, namespace, "tisvc", "secretless")["metadata"]["annotations"][PROGRESS]
    )
    delayed = datetime.datetime.fromisoformat(progress["delayed"])
    if delayed.tzinfo is None:
        delayed = delayed.replace(tzinfo=datetime.UTC)
    ahead = (delayed - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert ahead > 30, progress
    assert (operator.metric("tideserve_reconciles_total", result="blocked") or 0) <= 2


def test_a_child_name_another_object_holds_is_a_condition_and_that_object_is_untouched(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    # Another app's Service and ConfigMap, named as tideserve would name the children of
    # an InferenceService "shop": applying over them would take them over, and garbage
    # collection would delete them with the InferenceService.
    kube.kubectl("create", "service", "clusterip", "shop", "--tcp=5432:5432", "-n", namespace)
    kube.kubectl("create", "configmap", "shop-config", "--from-literal=k=v", "-n", namespace)
    kube.apply(fixtures.isvc("shop", resources={"accelerator": "cpu"}), "-n", namespace)

    def taken() -> dict[str, Any] | None:
        ready = condition(get(kube, namespace, "tisvc", "shop"), "Ready")
        return ready if ready and ready["reason"] == "ChildNameTaken" else None

    ready = fixtures.eventually(taken, TIMEOUT, f"Ready=False ChildNameTaken\n{operator.tail()}")
    assert "Service shop is not tideserve's" in ready["message"]
    service = get(kube, namespace, "service", "shop")
    assert "ownerReferences" not in service["metadata"]
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]
    config = get(kube, namespace, "configmap", "shop-config")
    assert config["data"] == {"k": "v"} and "ownerReferences" not in config["metadata"]
    assert get(kube, namespace, "deployments", "-l", f"{ISVC_LABEL}=shop")["items"] == []


def test_an_inference_service_named_after_anothers_child_waits_and_the_other_keeps_it(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    # "twin-predictor" would name its Service "twin-predictor", which is twin's own.
    kube.apply(fixtures.isvc("twin", resources={"accelerator": "cpu"}), "-n", namespace)
    wait_ready(kube, namespace, "twin", operator)
    kube.apply(fixtures.isvc("twin-predictor", resources={"accelerator": "cpu"}), "-n", namespace)

    def taken() -> dict[str, Any] | None:
        ready = condition(get(kube, namespace, "tisvc", "twin-predictor"), "Ready")
        return ready if ready and ready["reason"] == "ChildNameTaken" else None

    ready = fixtures.eventually(taken, TIMEOUT, f"Ready=False ChildNameTaken\n{operator.tail()}")
    assert "Service twin-predictor is InferenceService twin's" in ready["message"]
    service = get(kube, namespace, "service", "twin-predictor")
    assert service["metadata"]["labels"][ISVC_LABEL] == "twin"
    assert (condition(get(kube, namespace, "tisvc", "twin"), "Ready") or {})["status"] == "True"


def test_restart_with_nothing_changed_writes_no_children(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.apply(fixtures.isvc("steady", resources={"accelerator": "cpu"}), "-n", namespace)
    wait_ready(kube, namespace, "steady", operator)
    before = get(kube, namespace, "deployment", "steady-predictor")["metadata"]["resourceVersion"]
    operator.stop()
    operator.start()
    fixtures.eventually(
        lambda: (operator.metric("tideserve_reconciles_total", result="unchanged") or 0) >= 1,
        TIMEOUT, "a resume that found the children applied",
    )  # fmt: skip
    after = get(kube, namespace, "deployment", "steady-predictor")["metadata"]["resourceVersion"]
    assert after == before


def counters(op: harness.Operator) -> dict[str, float]:
    """The operator's own metrics, by series (name and labels as exported)."""
    return harness.samples(op.metrics())


def child_applies(values: dict[str, float], cause: str) -> float:
    return sum(
        v
        for k, v in values.items()
        if k.startswith("tideserve_child_applies_total") and f'cause="{cause}"' in k
    )


def test_a_spec_change_that_renders_nothing_new_applies_no_child(
    kube: fixtures.Kube, namespace: str, tmp_path: pathlib.Path
) -> None:
    """External mode: an HPA moving spec.replicas must not re-apply the children.

    An operator of its own, in a namespace of its own: its counters then count only
    this object (the module's operator may still be resuming others)."""
    ns = f"{namespace}-ext"
    kube.kubectl("create", "namespace", ns)
    op = harness.Operator(
        kube.kubeconfig,
        ns,
        tmp_path / "operator.log",
        harness.RECONCILER_ONLY,
    )
    try:
        with harness.running(op):
            body = fixtures.isvc(
                "external", resources={"accelerator": "cpu"}, scaling={"mode": "external"}
            )
            body["spec"]["replicas"] = 1
            kube.apply(body, "-n", ns)
            wait_ready(kube, ns, "external", op)
            before = fixtures.eventually(lambda: counters(op), TIMEOUT, "operator metrics")
            for replicas in (2, 3, 1, 4):
                kube.kubectl(
                    "patch", "-n", ns, "tisvc", "external", "--type=merge",
                    "-p", f'{{"spec":{{"replicas":{replicas}}}}}',
                )  # fmt: skip

                def observed() -> bool:
                    obj = get(kube, ns, "tisvc", "external")
                    generation = obj["metadata"]["generation"]
                    return bool(obj["status"].get("observedGeneration") == generation)

                fixtures.eventually(observed, TIMEOUT, f"observedGeneration, replicas={replicas}")
            after = counters(op)
    finally:
        kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    unchanged = 'tideserve_reconciles_total{result="unchanged"}'
    # Every generation was handled, and each found its plan applied already.
    assert after.get(unchanged, 0) - before.get(unchanged, 0) >= 4, (before, after)
    assert child_applies(after, "plan") == child_applies(before, "plan") == 5, (before, after)


def owned_fields(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    for entry in obj["metadata"].get("managedFields") or []:
        if entry["manager"] == manager and not entry.get("subresource"):
            fields: dict[str, Any] = entry["fieldsV1"]
            return fields
    return {}


def test_children_deleted_or_edited_by_hand_are_restored_but_not_the_scale(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.apply(fixtures.isvc("drifty", resources={"accelerator": "cpu"}), "-n", namespace)
    wait_ready(kube, namespace, "drifty", operator)
    service_uid = get(kube, namespace, "service", "drifty-predictor")["metadata"]["uid"]
    get(kube, namespace, "endpointslice", "drifty-route")
    scale(kube, namespace, "drifty-predictor", 2)
    kube.kubectl("delete", "-n", namespace, "service", "drifty-predictor")
    kube.kubectl("delete", "-n", namespace, "endpointslice", "drifty-route")
    kube.kubectl(
        "set", "image", "-n", namespace, "deployment/drifty-predictor", "triton=triton:by-hand"
    )
    kube.kubectl(
        "label",
        "-n",
        namespace,
        "service",
        "drifty",
        "--overwrite",
        "app.kubernetes.io/component=by-hand",
    )

    def restored() -> bool:
        svc = get(kube, namespace, "service", "drifty-predictor")
        dep = get(kube, namespace, "deployment", "drifty-predictor")
        route = get(kube, namespace, "service", "drifty")
        get(kube, namespace, "endpointslice", "drifty-route")
        return (
            svc["metadata"]["uid"] != service_uid
            and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "triton:test"
            and route["metadata"]["labels"]["app.kubernetes.io/component"] == "route"
        )

    fixtures.eventually(restored, TIMEOUT, f"children restored\n{operator.tail()}")
    dep = get(kube, namespace, "deployment", "drifty-predictor")
    assert dep["spec"]["replicas"] == 2
    assert "f:replicas" not in owned_fields(dep, "tideserve").get("f:spec", {})
    repairs = counters(operator)
    assert sum(v for k, v in repairs.items() if k.startswith("tideserve_drift_repairs")) >= 3

    # Scaling by hand (as an HPA or the autoscaler would) is not drift: nothing resets it,
    # through all the Deployment and pod events (each one a refresh) of the scale-up.
    scale(kube, namespace, "drifty-predictor", 3)

    def scaled() -> bool:
        d = get(kube, namespace, "deployment", "drifty-predictor")
        return bool(d["status"].get("readyReplicas") == 3)

    fixtures.eventually(scaled, TIMEOUT, "3 ready replicas")
    wait_ready(kube, namespace, "drifty", operator)
    assert get(kube, namespace, "deployment", "drifty-predictor")["spec"]["replicas"] == 3


def test_deleting_the_deployment_recreates_it_and_the_status_follows(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.apply(fixtures.isvc("gone", resources={"accelerator": "cpu"}), "-n", namespace)
    wait_ready(kube, namespace, "gone", operator)
    uid = get(kube, namespace, "deployment", "gone-predictor")["metadata"]["uid"]
    kube.kubectl("delete", "-n", namespace, "deployment", "gone-predictor", "--wait=true")

    def recreated() -> bool:
        dep = get(kube, namespace, "deployment", "gone-predictor")
        return bool(dep["metadata"]["uid"] != uid and dep["status"].get("readyReplicas") == 1)

    fixtures.eventually(recreated, TIMEOUT, f"Deployment re-created\n{operator.tail()}")
    wait_ready(kube, namespace, "gone", operator)


def test_children_deleted_while_the_operator_was_down_are_restored_on_resume(
    kube: fixtures.Kube, namespace: str, operator: harness.Operator
) -> None:
    kube.apply(fixtures.isvc("offline", resources={"accelerator": "cpu"}), "-n", namespace)
    wait_ready(kube, namespace, "offline", operator)
    uid = get(kube, namespace, "service", "offline-predictor")["metadata"]["uid"]
    operator.stop()
    try:
        kube.kubectl("delete", "-n", namespace, "service", "offline-predictor", "--wait=true")
    finally:
        operator.start()

    def restored() -> bool:
        svc = get(kube, namespace, "service", "offline-predictor")
        return bool(svc["metadata"]["uid"] != uid)

    fixtures.eventually(restored, TIMEOUT, f"Service re-created\n{operator.tail()}")
