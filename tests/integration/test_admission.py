"""Hostile manifests against the real API server: each refused at `kubectl apply` with the
field named, or accepted, as tests/data/hostile.yaml says; and `tideserve validate`
gives the same verdict on the same text (the unit twin: tests/unit/api/test_hostile.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import string
import subprocess
import sys
from collections.abc import Iterator

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tideserve_testbed import fixtures, hostile

from tideserve.api import manifests

pytestmark = pytest.mark.integration

CASES = hostile.cases()
TIDESERVE = pathlib.Path(sys.executable).parent / "tideserve"


@pytest.fixture(scope="module")
def namespace(kube: fixtures.Kube) -> Iterator[str]:
    with fixtures.crd_namespace(kube, "admission") as name:
        yield name


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_api_server_and_validate_give_the_tables_verdict(
    kube: fixtures.Kube, namespace: str, case: hostile.Case
) -> None:
    # A real apply (not a dry run): what is accepted is stored, as a user's would be.
    name = "h-" + "".join(random.choices(string.ascii_lowercase, k=8))
    text = case.named(name) if "hostile" in case.text else case.text
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", input=text, check=False)
    (document,) = manifests.load_all(text)
    assert isinstance(document, dict)
    found = "; ".join(manifests.problems(document))
    if case.field is None:
        assert result.returncode == 0, result.stderr
        assert found == ""
    else:
        assert result.returncode != 0, f"accepted: {text}"
        assert case.field in result.stderr, result.stderr
        assert case.field in found, found


@pytest.fixture
def own_namespace(kube: fixtures.Kube) -> Iterator[str]:
    # Not the verdict test's namespace: the copies it stored would be reconciled too and
    # take half of the test bed's 20 kwok GPUs, leaving these cases a race for the rest.
    with fixtures.crd_namespace(kube, "admission-run") as name:
        yield name


def test_the_accepted_cases_become_ready(
    kube: fixtures.Kube, own_namespace: str, tmp_path: pathlib.Path
) -> None:
    # Accepted means running: the operator reconciles each accepted case to Ready=True
    # (kwok runs the pods). pvc:// cases are left out: their claim does not exist here.
    namespace = own_namespace
    accepted = [c for c in CASES if c.field is None and '"pvc://' not in c.text]
    env = os.environ | {
        "KUBECONFIG": str(kube.kubeconfig),
        "TIDESERVE_METRICS_PORT": str(fixtures.free_port()),
        "TIDESERVE_HEALTH_PORT": str(fixtures.free_port()),
        "TIDESERVE_TRITON_IMAGE": "triton:test",
    }
    command = [str(TIDESERVE), "run", "--bind", "127.0.0.1", "--namespace", namespace]
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        operator = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        names = []
        for i, case in enumerate(accepted):
            (document,) = manifests.load_all(case.named(f"run-{i}"))
            assert isinstance(document, dict)
            names.append(document["metadata"]["name"])
            kube.kubectl("apply", "-n", namespace, "-f", "-", input=case.named(f"run-{i}"))
        for case, name in zip(accepted, names, strict=True):
            result = kube.kubectl(
                "wait", "-n", namespace, "--for=condition=Ready", f"tisvc/{name}",
                "--timeout=120s", check=False, timeout=150,
            )  # fmt: skip
            assert result.returncode == 0, f"{case.id}: {result.stderr}\n{log.read_text()[-3000:]}"
    finally:
        operator.terminate()
        try:
            operator.wait(20)
        except subprocess.TimeoutExpired:
            operator.kill()


# Plain scalars whose reading differs between YAML 1.1 (PyYAML) and kubectl's go-yaml.
SCALARS = st.one_of(
    st.sampled_from(["22:00", "1:30:00", "2026-12-25", "yes", "no", "on", "off", "y", "n",
                     "~", "null", "0x1F", "017", "08", "0o17", "0b101", "1_000", "1e3", ".5",
                     "5.0", "1e21", "+1", "-0", ".inf", "-.inf", "+.inf", "1.2.3", "0x"]),
    st.from_regex(r"[-+]?[0-9_.xobeE:]{1,8}", fullmatch=True),
)  # fmt: skip


@settings(max_examples=10, deadline=None)
@given(st.lists(SCALARS, min_size=20, max_size=40))
def test_manifests_read_yaml_as_kubectl_does(kube: fixtures.Kube, values: list[str]) -> None:
    lines = [f"  k{i}: {v}" for i, v in enumerate(values)]
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nvalues:\n" + "\n".join(lines)
    # --local: kubectl reads the file and prints the JSON it would send, without a server.
    result = subprocess.run(
        [str(kube.kubectl_bin), "label", "--local", "-f", "-", "a=b", "-o", "json"],
        input=text, capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        (ours,) = manifests.load_all(text)
    except (yaml.YAMLError, manifests.NotJson):
        # Not YAML (k: :), or not JSON (infinity): kubectl cannot send it either.
        assert result.returncode != 0, result.stdout
        return
    assert result.returncode == 0, result.stderr
    assert isinstance(ours, dict)
    theirs = json.loads(result.stdout)["values"]
    assert json.dumps(ours["values"], sort_keys=True) == json.dumps(theirs, sort_keys=True)
