"""The Helm chart installed for real: a real helm into the local test bed, least privilege
checked with the API server's own authorizer, and the operator run under the chart's
ServiceAccount token to prove the RBAC is sufficient, not just plausible.

An install that becomes Available in a namespace enforcing the restricted Pod Security
Standard proves the pods pass it (the test bed enables PodSecurity admission). Release
names are unique: the chart's ClusterRoles are named after the release.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from tideserve_testbed import fixtures, harness

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tideserve"
HELM = pathlib.Path(
    os.environ.get("TIDESERVE_HELM", pathlib.Path.home() / ".cache/tideserve/bin/helm")
)
TIDESERVE = pathlib.Path(sys.executable).parent / "tideserve"
ISVC = CRD_NAME = fixtures.CRD_NAME
TIMEOUT = 120.0
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@dataclasses.dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    workload: str  # where InferenceServices live (a watched namespace)
    namespaced: bool
    operator: str = ""  # Deployment and ServiceAccount names (fullname: <release>-tideserve)
    activator: str = ""


def helm(kube: fixtures.Kube, *args: str, check: bool = True) -> str:
    if not HELM.exists():
        pytest.fail(f"{HELM} missing: run hack/build-tools helm (or set TIDESERVE_HELM)")
    cmd = [str(HELM), f"--kubeconfig={kube.kubeconfig}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0 or not check, f"helm {args} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


@contextlib.contextmanager
def installed(
    kube: fixtures.Kube, prometheus_url: str, tmp: pathlib.Path, namespaced: bool
) -> Iterator[Release]:
    """A fresh release in fresh namespaces; the release namespace enforces the restricted
    Pod Security Standard."""
    tag = f"{os.getpid()}{secrets.token_hex(2)}"
    mode = "n" if namespaced else "c"
    name, ns = f"ts{mode}{tag}", f"ts{mode}-{tag}"
    release = Release(
        name, ns, f"{ns}-work", namespaced, f"{name}-tideserve", f"{name}-tideserve-activator"
    )
    for ns, labels in ((release.namespace, RESTRICTED), (release.workload, {})):
        kube.apply({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": labels}})  # fmt: skip
    # Both modes watch the workload namespace only (cluster mode: ClusterRoles, but Secret
    # reads granted by a Role there alone).
    values: dict[str, Any] = {
        "prometheus": {"url": prometheus_url},
        "watchNamespaces": [release.workload],
    }
    if namespaced:
        values |= {"rbac": {"namespaced": True}}
    (tmp / "values.json").write_text(json.dumps(values))
    try:
        # --wait: helm returns once both Deployments are Available (kwok runs the pods).
        helm(kube, "install", release.name, str(CHART), "-n", release.namespace,
             "-f", str(tmp / "values.json"), "--wait", f"--timeout={int(TIMEOUT)}s")  # fmt: skip
        yield release
    finally:
        helm(kube, "uninstall", release.name, "-n", release.namespace, "--wait", check=False)
        for ns in (release.namespace, release.workload):
            kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module", params=["cluster", "namespaced"])
def release(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Release]:
    """cluster: default values (ClusterRoles) plus prometheus.url and watchNamespaces=[the
    workload namespace]. namespaced: also rbac.namespaced=true."""
    tmp = tmp_path_factory.mktemp("helm")
    with installed(kube, prometheus.url, tmp, request.param == "namespaced") as release:
        yield release


def test_chart_installs_the_established_crd_and_available_deployments(
    kube: fixtures.Kube, release: Release
) -> None:
    kube.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    for name in (release.operator, release.activator):
        kube.kubectl("wait", "-n", release.namespace, "--for=condition=Available",
                     f"deployment/{name}", "--timeout=60s", timeout=90)  # fmt: skip
    pods = kube.get_json("pods", "-n", release.namespace)
    accounts = sorted(p["spec"]["serviceAccountName"] for p in pods["items"])
    # Two of each: the operator's leader and standby (leader election), the activators.
    assert accounts == [release.operator] * 2 + [release.activator] * 2, accounts
    ready = [c for p in pods["items"] for c in p["status"]["conditions"] if c["type"] == "Ready"]
    assert [c["status"] for c in ready] == ["True"] * 4, ready
    sel = f"app.kubernetes.io/instance={release.name}"
    roles = sorted(r["metadata"]["name"] for r in kube.get_json("clusterroles", "-l", sel)["items"])
    local = sorted(r["metadata"]["name"] for r in kube.get_json("roles", "-A", "-l", sel)["items"])
    reads, own = f"{release.operator}-cluster-reads", [release.operator, release.activator]
    election = f"{release.operator}-leader-election"  # a Role for its Lease in both modes
    if release.namespaced:  # Roles, and a ClusterRole only for cluster-scoped reads
        want = ([reads], sorted([*own, f"{release.operator}-activator-discovery", election]))
    else:  # Secrets are read only in the watched namespace
        want = (sorted([*own, reads]), sorted([election, f"{release.operator}-secrets"]))
    assert (roles, local) == want


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster", "namespaced"])
def test_uninstall_removes_what_install_created(
    kube: fixtures.Kube, prometheus: fixtures.Prometheus, tmp_path: pathlib.Path, namespaced: bool
) -> None:
    kinds = (
        "deployments,services,serviceaccounts,configmaps,poddisruptionbudgets,roles,rolebindings,"
        "networkpolicies"
    )
    cluster_kinds = (
        "clusterroles,clusterrolebindings,validatingadmissionpolicies,"
        "validatingadmissionpolicybindings"
    )

    def leftovers(release: Release) -> list[str]:
        sel = f"app.kubernetes.io/instance={release.name}"
        out = (
            kube.get_json(kinds, "-A", "-l", sel)["items"]
            + kube.get_json(cluster_kinds, "-l", sel)["items"]
        )
        return [f"{o['kind']}/{o['metadata']['name']}" for o in out]

    with installed(kube, prometheus.url, tmp_path, namespaced) as release:
        assert len(leftovers(release)) >= 10
        helm(kube, "uninstall", release.name, "-n", release.namespace, "--wait")
        fixtures.eventually(lambda: not leftovers(release), TIMEOUT, "no release objects", 1)
        pods = lambda: kube.get_json("pods", "-n", release.namespace)["items"]  # noqa: E731
        # Garbage collection (the shared controller-manager; slow under load) stops the pods.
        fixtures.eventually(lambda: not pods(), TIMEOUT, "the release's pods gone", 1)
    # helm never deletes a chart's crds/: InferenceServices survive an uninstall.
    kube.get_json(f"crd/{CRD_NAME}")


# (verb, resource, subresource, where): where is "work" (a watched namespace), "release"
# (the release namespace), "other" (kube-system: never watched) or "cluster" (cluster-scoped).
Check = tuple[str, str, str, str]


def table(text: str) -> list[Check]:
    """Rows of `verbs resource[/subresource] where`, one Check per verb."""
    rows = [line.split() for line in text.strip().splitlines()]
    return [(v, *r.partition("/")[::2], w) for vs, r, w in rows for v in vs.split(",")]


OPERATOR_CAN = table(f"""
    get,list,watch,patch          {ISVC}                                      work
    patch                         {ISVC}/status                               work
    patch                         {ISVC}/scale                                work
    list,watch,create,patch,delete  deployments.apps                          work
    patch                         deployments.apps/scale                      work
    create,patch                  services                                    work
    create,patch                  poddisruptionbudgets.policy                 work
    create,patch                  configmaps                                  work
    create,patch                  events                                      work
    watch                         pods                                        work
    get                           secrets                                     work
    watch,create,patch            endpointslices.discovery.k8s.io             work
    watch,create,patch,delete     networkpolicies.networking.k8s.io           work
    list                          endpointslices.discovery.k8s.io             release
    list,watch                    nodes                                       cluster
    get                           customresourcedefinitions.apiextensions.k8s.io  cluster
""")
OPERATOR_CANNOT = table(f"""
    delete,patch                  nodes                                       cluster
    create                        clusterroles.rbac.authorization.k8s.io      cluster
    create                        clusterrolebindings.rbac.authorization.k8s.io  cluster
    create,delete                 customresourcedefinitions.apiextensions.k8s.io  cluster
    delete                        namespaces                                  cluster
    impersonate                   users                                       cluster
    impersonate                   serviceaccounts                             work
    create                        rolebindings.rbac.authorization.k8s.io      work
    create                        pods                                        work
    create                        pods/exec                                   work
    create                        pods/portforward                            work
    list,watch,create             secrets                                     work
    create                        serviceaccounts/token                       work
    create,delete                 {ISVC}                                      work
    delete                        events                                      work
    get                           secrets                                     other
    get                           secrets                                     release
    delete                        endpointslices.discovery.k8s.io             work
""")
# Namespaced mode: nothing namespaced outside the watched namespaces (the operator cannot
# even rewrite its own Deployment).
OPERATOR_CANNOT_NAMESPACED = table(f"""
    list                          {ISVC}                                      other
    create                        deployments.apps                            other
    patch                         deployments.apps/scale                      other
    list                          pods                                        other
    patch                         deployments.apps                            release
    create                        services                                    release
""")
ACTIVATOR_CAN = table(f"""
    get,list,watch                {ISVC}                                      work
    list,watch                    services                                    work
    list,watch                    endpointslices.discovery.k8s.io             work
""")
ACTIVATOR_CANNOT = table(f"""
    patch                         deployments.apps                            work
    patch                         deployments.apps/scale                      work
    patch                         {ISVC}                                      work
    patch                         {ISVC}/status                               work
    create                        endpointslices.discovery.k8s.io             work
    patch                         services                                    work
    create                        events                                      work
    get                           secrets                                     work
    list                          pods                                        work
    list                          nodes                                       cluster
""")
ACTIVATOR_CANNOT_NAMESPACED = table(f"get {ISVC} other")


def can_i(kube: fixtures.Kube, sa: str, release: Release, check: Check) -> bool:
    """`kubectl auth can-i --as=<the ServiceAccount>`."""
    verb, res, sub, where = check
    args = ["auth", "can-i", verb, res, f"--as=system:serviceaccount:{release.namespace}:{sa}"]
    args += [f"--subresource={sub}"] if sub else []
    args += [] if where == "cluster" else ["-n", namespace_of(release, where)]
    out = kube.kubectl(*args, check=False)
    assert out.stdout.strip() in {"yes", "no"}, f"kubectl {args}: {out.stdout} {out.stderr}"
    return out.stdout.strip() == "yes"


def namespace_of(release: Release, where: str) -> str:
    return {"work": release.workload, "release": release.namespace, "other": "kube-system"}[where]


def answers(kube: fixtures.Kube, sa: str, release: Release, checks: list[Check]) -> list[bool]:
    """The API server's authorizer on each check, for the ServiceAccount's user and groups."""
    user = f"system:serviceaccount:{release.namespace}:{sa}"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{release.namespace}",
              "system:authenticated"]  # fmt: skip
    attributes = []
    for verb, res, sub, where in checks:
        plural, _, group = res.partition(".")
        attrs = {"verb": verb, "resource": plural, "group": group, "subresource": sub}
        if where != "cluster":
            attrs["namespace"] = namespace_of(release, where)
        attributes.append(attrs)
    return kube.allowed(user, groups, attributes)


def wrong_answers(
    kube: fixtures.Kube, sa: str, release: Release, allowed: list[Check], denied: list[Check]
) -> list[str]:
    # kubectl auth can-i agrees with the reviews (first allowed, first denied check).
    assert can_i(kube, sa, release, allowed[0]) and not can_i(kube, sa, release, denied[0])
    got = answers(kube, sa, release, allowed + denied)
    wrong = [f"cannot {c}" for c, ok in zip(allowed, got, strict=False) if not ok]
    return wrong + [f"CAN {c}" for c, ok in zip(denied, got[len(allowed) :], strict=True) if ok]


def test_operator_service_account_has_what_it_needs_and_nothing_more(
    kube: fixtures.Kube, release: Release
) -> None:
    denied = OPERATOR_CANNOT + (OPERATOR_CANNOT_NAMESPACED if release.namespaced else [])
    wrong = wrong_answers(kube, release.operator, release, OPERATOR_CAN, denied)
    assert not wrong, "operator RBAC differs from what it needs:\n" + "\n".join(wrong)


def test_activator_service_account_only_reads(kube: fixtures.Kube, release: Release) -> None:
    denied = ACTIVATOR_CANNOT + (ACTIVATOR_CANNOT_NAMESPACED if release.namespaced else [])
    wrong = wrong_answers(kube, release.activator, release, ACTIVATOR_CAN, denied)
    assert not wrong, "activator RBAC differs from what it needs:\n" + "\n".join(wrong)


def service_account_kubeconfig(
    kube: fixtures.Kube, release: Release, path: pathlib.Path
) -> pathlib.Path:
    """A kubeconfig with the test bed's server and CA whose only credential is the chart's
    operator ServiceAccount token: every call the operator makes is authorized as that SA."""
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    token = kube.kubectl("create", "token", release.operator, "-n", release.namespace,
                         "--duration=1h").stdout.strip()  # fmt: skip
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": release.operator, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "testbed", "user": release.operator,
                                                "namespace": release.namespace}}],
        "current-context": "sa",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def chart_env(kube: fixtures.Kube, release: Release, tmp: pathlib.Path) -> dict[str, str]:
    """The operator container's environment exactly as the chart rendered it, with the
    catalog ConfigMap written to a file and ports moved to free loopback ones."""
    dep = kube.get_json("-n", release.namespace, "deployment", release.operator)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    catalog = kube.get_json("-n", release.namespace, "configmap", f"{release.operator}-catalog")
    (tmp / "catalog.yaml").write_text(catalog["data"]["catalog.yaml"])
    env |= {
        "TIDESERVE_CATALOG_FILE": str(tmp / "catalog.yaml"),
        "TIDESERVE_METRICS_PORT": str(fixtures.free_port()),
        "TIDESERVE_HEALTH_PORT": str(fixtures.free_port()),
        "POD_ID": f"{release.operator}-pytest",
        # Demand from the activator's loopback stand-in (nothing listens): kwok pod IPs
        # are not reachable, and tests only talk to 127.0.0.1.
        "TIDESERVE_ACTIVATOR_URL": f"http://127.0.0.1:{fixtures.free_port()}",
    }
    if not release.namespaced:
        # Same ClusterRole, but served for one namespace only: a cluster-wide operator would
        # also reconcile other test sessions' InferenceServices on this shared test bed.
        env["TIDESERVE_WATCH_NAMESPACES"] = release.workload
    return env


@pytest.mark.skipif(
    not (ROOT / "operator" / "tideserve" / "controller" / "main.py").exists(),
    reason="operator/tideserve/controller/main.py (`tideserve run`) does not exist yet",
)
def test_operator_reconciles_under_the_chart_service_account(
    kube: fixtures.Kube, release: Release, tmp_path: pathlib.Path
) -> None:
    config = service_account_kubeconfig(kube, release, tmp_path / "sa.kubeconfig")
    who = kube.kubectl(f"--kubeconfig={config}", "auth", "whoami", "-o", "json").stdout
    username = json.loads(who)["status"]["userInfo"]["username"]
    assert username == f"system:serviceaccount:{release.namespace}:{release.operator}"

    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDESERVE_")}
    env |= chart_env(kube, release, tmp_path) | {"KUBECONFIG": str(config)}
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(TIDESERVE), "run", "--bind", "127.0.0.1"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    def refused() -> list[str]:
        lines = log.read_text(errors="replace").splitlines()
        return [line for line in lines if "forbidden" in line.lower() or " 403" in line]

    def reconciled(name: str) -> dict[str, Any] | None:
        obj: dict[str, Any] = get("tisvc", name)
        ready = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        if not (ready and ready[0]["status"] == "True"):
            return None
        get("deployment", f"{name}-predictor")  # every kind the reconciler writes
        get("service", f"{name}-predictor")
        get("endpointslice", f"{name}-route")
        return obj

    def wait(what: str, check: Callable[[], Any]) -> Any:
        try:
            return fixtures.eventually(check, TIMEOUT, what, interval=1)
        except AssertionError as exc:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"{exc}\nrefused:\n{refused()}\nlog:\n{tail}") from None

    get = lambda *what: kube.get_json("-n", release.workload, *what)  # noqa: E731
    try:
        kube.kubectl(
            "apply", "-n", release.workload, "-f", str(ROOT / "examples/01-cpu-model.yaml")
        )
        obj = wait("resnet-cpu reconciled", lambda: reconciled("resnet-cpu"))
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        events = kube.events(release.workload, "resnet-cpu")
        assert any(e.get("reportingComponent") == "tideserve" for e in events), events
        # The autoscaler's write: an external scaler (here kubectl scale) sets spec.replicas
        # on the InferenceService's scale subresource; only the operator can carry it to
        # deployments/scale. (managedFields would not show it: the API server records no
        # manager for a scale update of replicas that server-side apply left at the default.)
        ext = fixtures.isvc("ext", resources={"accelerator": "cpu"}, scaling={"mode": "external"})
        kube.apply(ext, "-n", release.workload)
        wait("ext reconciled", lambda: reconciled("ext"))
        kube.kubectl("scale", "-n", release.workload, "tisvc", "ext", "--replicas=3")
        wait("3 replicas", lambda: get("deployment", "ext-predictor")["spec"]["replicas"] == 3)
        # At zero the route points at the activator, found through its Service in the
        # release namespace (TIDESERVE_ACTIVATOR_SERVICE), which the chart lets it read.
        sel = f"app.kubernetes.io/component=activator,app.kubernetes.io/instance={release.name}"
        pods = kube.get_json("pods", "-n", release.namespace, "-l", sel)["items"]
        activator_ips = sorted(p["status"]["podIP"] for p in pods)
        kube.kubectl("scale", "-n", release.workload, "tisvc", "ext", "--replicas=0")

        def route() -> list[str]:
            slice_ = get("endpointslice", "ext-route")
            return sorted(a for e in slice_.get("endpoints") or [] for a in e["addresses"])

        wait(f"route to the activator {activator_ips}", lambda: route() == activator_ips)
    finally:
        harness.stop_process(proc)
    assert not refused(), "the operator was refused by RBAC:\n" + "\n".join(refused()[:20])


def slice_manifest(name: str, service: str, managed_by: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": managed_by,
            },
            **meta,
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    }


def test_the_operator_cannot_write_endpointslices_that_are_not_its_own(
    kube: fixtures.Kube, release: Release, tmp_path: pathlib.Path
) -> None:
    """RBAC lets the operator patch EndpointSlices (it must: its route slices); the chart's
    ValidatingAdmissionPolicy refuses real requests, made with the operator's own token, on
    a slice another controller manages, and a tideserve-labelled slice aimed at a Service
    no InferenceService owns. The same requests by an admin still pass."""
    ns = release.workload
    config = service_account_kubeconfig(kube, release, tmp_path / "sa.kubeconfig")
    as_operator = lambda *args: kube.kubectl(f"--kubeconfig={config}", "-n", ns, *args,  # noqa: E731
                                             check=False)  # fmt: skip
    assert answers(kube, release.operator, release, [("patch", "endpointslices.discovery.k8s.io",
                                                      "", "work")]) == [True]  # fmt: skip
    foreign = slice_manifest("victim-abc", "victim", "endpointslice-controller.k8s.io")
    kube.apply(foreign, "-n", ns)
    patch = json.dumps({"endpoints": [{"addresses": ["10.9.9.9"]}]})

    refused = as_operator("patch", "endpointslice", "victim-abc", "--type=merge", "-p", patch)
    assert refused.returncode != 0
    assert "may change only EndpointSlices it manages" in refused.stderr, refused.stderr
    assert "ValidatingAdmissionPolicy" in refused.stderr, refused.stderr
    live = kube.get_json("-n", ns, "endpointslice", "victim-abc")
    assert live["endpoints"][0]["addresses"] == ["10.0.0.1"]  # unchanged

    # Labelled as tideserve's, but for a Service no InferenceService of that name owns.
    forged = slice_manifest("victim-route", "victim", "tideserve.serving.tideserve.io")
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    created = as_operator("create", "-f", str(tmp_path / "forged.json"))
    assert created.returncode != 0
    assert "may write only route EndpointSlices" in created.stderr, created.stderr

    # The policy binds only the operator: the same patch by an admin goes through.
    kube.kubectl("-n", ns, "patch", "endpointslice", "victim-abc", "--type=merge", "-p", patch)
    kube.kubectl("-n", ns, "delete", "endpointslice", "victim-abc")
