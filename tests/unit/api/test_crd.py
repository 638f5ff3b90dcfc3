"""The generated CRD: in sync with the models, structural, with the features users rely on."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

from tideserve.api import crd, resource, spec

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", crd.targets(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_crd_files_are_up_to_date(path: pathlib.Path) -> None:
    assert path.exists(), f"{path} missing: run `tideserve crds`"
    assert path.read_text() == crd.render(), f"{path} is stale: run `tideserve crds`"


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += walk(value, f"{path}[{index}]")
    return found


def schema() -> dict[str, Any]:
    version = crd.crd()["spec"]["versions"][0]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def test_schema_is_structural() -> None:
    for path, node in walk(schema()):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        if "properties" in node:
            assert node.get("type") == "object", f"{path}: object without type"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, f"{path}: stray anyOf"
        assert not any(k.startswith("x-tideserve") for k in node), path
        for flag in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(flag, True), bool), f"{path}: {flag} must be a boolean"


def test_every_spec_field_is_documented() -> None:
    spec_schema = schema()["properties"]["spec"]
    undocumented = [
        path
        for path, node in walk(spec_schema)
        if "/properties/" in path
        and path.rsplit("/", 2)[-2] == "properties"
        and "description" not in node
        and not path.endswith(("/name", "/value"))
    ]
    assert undocumented == []


def test_subresources_and_printer_columns() -> None:
    version = crd.crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in version["subresources"]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    for wanted in ["Ready", "Replicas", "Desired", "Accelerator", "URL", "Age"]:
        assert wanted in names


def test_names() -> None:
    names = crd.crd()["spec"]["names"]
    assert names["shortNames"] == ["tisvc"]
    assert crd.crd()["metadata"]["name"] == f"{resource.PLURAL}.{resource.GROUP}"


def test_cel_rules_come_from_the_same_rule_objects() -> None:
    cel = {node["rule"] for _, node in walk(schema()) if "rule" in node}
    for model in (spec.ScalingSpec, spec.ResourcesSpec):
        for rule in model.rules:
            assert rule.cel in cel


def test_cel_rules_of_every_model_are_in_the_crd() -> None:
    cel = {node["rule"] for _, node in walk(schema()) if "rule" in node}
    for model in (spec.RuntimeSpec, spec.SloSpec, spec.BehaviorSpec, spec.ModelSpec):
        for rule in model.rules:
            assert rule.cel in cel


def test_a_fractional_bound_of_a_number_is_also_a_cel_rule() -> None:
    # The API server compares a JSON integer with the bound cut to an integer: without
    # the rule, attainment: 0 passes minimum: 0.5.
    fractional = [
        (path, node)
        for path, node in walk(schema())
        if node.get("type") == "number"
        and any(
            isinstance(node.get(b), float) and not node[b].is_integer()
            for b in ("minimum", "maximum")
        )
    ]
    assert fractional, "attainment has minimum 0.5"
    for path, node in fractional:
        rules = [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        assert any(r.startswith("self >") or r.startswith("self <") for r in rules), path


def test_enums_and_defaults_present() -> None:
    resources = schema()["properties"]["spec"]["properties"]["resources"]
    assert resources["properties"]["accelerator"]["enum"] == ["auto", "gpu", "cpu", "mig"]
    assert resources["properties"]["accelerator"]["default"] == "gpu"
    scaling = schema()["properties"]["spec"]["properties"]["scaling"]
    assert scaling["default"] == spec.ScalingSpec().dump()
    assert scaling["properties"]["behavior"]["default"] == spec.BehaviorSpec().dump()


def test_optional_objects_without_defaults_stay_absent() -> None:
    model = schema()["properties"]["spec"]["properties"]["model"]
    assert "default" not in model["properties"]["dynamicBatching"]


def test_render_is_yaml_with_header() -> None:
    text = crd.render()
    assert text.startswith("# Generated by `tideserve crds`")
    assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_the_crd_carries_the_digest_of_its_spec_and_a_changed_one_is_named() -> None:
    generated = crd.crd()
    assert crd.mismatch(generated) is None
    older = copy.deepcopy(generated)
    del older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"][
        "properties"
    ]["learned"]
    older["metadata"]["annotations"][crd.SCHEMA_ANNOTATION] = crd.digest(older["spec"])
    message = crd.mismatch(older)
    assert message is not None
    assert "kubectl apply --server-side -f crds/" in message
    unannotated = copy.deepcopy(generated)
    del unannotated["metadata"]["annotations"]
    assert "schema unknown" in (crd.mismatch(unannotated) or "")
    assert "not installed" in (crd.mismatch(None) or "")
