"""The predictor Deployment: Triton serving one model.

The manifest deliberately has no `spec.replicas`: the autoscaler is the only writer of
replicas (scale subresource, its own field manager). Server-side apply leaves fields it
is not sent alone, so a spec edit rolls the pods out without resetting the scale.
"""

from __future__ import annotations

from typing import Any

from tideserve.api import spec as spec_api
from tideserve.render import hardware as hardware_mod
from tideserve.render import names, storage, triton_config

UID = 1000
# A model can take many minutes to download and load onto a GPU: the startup probe
# allows 30 minutes before liveness takes over.
STARTUP_PERIOD_SECONDS = 10
STARTUP_FAILURE_THRESHOLD = 180
SHM_SIZE = "1Gi"
# Triton's Python backend passes tensors through shared memory; the default 64Mi is small.
SHM_PATH = "/dev/shm"  # noqa: S108 (inside the pod)


def container_security_context() -> dict[str, Any]:
    """The restricted Pod Security Standard, per container, and a read-only root
    filesystem. What each container writes is on an emptyDir (checked with strace on the
    test bed's tritonserver): Triton its Python backend's environments in /tmp and its
    shared-memory regions in /dev/shm (a __pycache__ next to model.py is skipped on the
    read-only repository); the fetch step the model into /models and its tools' state in
    HOME=/tmp; the config step only /models."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def triton_args(spec: spec_api.InferenceServiceSpec) -> list[str]:
    args = [
        f"--model-repository={storage.MODEL_ROOT}",
        "--model-control-mode=explicit",
        f"--load-model={spec.model.name}",
        "--strict-readiness=true",
        "--allow-metrics=true",
        f"--http-port={names.HTTP_PORT}",
        f"--grpc-port={names.GRPC_PORT}",
        f"--metrics-port={names.METRICS_PORT}",
        "--metrics-config=summary_latencies=true",  # SLO attainment; p99 for right-sizing
        "--exit-on-error=true",
    ]
    if spec.model.response_cache:
        args.append(f"--cache-config=local,size={triton_config.RESPONSE_CACHE_BYTES}")
    return args + list(spec.runtime.args)


def _probe(path: str, period: int, failures: int, timeout: int = 3) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def triton_mounts(
    spec: spec_api.InferenceServiceSpec, hw: hardware_mod.Hardware
) -> list[dict[str, Any]]:
    override = triton_config.needed(spec.model, hw)
    mounts = [
        storage.repository_mount(spec.model, writable_repository=override),
        {"name": "dshm", "mountPath": SHM_PATH},
        {"name": storage.TMP_VOLUME, "mountPath": storage.TMP_PATH},
    ]
    source = storage.source_mount(spec.model) if override else None
    if source is not None:
        # The merged repository links to the claim's files: Triton must see them too,
        # at the same path.
        mounts.append(source)
    return mounts


# Long enough for a pod's termination to reach the route (the operator's EndpointSlice
# of <name>) and every kube-proxy, a few seconds on a loaded node; inside the grace
# period, with Triton's own 30 s exit timeout after it.
PRE_STOP_SECONDS = 10
TERMINATION_GRACE_SECONDS = 60


def triton_container(
    spec: spec_api.InferenceServiceSpec, image: str, hw: hardware_mod.Hardware
) -> dict[str, Any]:
    return {
        "name": "triton",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["tritonserver"],
        "args": [names.literal(arg) for arg in triton_args(spec)],
        "env": [{"name": e.name, "value": names.literal(e.value)} for e in spec.runtime.env],
        "ports": [
            {"name": "http", "containerPort": names.HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": names.GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": names.METRICS_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _probe(
            "/v2/health/live", STARTUP_PERIOD_SECONDS, STARTUP_FAILURE_THRESHOLD
        ),
        "readinessProbe": _probe("/v2/health/ready", 5, 3),
        "livenessProbe": _probe("/v2/health/live", 10, 6, timeout=5),
        # Triton stops accepting on SIGTERM; the endpoint's removal reaches kube-proxy and
        # the activator's route a moment later. Without this pause, requests sent in that
        # moment are refused (measured live: 51 lost in one scale-down from 3 to 1).
        # An exec of the image's sleep, not the kubelet's sleep action: that one is off by
        # default before Kubernetes 1.30 and a template using it is refused there. An image
        # without sleep fails the hook (an Event) and stops at once, as without a pause.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "resources": hardware_mod.container_resources(hw),
        "volumeMounts": triton_mounts(spec, hw),
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def deployment(
    owner: names.Owner,
    spec: spec_api.InferenceServiceSpec,
    default_image: str,
    hw: hardware_mod.Hardware | None = None,
    fetch_images: storage.FetchImages = storage.DEFAULT_FETCH_IMAGES,
) -> dict[str, Any]:
    """The Deployment to apply. `hw` overrides the spec's hardware (right-sizing: auto)."""
    hw = hw if hw is not None else hardware_mod.from_spec(spec.resources)
    image = spec.runtime.image or default_image
    override = triton_config.needed(spec.model, hw)
    init: list[dict[str, Any]] = []
    fetch = storage.fetch_container(spec.model, container_security_context(), fetch_images)
    if fetch is not None:
        init.append(fetch)
    volumes = storage.volumes(spec.model, writable_repository=override)
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(names.METRICS_PORT),
        "prometheus.io/path": "/metrics",
        names.ISVC_LABEL: owner.name,
        "kubectl.kubernetes.io/default-container": "triton",
    }
    if override:
        source = storage.source_mount(spec.model) if fetch is None else None
        init.append(
            triton_config.merge_container(spec.model, image, source, container_security_context())
        )
        volumes.append(triton_config.volume(owner))
        annotations[names.CONFIG_HASH_ANNOTATION] = triton_config.digest(spec.model, hw)
    volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}})
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        # Many Services in a namespace would otherwise flood the environment.
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "containers": [triton_container(spec, image, hw)],
        "volumes": volumes,
    }
    if init:
        pod_spec["initContainers"] = init
    if selector := hardware_mod.node_selector(hw):
        pod_spec["nodeSelector"] = selector
    if tolerations := hardware_mod.tolerations(hw):
        pod_spec["tolerations"] = tolerations
    labels = names.common_labels(owner.name) | {names.COMPONENT_LABEL: "predictor"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names.metadata(owner, names.predictor(owner.name), "predictor")
        | {
            "annotations": {
                names.ACCELERATOR_ANNOTATION: hw.label,
                names.HARDWARE_ANNOTATION: hardware_mod.to_annotation(hw),
            }
        },
        "spec": {
            "selector": {"matchLabels": names.selector_labels(owner.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "revisionHistoryLimit": 3,
            # Model loads are slow; a rollout is only "stuck" after the startup budget.
            "progressDeadlineSeconds": STARTUP_PERIOD_SECONDS * STARTUP_FAILURE_THRESHOLD + 300,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }
