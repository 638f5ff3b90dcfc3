"""The Helm chart, rendered by a real helm and checked against the Kubernetes schemas.

Needs the helm binary built by `hack/build-tools helm` (or TIDESERVE_HELM). Refresh the
rendering snapshot with TIDESERVE_UPDATE_SNAPSHOTS=1.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess
import tempfile
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tideserve import settings
from tideserve.activator import server as activator_server
from tideserve.api import formats
from tideserve.render import names
from tideserve.rightsizing import shadow

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tideserve"
SNAPSHOT = pathlib.Path(__file__).resolve().parent / "snapshots" / "chart-default.yaml"
NAMESPACE = "tideserve-system"
RELEASE = "ts"
# Kubernetes version for helm's capabilities and the JSON schemas: the test bed's (hack/tools/k8s).
KUBE_VERSION = "1.35.0"

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"rbac": {"namespaced": True}, "watchNamespaces": ["team-a", "team-b"]},
    "namespaced-no-cluster-reads": {
        "rbac": {"namespaced": True, "clusterScopedReads": False},
        "watchNamespaces": ["team-a"],
    },
    "activator-disabled": {"activator": {"enabled": False}},
    "single-activator": {"activator": {"replicas": 1}},
    "no-election": {"operator": {"replicas": 1, "leaderElection": {"enabled": False}}},
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "dashboards": {"enabled": True, "annotations": {"grafana_folder": "Serving"}},
    },
    "customised": {
        "image": {"tag": "dev", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "operator": {
            "podLabels": {"team": "ml", "app.kubernetes.io/component": "hijack"},
            "podAnnotations": {"example.com/note": "x"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "extraEnv": [{"name": "EXTRA", "value": "1"}],
            "priorityClassName": "system-cluster-critical",
        },
        "autoscaler": {"tickSeconds": 2.5},
        "fullnameOverride": "tide",
    },
}

# Everything the operator may do, and nothing more (see templates/rbac-operator.yaml).
OPERATOR_NAMESPACED_RULES = {
    ("serving.tideserve.io", "inferenceservices"): {"get", "list", "watch", "patch", "update"},
    ("serving.tideserve.io", "inferenceservices/status"): {"get", "patch", "update"},
    ("serving.tideserve.io", "inferenceservices/finalizers"): {"update"},
    ("serving.tideserve.io", "inferenceservices/scale"): {"get", "patch", "update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("apps", "deployments/scale"): {"get", "patch", "update"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("policy", "poddisruptionbudgets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("monitoring.coreos.com", "servicemonitors"): {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    },
    ("", "configmaps"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "events"): {"create", "patch"},
    ("", "pods"): {"get", "list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch", "create", "patch"},
    ("networking.k8s.io", "networkpolicies"): {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    },
    ("", "secrets"): {"get"},
}
OPERATOR_CLUSTER_READS = {
    ("", "nodes"): {"get", "list", "watch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"list", "watch"},
}
ACTIVATOR_RULES = {
    ("serving.tideserve.io", "inferenceservices"): {"get", "list", "watch"},
    ("", "services"): {"get", "list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch"},
}

# The metric names the operator, the activator and Triton export: the dashboard's contract.
DASHBOARD_METRICS = [
    "tideserve_desired_replicas",
    "tideserve_current_replicas",
    "tideserve_scaling_decisions_total",
    "tideserve_autoscaler_tick_seconds_bucket",
    "tideserve_signal_age_seconds",
    "tideserve_activator_held_requests",
    "tideserve_activator_cold_start_seconds_bucket",
    "tideserve_activator_requests_total",
    "tideserve_cost_per_hour",
    "tideserve_cost_per_1k_inferences",
    "nv_inference_pending_request_count",
]


CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}

# --- helpers -------------------------------------------------------------------------------


@functools.cache
def helm_binary() -> str:
    explicit = os.environ.get("TIDESERVE_HELM")
    path = pathlib.Path(explicit) if explicit else pathlib.Path.home() / ".cache/tideserve/bin/helm"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"helm not found at {path}: run `hack/build-tools helm` (or set TIDESERVE_HELM)",
            pytrace=False,
        )
    return str(path)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def with_values(values: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with `values` written to a -f file (lists and nesting survive intact)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(values, handle)
        handle.flush()
        return helm(*args, "-f", handle.name)


def template(values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return with_values(
        values,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    )


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (a template bug PyYAML would hide)."""


def _no_duplicates(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    duplicates = {key for key in keys if keys.count(key) > 1}
    if duplicates:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {sorted(duplicates)}", node.start_mark
        )
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


@functools.cache
def rendered_text(variant: str) -> str:
    result = template(VARIANTS[variant])
    assert result.returncode == 0, f"helm template ({variant}) failed:\n{result.stderr}"
    return result.stdout


def render(variant: str) -> list[dict[str, Any]]:
    docs = yaml.load_all(rendered_text(variant), Loader=StrictLoader)
    return [doc for doc in docs if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def deployment_container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    pod = one(docs, "Deployment", name)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return container


def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


OPERATOR = f"{RELEASE}-tideserve"
ACTIVATOR = f"{RELEASE}-tideserve-activator"


# --- lint and schema validity ----------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_strict_passes(variant: str) -> None:
    result = with_values(VARIANTS[variant], "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_manifest_is_valid_for_kubernetes(variant: str) -> None:
    docs = render(variant)
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # not a Kubernetes type; checked in test_servicemonitors_*
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            pytest.fail(f"{variant}: {name} is invalid: {error}", pytrace=False)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_namespaced_objects_live_in_the_release_or_a_watched_namespace(variant: str) -> None:
    allowed = {NAMESPACE, *VARIANTS[variant].get("watchNamespaces", [])}
    for doc in render(variant):
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] in allowed, doc["metadata"]


def test_values_yaml_is_valid_against_the_chart_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(chart_values(), schema)


def test_image_values_take_the_images_spec_runtime_image_takes() -> None:
    # The default Triton image stands in for spec.runtime.image: the same rule (the CRD's).
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    assert schema["triton"]["properties"]["image"]["pattern"] == formats.IMAGE
    for scheme in ("s3", "gs", "https"):
        assert schema["fetchImages"]["properties"][scheme]["pattern"] == "^$|" + formats.IMAGE


def test_readme_documents_every_top_level_value() -> None:
    readme = (CHART / "README.md").read_text()
    undocumented = [key for key in chart_values() if f"`{key}" not in readme]
    assert not undocumented, f"charts/tideserve/README.md lacks {undocumented}"


# --- security -----------------------------------------------------------------------------------


def assert_restricted(pod: dict[str, Any], where: str) -> None:
    """The fields the "restricted" Pod Security Standard checks, plus a read-only root."""
    pod_ctx = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(flag), f"{where}: {flag}"
    allowed_volumes = {"configMap", "emptyDir", "secret", "projected", "downwardAPI", "csi"}
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= allowed_volumes, f"{where}: volume {volume['name']} uses {kinds}"
    assert pod_ctx.get("runAsUser") != 0, f"{where}: pod runs as root"
    for container in pod["containers"] + pod.get("initContainers", []):
        ctx = container.get("securityContext", {})
        label = f"{where}/{container['name']}"
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, label
        assert ctx.get("runAsUser", pod_ctx.get("runAsUser")) not in (0, None), label
        assert ctx.get("allowPrivilegeEscalation") is False, label
        assert not ctx.get("privileged"), label
        assert "ALL" in ctx.get("capabilities", {}).get("drop", []), label
        assert set(ctx.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, label
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        assert seccomp.get("type") in {"RuntimeDefault", "Localhost"}, label
        assert ctx.get("readOnlyRootFilesystem") is True, label
        assert not any(port.get("hostPort") for port in container.get("ports", [])), label
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        tmp = [v for v in pod["volumes"] if v["name"] == mounts.get("/tmp")]
        assert tmp and "emptyDir" in tmp[0], f"{label}: no writable emptyDir at /tmp"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pods_meet_the_restricted_pod_security_standard(variant: str) -> None:
    deployments = by_kind(render(variant), "Deployment")
    assert deployments
    for deployment in deployments:
        where = f"{variant}: {deployment['metadata']['name']}"
        assert_restricted(deployment["spec"]["template"]["spec"], where)


def test_images_run_as_the_non_root_user_of_the_dockerfile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER 65532:65532" in dockerfile
    assert chart_values()["podSecurityContext"]["runAsUser"] == 65532


# --- RBAC ---------------------------------------------------------------------------------------


def test_cluster_mode_grants_exactly_the_operator_rules() -> None:
    docs = render("default")
    # The only Role is leader election's, in the release namespace.
    assert [r["metadata"]["name"] for r in by_kind(docs, "Role")] == [f"{OPERATOR}-leader-election"]
    assert rules_of(one(docs, "ClusterRole", OPERATOR)) == OPERATOR_NAMESPACED_RULES
    assert rules_of(one(docs, "ClusterRole", f"{OPERATOR}-cluster-reads")) == (
        OPERATOR_CLUSTER_READS
    )


def test_no_rule_uses_wildcards_or_escalation_verbs() -> None:
    for variant in VARIANTS:
        for role in by_kind(render(variant), "Role") + by_kind(render(variant), "ClusterRole"):
            for rule in role["rules"]:
                fields = rule["apiGroups"] + rule["resources"] + rule["verbs"]
                assert "*" not in fields, role["metadata"]["name"]
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_activator_only_reads() -> None:
    docs = render("default")
    assert rules_of(one(docs, "ClusterRole", ACTIVATOR)) == ACTIVATOR_RULES


def test_bindings_name_the_release_service_accounts() -> None:
    for variant in VARIANTS:
        docs = render(variant)
        accounts = {doc["metadata"]["name"] for doc in by_kind(docs, "ServiceAccount")}
        roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"].endswith("Role")}
        for binding in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding"):
            ref = binding["roleRef"]
            assert (ref["kind"], ref["name"]) in roles, binding["metadata"]
            for subject in binding["subjects"]:
                assert subject["name"] in accounts
                assert subject["namespace"] == NAMESPACE


def test_namespaced_mode_grants_roles_per_watched_namespace() -> None:
    docs = render("namespaced")
    for namespace in ("team-a", "team-b"):
        operator_roles = [
            doc
            for doc in by_kind(docs, "Role")
            if doc["metadata"]["namespace"] == namespace and doc["metadata"]["name"] == OPERATOR
        ]
        assert len(operator_roles) == 1
        assert rules_of(operator_roles[0]) == OPERATOR_NAMESPACED_RULES
    cluster_roles = {doc["metadata"]["name"]: doc for doc in by_kind(docs, "ClusterRole")}
    # Only the read-only cluster-scoped rules stay in a ClusterRole.
    assert set(cluster_roles) == {f"{OPERATOR}-cluster-reads"}
    assert rules_of(cluster_roles[f"{OPERATOR}-cluster-reads"]) == OPERATOR_CLUSTER_READS
    discovery = one(docs, "Role", f"{OPERATOR}-activator-discovery")
    assert discovery["metadata"]["namespace"] == NAMESPACE


def test_cluster_mode_watching_some_namespaces_reads_secrets_only_there() -> None:
    result = template({"watchNamespaces": ["team-a", "team-b"]})
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    cluster_rules = rules_of(one(docs, "ClusterRole", OPERATOR))
    assert ("", "secrets") not in cluster_rules
    assert cluster_rules == {
        k: v for k, v in OPERATOR_NAMESPACED_RULES.items() if k[1] != "secrets"
    }
    secret_roles = {
        r["metadata"]["namespace"]: rules_of(r)
        for r in by_kind(docs, "Role")
        if r["metadata"]["name"] == f"{OPERATOR}-secrets"
    }
    assert secret_roles == {ns: {("", "secrets"): {"get"}} for ns in ("team-a", "team-b")}


def test_namespaced_mode_without_cluster_reads_creates_no_cluster_objects() -> None:
    docs = render("namespaced-no-cluster-reads")
    assert not by_kind(docs, "ClusterRole")
    assert not by_kind(docs, "ClusterRoleBinding")


# --- operator and activator wiring ----------------------------------------------------------


def test_operator_settings_come_from_values() -> None:
    docs = render("default")
    values = chart_values()
    container = deployment_container(docs, OPERATOR)
    env = env_of(container)
    assert container["args"] == ["run"]
    assert env["TIDESERVE_PROMETHEUS_URL"] == values["prometheus"]["url"]
    assert env["TIDESERVE_TICK_SECONDS"] == "5"
    assert env["TIDESERVE_WATCH_NAMESPACES"] == ""
    assert env["TIDESERVE_TRITON_IMAGE"] == "nvcr.io/nvidia/tritonserver:25.10-py3"
    assert env["TIDESERVE_ACTIVATOR_SERVICE"] == f"{NAMESPACE}/{ACTIVATOR}"
    assert env["TIDESERVE_METRICS_PORT"] == "8080"
    assert env["TIDESERVE_HEALTH_PORT"] == "8081"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    one(docs, "Service", ACTIVATOR)  # the Service TIDESERVE_ACTIVATOR_SERVICE names exists


def test_operator_settings_parse_with_the_operator_settings_loader() -> None:
    env = env_of(deployment_container(render("namespaced"), OPERATOR))
    loaded = settings.from_env({k: v for k, v in env.items() if isinstance(v, str)})
    assert loaded.watch_namespaces == ("team-a", "team-b")
    assert loaded.tick_seconds == 5
    assert loaded.activator == (NAMESPACE, ACTIVATOR)
    assert loaded.catalog_file == "/etc/tideserve/catalog/catalog.yaml"
    assert loaded.leader_election
    assert (loaded.lease_namespace, loaded.lease_name) == (NAMESPACE, f"{OPERATOR}-leader")


def test_catalog_is_mounted_where_the_operator_reads_it() -> None:
    docs = render("default")
    deployment = one(docs, "Deployment", OPERATOR)
    pod = deployment["spec"]["template"]["spec"]
    container = deployment_container(docs, OPERATOR)
    path = pathlib.PurePosixPath(env_of(container)["TIDESERVE_CATALOG_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    configmap = one(docs, "ConfigMap", volume["configMap"]["name"])
    assert yaml.safe_load(configmap["data"][path.name]) == chart_values()["catalog"]
    assert "checksum/catalog" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_catalog_defaults_cover_gpus_mig_and_cpu() -> None:
    catalog = chart_values()["catalog"]
    assert catalog["cpu"]["costPerCoreHour"] > 0
    mig = [p for gpu in catalog["gpus"] for p in gpu.get("migProfiles", [])]
    assert mig
    for gpu in catalog["gpus"]:
        for profile in gpu.get("migProfiles", []):
            # A slice never holds more memory or costs more than the whole GPU.
            assert profile["memoryGiB"] < gpu["memoryGiB"]
            assert profile["costPerHour"] < gpu["costPerHour"]


def test_operator_runs_a_leader_and_a_standby_that_may_overlap() -> None:
    docs = render("default")
    deployment = one(docs, "Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 2
    # Only the Lease holder writes: a rollout may start the new pod before the old stops.
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    env = env_of(deployment_container(docs, OPERATOR))
    assert env["TIDESERVE_LEADER_ELECTION"] == "true"
    assert env["TIDESERVE_LEASE_NAMESPACE"] == NAMESPACE
    assert env["TIDESERVE_LEASE_NAME"] == f"{OPERATOR}-leader"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    pdb = one(docs, "PodDisruptionBudget", OPERATOR)
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_the_operator_may_hold_only_its_own_lease() -> None:
    role = one(render("default"), "Role", f"{OPERATOR}-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [f"{OPERATOR}-leader"],
            "verbs": ["get", "update"],
        },
    ]
    binding = one(render("default"), "RoleBinding", f"{OPERATOR}-leader-election")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_without_election_the_operator_is_one_replica_that_never_overlaps_itself() -> None:
    docs = render("no-election")
    deployment = one(docs, "Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(deployment_container(docs, OPERATOR))
    assert "TIDESERVE_LEADER_ELECTION" not in env
    assert not [d for d in by_kind(docs, "Role") if "leader" in d["metadata"]["name"]]
    assert not [
        d for d in by_kind(docs, "PodDisruptionBudget") if d["metadata"]["name"] == OPERATOR
    ]


def test_probes_target_declared_ports() -> None:
    docs = render("default")
    for name in (OPERATOR, ACTIVATOR):
        container = deployment_container(docs, name)
        ports = {port["name"] for port in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)


def test_activator_ports_and_limits_come_from_values() -> None:
    docs = render("default")
    container = deployment_container(docs, ACTIVATOR)
    env = env_of(container)
    assert container["args"] == ["activator"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8080,
        "grpc": 8081,
        "control": 9090,
    }
    assert env["TIDESERVE_ACTIVATOR_HTTP_PORT"] == "8080"
    assert env["TIDESERVE_ACTIVATOR_GRPC_PORT"] == "8081"
    assert env["TIDESERVE_ACTIVATOR_CONTROL_PORT"] == "9090"
    assert env["TIDESERVE_ACTIVATOR_MAX_HELD_REQUESTS"] == "1000"
    assert env["TIDESERVE_ACTIVATOR_WAKE_DEADLINE_SECONDS"] == "900"
    service = one(docs, "Service", ACTIVATOR)
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "grpc", "control"}
    assert one(docs, "PodDisruptionBudget", ACTIVATOR)["spec"]["maxUnavailable"] == 1


def test_activator_env_parses_with_the_activator_command_line() -> None:
    env = env_of(deployment_container(render("namespaced"), ACTIVATOR))
    args = activator_server.parse_args([], {k: v for k, v in env.items() if isinstance(v, str)})
    assert (args.http_port, args.grpc_port, args.control_port) == (8080, 8081, 9090)
    assert args.namespace == ["team-a", "team-b"]


def test_single_activator_has_no_disruption_budget() -> None:
    budgets = by_kind(render("single-activator"), "PodDisruptionBudget")
    assert [b["metadata"]["name"] for b in budgets] == [OPERATOR]


def test_disabled_activator_renders_nothing_of_it() -> None:
    docs = render("activator-disabled")
    names = {doc["metadata"]["name"] for doc in docs}
    assert not any("activator" in name for name in names), names
    env = env_of(deployment_container(docs, OPERATOR))
    assert env["TIDESERVE_ACTIVATOR_SERVICE"] == ""


def test_services_select_their_pods() -> None:
    docs = render("customised")
    for service in by_kind(docs, "Service"):
        name = service["metadata"]["name"]
        pod_labels = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items(), name


def test_customised_values_reach_the_pods() -> None:
    docs = render("customised")
    deployment = one(docs, "Deployment", "tide")
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "ml"
    # podLabels cannot break the selector.
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    assert pod["metadata"]["annotations"]["example.com/note"] == "x"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    container = deployment_container(docs, "tide")
    assert container["image"] == "ghcr.io/tideserve/tideserve:dev"
    assert env_of(container)["EXTRA"] == "1"
    assert env_of(container)["TIDESERVE_TICK_SECONDS"] == "2.5"


def test_image_tag_defaults_to_the_app_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    container = deployment_container(render("default"), OPERATOR)
    assert container["image"] == f"ghcr.io/tideserve/tideserve:{chart['appVersion']}"


# --- monitoring -----------------------------------------------------------------------------


def test_servicemonitors_scrape_the_metrics_ports_of_the_services() -> None:
    docs = render("monitoring")
    monitors = by_kind(docs, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {OPERATOR, ACTIVATOR}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        service = one(docs, "Service", monitor["metadata"]["name"])
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        ports = {port["name"] for port in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"
    assert not by_kind(render("default"), "ServiceMonitor")


def test_dashboard_is_valid_json_and_charts_the_metric_contract() -> None:
    dashboard = json.loads((CHART / "dashboards" / "tideserve.json").read_text())
    exprs = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    missing = [metric for metric in DASHBOARD_METRICS if metric not in exprs]
    assert not missing, f"dashboard lacks {missing}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"]


def test_dashboard_configmap_carries_the_grafana_label_and_the_file() -> None:
    docs = render("monitoring")
    configmap = one(docs, "ConfigMap", f"{RELEASE}-tideserve-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Serving"}
    shipped = json.loads(configmap["data"]["tideserve.json"])
    assert shipped == json.loads((CHART / "dashboards" / "tideserve.json").read_text())
    assert not any(d["metadata"]["name"].endswith("-dashboards") for d in render("default"))


# --- bad values are refused with the field's name ------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"autoscaler": {"tickSeconds": -1}}, "/autoscaler/tickSeconds"),
        ({"autoscaler": {"tickSeconds": "fast"}}, "/autoscaler/tickSeconds"),
        ({"operator": {"replicas": -1}}, "/operator/replicas"),
        ({"operator": {"leaderElection": {"leaseName": "Leader_Lease"}}}, "leaseName"),
        ({"operator": {"leaderElection": {"enabled": "yes"}}}, "leaderElection/enabled"),
        ({"operator": {"podDisruptionBudget": {"maxUnavailable": 0}}}, "maxUnavailable"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"activator": {"ports": {"http": 70000}}}, "/activator/ports/http"),
        ({"activator": {"maxHeldRequests": 0}}, "/activator/maxHeldRequests"),
        ({"activator": {"wakeDeadlineSeconds": -5}}, "/activator/wakeDeadlineSeconds"),
        ({"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"rbac": {"namespaced": "yes"}}, "/rbac/namespaced"),
        ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
        ({"securityContext": {"privilegd": True}}, "privilegd"),
        ({"operatr": {"replicas": 1}}, "operatr"),
        (
            {
                "catalog": {
                    "gpus": [
                        {
                            "product": "NVIDIA-A100-SXM4-80GB",
                            "memoryGiB": 80,
                            "costPerHour": 3.67,
                            "migProfiles": [{"profile": "big", "memoryGiB": 10, "costPerHour": 1}],
                        }
                    ]
                }
            },
            "/catalog/gpus/0/migProfiles/0/profile",
        ),
        ({"catalog": {"cpu": {"costPerCoreHour": -1}}}, "/catalog/cpu/costPerCoreHour"),
        # Values that rendered names or images the API server or the kubelet refuse.
        ({"nameOverride": "ABC"}, "/nameOverride"),
        ({"fullnameOverride": "1tideserve"}, "/fullnameOverride"),
        ({"triton": {"image": "nvcr.io/NVIDIA/tritonserver:25.10-py3"}}, "/triton/image"),
        ({"fetchImages": {"s3": "aws cli"}}, "/fetchImages/s3"),
        # Rules the schema cannot express, refused by templates/validate.yaml.
        (
            {"triton": {"image": "triton@sha256:" + "a" * 64, "digest": "sha256:" + "b" * 64}},
            "triton.digest",
        ),
        ({"rbac": {"namespaced": True}}, "rbac.namespaced"),
        ({"activator": {"ports": {"grpc": 9090}}}, "activator.ports"),
        ({"activator": {"ports": {"metrics": 9091}}}, "metrics"),
        ({"operator": {"healthPort": 8080}}, "operator.metricsPort and operator.healthPort"),
        (
            {"operator": {"replicas": 2, "leaderElection": {"enabled": False}}},
            "operator.replicas > 1 needs operator.leaderElection.enabled",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_values_are_refused_with_the_field_name(values: dict[str, Any], message: str) -> None:
    result = template(values)
    assert result.returncode != 0, f"accepted {values}"
    assert message in result.stderr, result.stderr


# --- CRDs ---------------------------------------------------------------------------------------


def test_chart_crds_are_the_generated_crds() -> None:
    generated = ROOT / "crds"
    shipped = CHART / "crds"
    if not generated.is_dir() and not shipped.is_dir():
        pytest.skip("crds/ not generated yet (`tideserve crds`)")
    names = sorted(p.name for p in generated.glob("*.yaml"))
    assert names == sorted(p.name for p in shipped.glob("*.yaml")), "run `tideserve crds`"
    assert names
    for name in names:
        assert (shipped / name).read_bytes() == (generated / name).read_bytes(), name


def test_chart_crd_is_valid_and_matches_the_rbac() -> None:
    files = sorted((CHART / "crds").glob("*.yaml"))
    if not files:
        pytest.skip("crds/ not generated yet (`tideserve crds`)")
    (crd,) = [doc for path in files for doc in yaml.safe_load_all(path.read_text()) if doc]
    try:
        kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        # Kubernetes' JSONSchemaProps is OpenAPI 3.0 (draft-4 style): exclusiveMinimum is a
        # boolean next to minimum; a number there makes kube-apiserver refuse the CRD.
        pytest.fail(f"the CRD would be refused by kube-apiserver: {error}", pytrace=False)
    assert crd["spec"]["group"] == "serving.tideserve.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert "tisvc" in crd["spec"]["names"]["shortNames"]
    plural = crd["spec"]["names"]["plural"]
    for subresource in ("status", "scale"):
        assert (crd["spec"]["group"], f"{plural}/{subresource}") in OPERATOR_NAMESPACED_RULES
        served = [v for v in crd["spec"]["versions"] if v["served"]]
        assert all(subresource in v.get("subresources", {}) for v in served)


# --- snapshot -----------------------------------------------------------------------------------


def summary(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """What a reviewer wants to see change: objects, images, args, env and ports."""
    objects = sorted(
        f"{d['kind']} {d['metadata'].get('namespace', '-')}/{d['metadata']['name']}" for d in docs
    )
    pods = {}
    for deployment in by_kind(docs, "Deployment"):
        spec = deployment["spec"]
        container = spec["template"]["spec"]["containers"][0]
        pods[deployment["metadata"]["name"]] = {
            "replicas": spec["replicas"],
            "strategy": spec["strategy"]["type"],
            "image": container["image"],
            "args": container["args"],
            "env": env_of(container),
            "ports": {p["name"]: p["containerPort"] for p in container["ports"]},
            "mounts": {m["mountPath"]: m["name"] for m in container["volumeMounts"]},
        }
    return {"objects": objects, "deployments": pods}


def test_default_rendering_matches_the_snapshot() -> None:
    current = yaml.safe_dump(summary(render("default")), sort_keys=True)
    if os.environ.get("TIDESERVE_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"{SNAPSHOT} missing: run with TIDESERVE_UPDATE_SNAPSHOTS=1"
    assert current == SNAPSHOT.read_text(), (
        f"default rendering changed: review and refresh {SNAPSHOT.relative_to(ROOT)} "
        "with TIDESERVE_UPDATE_SNAPSHOTS=1"
    )


def test_the_operators_egress_reaches_the_shadow_replicas_it_probes() -> None:
    # Automatic profiling's probe runs in the operator's pod against a shadow replica's
    # Triton HTTP port: where NetworkPolicy is enforced, the chart's own policy must let
    # it out, or every probe times out and the candidate is recorded as failing.
    docs = render("default")
    [policy] = [
        p for p in by_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "operator"
    ]  # fmt: skip
    labels = shadow.labels("m")
    admitted = [
        rule for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "podSelector" in peer
        and peer["podSelector"]["matchLabels"].items() <= labels.items()
        and {"protocol": "TCP", "port": names.HTTP_PORT} in rule.get("ports", [])
    ]  # fmt: skip
    assert admitted, policy["spec"]["egress"]
