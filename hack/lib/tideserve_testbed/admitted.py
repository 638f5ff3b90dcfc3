"""What follows from one manifest the API server admits: each rendered child is accepted by
the API server too (server-side dry run, in a namespace enforcing the restricted Pod
Security Standard, the predictor pod itself included), and `tideserve validate` agrees
with the API server's verdict on the manifest.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import kubernetes.client
from kubernetes import dynamic

from tideserve.api import manifests, resource
from tideserve.render import children, names, network

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"


@dataclasses.dataclass(frozen=True)
class Verdict:
    admitted: bool
    api_message: str
    validate_problems: tuple[str, ...]
    refused_children: tuple[str, ...] = ()
    config_map: dict[str, str] | None = None  # the rendered Triton override, if any


class Checker:
    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.dynamic = dynamic.DynamicClient(api)
        self.namespace = namespace
        self._kinds: dict[tuple[str, str], Any] = {}

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._kinds:
            self._kinds[key] = self.dynamic.resources.get(api_version=api_version, kind=kind)
        return self._kinds[key]

    def admit(self, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The object as the API server would store it (defaults applied), or its refusal."""
        try:
            stored = self.custom.create_namespaced_custom_object(
                resource.GROUP, resource.VERSION, self.namespace, resource.PLURAL,
                manifest, dry_run="All", field_validation="Strict",
            )  # fmt: skip
        except kubernetes.client.ApiException as error:
            if error.status not in (400, 422):
                raise
            return None, str(error.body)
        return dict(stored), ""

    def _dry_run(self, manifest: dict[str, Any]) -> str | None:
        """None if the API server accepts the child; else why not."""
        kind = self._resource(manifest["apiVersion"], manifest["kind"])
        try:
            kind.create(body=manifest, namespace=self.namespace, dry_run="All")
        except kubernetes.client.ApiException as error:
            return f"{manifest['kind']} {manifest['metadata']['name']}: {error.body}"
        return None

    def check(self, manifest: dict[str, Any]) -> Verdict:
        manifest = json.loads(json.dumps(manifest))
        stored, message = self.admit(manifest)
        problems = tuple(manifests.problems(manifest))
        if stored is None:
            return Verdict(False, message, problems)
        spec = resource.parse_spec(stored["spec"])
        owner = names.Owner(self.namespace, manifest["metadata"]["name"], "0000-uid", 1)
        plan = children.plan(owner, spec, children.Options(triton_image=TRITON_IMAGE))
        endpoint = network.Endpoint(
            ip="10.244.0.7", ready=True, pod=f"{owner.name}-predictor-0", namespace=owner.namespace
        )
        route = network.route_slice(owner, network.Backends("predictor", (endpoint,)))
        rendered = [*plan.apply, route]
        deployment = next(m for m in rendered if m["kind"] == "Deployment")
        template = deployment["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{owner.name}-predictor-0", **template["metadata"]},
            "spec": template["spec"],
        }
        refused = tuple(r for m in [*rendered, pod] if (r := self._dry_run(m)) is not None)
        config_map = next((m["data"] for m in rendered if m["kind"] == "ConfigMap"), None)
        return Verdict(True, "", problems, refused, config_map)
