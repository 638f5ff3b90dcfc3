"""Child names, labels, selectors and owner references of an InferenceService."""

from __future__ import annotations

import dataclasses
from typing import Any

from tideserve.api import resource

PREDICTOR_APP = "tideserve-predictor"
ISVC_LABEL = f"{resource.LABEL_PREFIX}/inferenceservice"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "tideserve"
CONFIG_HASH_ANNOTATION = f"{resource.LABEL_PREFIX}/config-hash"
ACCELERATOR_ANNOTATION = f"{resource.LABEL_PREFIX}/accelerator"
HARDWARE_ANNOTATION = f"{resource.LABEL_PREFIX}/hardware"
PLAN_DIGEST_ANNOTATION = f"{resource.LABEL_PREFIX}/plan-digest"

HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002


@dataclasses.dataclass(frozen=True)
class Owner:
    """What children need to know about their InferenceService."""

    namespace: str
    name: str
    uid: str
    generation: int = 0

    @classmethod
    def from_body(cls, body: Any) -> Owner:
        meta = body["metadata"]
        return cls(
            namespace=str(meta["namespace"]),
            name=str(meta["name"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 0),
        )


def literal(text: str) -> str:
    """`text` as a container's env value, command or arg that reaches the process as
    written: Kubernetes reads $(NAME) there as an earlier variable's value and $$ as $
    (a value "pa$$word" ran as "pa$word"). With every variable the user's own literal,
    such a reference adds nothing the user could not write out, and it would let a value
    reach Triton unchecked (--id=$(A)), so every $ is escaped."""
    return text.replace("$", "$$")


def predictor(name: str) -> str:
    return f"{name}-predictor"


def route(name: str) -> str:
    return f"{name}-route"


def config(name: str) -> str:
    return f"{name}-config"


def selector_labels(name: str) -> dict[str, str]:
    """The predictor pods' selector: stable for the object's life (selectors are immutable)."""
    return {"app.kubernetes.io/name": PREDICTOR_APP, ISVC_LABEL: name}


def selector_string(name: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(name).items())


def common_labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": PREDICTOR_APP,
        "app.kubernetes.io/instance": name,
        MANAGED_BY_LABEL: MANAGED_BY,
        ISVC_LABEL: name,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": common_labels(owner.name) | {COMPONENT_LABEL: component},
        "ownerReferences": [owner_reference(owner)],
    }


def url(owner: Owner, protocol: str) -> str:
    """In-cluster URL of the user-facing Service."""
    port = GRPC_PORT if protocol == "grpc" else HTTP_PORT
    scheme = "grpc" if protocol == "grpc" else "http"
    return f"{scheme}://{owner.name}.{owner.namespace}.svc.cluster.local:{port}"
