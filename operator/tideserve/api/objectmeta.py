"""What the API server checks outside the CRD's schema: metadata and the status stanza.

`kubectl apply` of an InferenceService is refused for a label, annotation or finalizer the
API server does not accept, for a field metadata does not have, and for a field the status
schema does not have (strict field validation, even though the API server then drops what
a user writes into status); and `kubectl apply` itself keeps a copy of the manifest in an
annotation, which annotations' size limit then bounds. Each function returns the problems
as "<field>: <why>" lines, the field named as the API server names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pydantic

from tideserve.api import status as status_api

# ObjectMeta's fields (k8s.io/apimachinery/pkg/apis/meta/v1, JSON names).
FIELDS = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
)  # fmt: skip
# k8s.io/apimachinery/pkg/util/validation: IsQualifiedName and IsValidLabelValue.
_NAME_PART = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
ANNOTATIONS_MAX_BYTES = 256 * 1024
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def qualified_name_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not re.fullmatch(_PREFIX, prefix)):
        return f"{key!r}: the prefix must be a DNS-1123 subdomain"
    if not name or len(name) > 63 or not re.fullmatch(_NAME_PART, name):
        return (
            f"{key!r}: name part must be at most 63 alphanumeric characters, '-', '_' or "
            "'.', starting and ending with an alphanumeric character"
        )
    return None


def metadata_problems(metadata: Mapping[str, Any]) -> list[str]:
    found = [f"metadata.{key}: unknown field" for key in metadata if key not in FIELDS]
    for field in ("labels", "annotations"):
        entries = metadata.get(field) or {}
        if not isinstance(entries, dict):
            found.append(f"metadata.{field}: must be a map of strings")
            continue
        for key, value in entries.items():
            if value is not None and not isinstance(value, str):
                found.append(f"metadata.{field}: {key!r}: values must be strings")
            elif problem := qualified_name_problem(key.lower() if field == "annotations" else key):
                found.append(f"metadata.{field}: {problem}")
            elif field == "labels" and value and not _label_value_ok(value):
                found.append(
                    f"metadata.labels: {value!r}: a label value is at most 63 alphanumeric "
                    "characters, '-', '_' or '.', starting and ending with an alphanumeric one"
                )
    finalizers = metadata.get("finalizers") or []
    if not isinstance(finalizers, list):
        found.append("metadata.finalizers: must be a list of strings")
    else:
        for finalizer in finalizers:
            if not isinstance(finalizer, str) or qualified_name_problem(finalizer):
                found.append(f"metadata.finalizers: {finalizer!r} is not a qualified name")
    return found


def _label_value_ok(value: str) -> bool:
    return len(value) <= 63 and re.fullmatch(_LABEL_VALUE, value) is not None


def annotations_size_problem(document: Mapping[str, Any]) -> str | None:
    """Annotations hold at most 256 KiB, and client-side `kubectl apply` adds a copy of the
    whole manifest to them (kubectl.kubernetes.io/last-applied-configuration)."""
    metadata = document.get("metadata")
    annotations = (metadata.get("annotations") if isinstance(metadata, dict) else None) or {}
    if not isinstance(annotations, dict):
        return None
    own = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    size = sum(_go_bytes(str(k)) + _go_bytes(str(v or "")) for k, v in own.items())
    if size > ANNOTATIONS_MAX_BYTES:
        return f"metadata.annotations: Too long: {size} bytes, at most {ANNOTATIONS_MAX_BYTES}"
    copy = _go_json(document) + "\n"
    total = size + _go_bytes(LAST_APPLIED) + _go_bytes(copy)
    if total > ANNOTATIONS_MAX_BYTES:
        return (
            f"metadata.annotations: Too long: `kubectl apply` keeps a copy of this manifest "
            f"({_go_bytes(copy)} bytes) in the annotation {LAST_APPLIED}, and annotations "
            f"hold at most {ANNOTATIONS_MAX_BYTES} bytes in all; make the manifest smaller "
            "(or use kubectl apply --server-side)"
        )
    return None


def _go_json(value: object) -> str:
    """As Go's json.Marshal writes it: compact, keys sorted, <, >, & and U+2028/9 escaped."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _go_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def status_problems(status: object) -> list[str]:
    """Fields the status schema does not have: the API server refuses them at apply, even
    though it drops the rest of what a user writes into status."""
    if not isinstance(status, dict):
        return []
    try:
        status_api.InferenceServiceStatus.model_validate(status)
    except pydantic.ValidationError as error:
        return [
            "status"
            + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
            + ": unknown field"
            for e in error.errors()
            if e["type"] == "extra_forbidden"
        ]
    return []
