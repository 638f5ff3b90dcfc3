"""Getting the model repository into the pod: a fetch init container, or a PVC mount.

s3://, gs:// and https:// are copied by a small standard image into an emptyDir that
Triton reads at /models; credentials come only from the Secret named in
spec.model.storageSecretRef (as environment for S3 and HTTPS, as a mounted file for GCS).
pvc:// mounts the claim read-only, directly, with no copy. The URI reaches the shell
through an environment variable, never spliced into the script, so it cannot inject.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.render import names

MODEL_ROOT = "/models"
SOURCE_ROOT = "/model-source"
REPOSITORY_VOLUME = "model-repository"
SOURCE_VOLUME = "model-source"
TMP_VOLUME = "tmp"
# Paths inside the pod (emptyDir-backed), not on the operator's host.
TMP_PATH = "/tmp"  # noqa: S108
SECRET_VOLUME = "storage-credentials"  # noqa: S105 (a volume name)
SECRET_MOUNT = "/var/run/secrets/tideserve/storage"  # noqa: S105 (a path)

AWS_CLI_IMAGE = "docker.io/amazon/aws-cli:2.22.35"
GCLOUD_IMAGE = "gcr.io/google.com/cloudsdktool/google-cloud-cli:502.0.0-slim"
CURL_IMAGE = "docker.io/curlimages/curl:8.11.1"


@dataclasses.dataclass(frozen=True)
class FetchImages:
    """The image of the fetch step per scheme (a mirror's, in a cluster without Docker Hub
    or gcr.io; the operator's TIDESERVE_FETCH_IMAGE_* settings). s3 needs `aws` (v1 or v2),
    gs `gcloud`, https `curl`, each with `sh`, `tar` and (https) `unzip`."""

    s3: str = AWS_CLI_IMAGE
    gs: str = GCLOUD_IMAGE
    https: str = CURL_IMAGE


DEFAULT_FETCH_IMAGES = FetchImages()

_S3_SCRIPT = """set -eu
if [ -z "${AWS_ACCESS_KEY_ID:-}" ]; then set -- --no-sign-request; fi
aws s3 sync "$STORAGE_URI" /models --only-show-errors "$@"
"""
_GCS_SCRIPT = """set -eu
gcloud storage rsync --recursive "$STORAGE_URI" /models
"""
# The archive type comes from the URI's path: a query (a presigned URL's signature) or a
# fragment after it says nothing about the file, and a name may be upper case (.ZIP).
_HTTPS_SCRIPT = """set -eu -o pipefail
if [ -n "${AUTHORIZATION:-}" ]; then set -- -H "Authorization: $AUTHORIZATION"; fi
case "${STORAGE_URI%%[?#]*}" in
  *.[Zz][Ii][Pp]) curl -fsSL --retry 5 "$@" -o /tmp/model.zip "$STORAGE_URI"
         unzip -q /tmp/model.zip -d /models && rm /tmp/model.zip ;;
  *.[Tt][Aa][Rr]) curl -fsSL --retry 5 "$@" "$STORAGE_URI" | tar -xf - -C /models ;;
  *)     curl -fsSL --retry 5 "$@" "$STORAGE_URI" | tar -xzf - -C /models ;;
esac
"""


@dataclasses.dataclass(frozen=True)
class Location:
    scheme: str  # s3, gs, https or pvc
    uri: str
    claim: str = ""  # pvc only
    sub_path: str = ""  # pvc only: folder inside the claim


def parse(uri: str) -> Location:
    scheme, _, rest = uri.partition("://")
    if scheme == "pvc":
        claim, _, sub_path = rest.partition("/")
        return Location(scheme=scheme, uri=uri, claim=claim, sub_path=sub_path.strip("/"))
    return Location(scheme=scheme, uri=uri)


def volumes(model: spec_api.ModelSpec, writable_repository: bool) -> list[dict[str, Any]]:
    """Pod volumes for the repository (and credentials, and scratch space)."""
    location = parse(model.storage_uri)
    out: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {}}]
    if location.scheme == "pvc":
        claim = {"claimName": location.claim, "readOnly": True}
        if writable_repository:
            # The config override needs a writable copy of the model folder's top level.
            out.append({"name": SOURCE_VOLUME, "persistentVolumeClaim": claim})
            out.append({"name": REPOSITORY_VOLUME, "emptyDir": {}})
        else:
            out.append({"name": REPOSITORY_VOLUME, "persistentVolumeClaim": claim})
    else:
        out.append({"name": REPOSITORY_VOLUME, "emptyDir": {}})
    if location.scheme == "gs" and model.storage_secret_ref:
        out.append(
            {
                "name": SECRET_VOLUME,
                "secret": {"secretName": model.storage_secret_ref, "defaultMode": 0o440},
            }
        )
    return out


def repository_mount(model: spec_api.ModelSpec, writable_repository: bool) -> dict[str, Any]:
    """How Triton mounts /models."""
    location = parse(model.storage_uri)
    mount: dict[str, Any] = {"name": REPOSITORY_VOLUME, "mountPath": MODEL_ROOT, "readOnly": True}
    if location.scheme == "pvc" and not writable_repository and location.sub_path:
        mount["subPath"] = location.sub_path
    return mount


def source_mount(model: spec_api.ModelSpec) -> dict[str, Any] | None:
    """Where the config step reads a PVC repository from, when it needs a writable copy."""
    location = parse(model.storage_uri)
    if location.scheme != "pvc":
        return None
    mount: dict[str, Any] = {"name": SOURCE_VOLUME, "mountPath": SOURCE_ROOT, "readOnly": True}
    if location.sub_path:
        mount["subPath"] = location.sub_path
    return mount


def fetch_container(
    model: spec_api.ModelSpec,
    security_context: dict[str, Any],
    images: FetchImages = DEFAULT_FETCH_IMAGES,
) -> dict[str, Any] | None:
    """The init container that copies the repository into /models; None for pvc://."""
    location = parse(model.storage_uri)
    if location.scheme == "pvc":
        return None
    image, script = {
        "s3": (images.s3, _S3_SCRIPT),
        "gs": (images.gs, _GCS_SCRIPT),
        "https": (images.https, _HTTPS_SCRIPT),
    }[location.scheme]
    env: list[dict[str, Any]] = [
        {"name": "STORAGE_URI", "value": names.literal(location.uri)},
        # The tools want a writable home; the image's own may not be (non-root uid).
        {"name": "HOME", "value": TMP_PATH},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": REPOSITORY_VOLUME, "mountPath": MODEL_ROOT},
        {"name": TMP_VOLUME, "mountPath": TMP_PATH},
    ]
    container: dict[str, Any] = {
        "name": "fetch-model",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "env": env,
        "volumeMounts": mounts,
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "securityContext": security_context,
    }
    secret = model.storage_secret_ref
    if secret and location.scheme in {"s3", "https"}:
        container["envFrom"] = [{"secretRef": {"name": secret}}]
    if secret and location.scheme == "gs":
        env.append(
            {"name": "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", "value": f"{SECRET_MOUNT}/gcs.json"}
        )
        mounts.append({"name": SECRET_VOLUME, "mountPath": SECRET_MOUNT, "readOnly": True})
    return container
