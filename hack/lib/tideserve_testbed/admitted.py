"""What follows from one manifest the API server admits: each rendered child is accepted by
the API server too (server-side dry run, in a namespace enforcing the restricted Pod
Security Standard, the predictor pod itself included), and `tideserve validate` agrees
with the API server's verdict on the manifest.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tideserve.api import manifests, resource
from tideserve.render import children, names, network
from tideserve_testbed import fixtures

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"


@dataclasses.dataclass(frozen=True)
class Verdict:
    admitted: bool
    api_message: str
    validate_problems: tuple[str, ...]
    refused_children: tuple[str, ...] = ()
    config_map: dict[str, str] | None = None  # the rendered Triton override, if any


@dataclasses.dataclass(frozen=True)
class Checker:
    kube: fixtures.Kube
    namespace: str

    def check(self, manifest: dict[str, Any]) -> Verdict:
        manifest = json.loads(json.dumps(manifest))
        stored, message = self.kube.dry_run_create(manifest, self.namespace)
        problems = tuple(manifests.problems(manifest))
        if stored is None:
            return Verdict(False, message, problems)
        spec = resource.parse_spec(stored["spec"])  # with the API server's defaults
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
        refused = []
        for child in [*rendered, pod]:
            accepted, why = self.kube.dry_run_create(child, self.namespace)
            if accepted is None:
                refused.append(f"{child['kind']} {child['metadata']['name']}: {why}")
        config_map = next((m["data"] for m in rendered if m["kind"] == "ConfigMap"), None)
        return Verdict(True, "", problems, tuple(refused), config_map)
