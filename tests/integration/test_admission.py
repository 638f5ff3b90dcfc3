"""Hostile manifests against the real API server: each refused at `kubectl apply` with the
field named, or accepted, as tests/data/hostile.yaml says; and `tideserve validate`
gives the same verdict on the same text (the unit twin: tests/unit/api/test_hostile.py).
"""

from __future__ import annotations

import json
import random
import string
import subprocess
from collections.abc import Iterator

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tideserve_testbed import fixtures, hostile

from tideserve.api import manifests

pytestmark = pytest.mark.integration

CASES = hostile.cases()


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
