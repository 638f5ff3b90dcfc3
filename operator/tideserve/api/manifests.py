"""Manifests read and checked the way `kubectl apply` and the API server do.

kubectl reads YAML with sigs.k8s.io/yaml (go-yaml v2 resolution, then JSON), not with
YAML 1.1 as PyYAML does: `22:00` is a string there (not the sexagesimal 1320), dates
stay strings, `0x1F` and `017` are integers, `5.0` is sent as the JSON number 5 (an
integer to the API server). `load_all` reproduces that, so `tideserve validate` sees the
same values the API server will; `problems` then applies the CRD's checks to the whole
object, metadata included, with the API server's types (no string for an integer).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import pydantic
import yaml

from tideserve.api import formats, objectmeta, resource
from tideserve.api import spec as spec_api

_GO_NUMBER_TAG = "tag:tideserve.io,2026:go-number"
_BOOL = {
    **dict.fromkeys(
        ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"], True
    ),
    **dict.fromkeys(
        ["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"], False
    ),
}
_SPECIAL_FLOATS = {
    **dict.fromkeys([".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"], math.inf),
    **dict.fromkeys(["-.inf", "-.Inf", "-.INF"], -math.inf),
    **dict.fromkeys([".nan", ".NaN", ".NAN"], math.nan),
}
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")


class KubectlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with go-yaml v2's plain-scalar resolution."""


KubectlLoader.yaml_implicit_resolvers = {}
KubectlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile("^(?:" + "|".join(_BOOL) + ")$"), list("yYnNtTfFoO")
)
KubectlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
KubectlLoader.add_implicit_resolver(
    _GO_NUMBER_TAG, re.compile(r"^[-+.0-9][-+._0-9a-zA-Z]*$"), list("-+.0123456789")
)
KubectlLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return _BOOL[str(loader.construct_scalar(node))]


def _construct_go_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    """go-yaml v2's resolve(): special floats, strconv.ParseInt(base 0) with the
    underscores dropped, then its float syntax; anything else stays a string."""
    text = str(loader.construct_scalar(node))
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    plain = text.replace("_", "")
    if _GO_INT.fullmatch(plain):
        sign, digits = (-1, plain[1:]) if plain[0] == "-" else (1, plain.lstrip("+"))
        if len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789":
            value = int(digits, 8)
        else:
            value = int(digits, 0)
        if -(2**63) <= sign * value < 2**64:
            return sign * value
    if _YAML_FLOAT.fullmatch(plain) and math.isfinite(number := float(plain)):
        return number
    # Past float64 (1e309) Go's ParseFloat fails, and go-yaml keeps the text.
    return text


def _construct_string(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


KubectlLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
KubectlLoader.add_constructor(_GO_NUMBER_TAG, _construct_go_number)
# Dates and times stay strings (go-yaml v2 keeps them so for untyped values).
KubectlLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_string)


class NotJson(ValueError):
    """A value kubectl cannot send as JSON (NaN, infinity)."""


def _as_json(value: object, path: str) -> object:
    """What the API server reads: Go marshals an integral float as an integer (5.0 -> 5),
    which the API server reads as an integer within int64; map keys become strings."""
    if isinstance(value, dict):
        return {_key(k): _as_json(v, f"{path}.{_key(k)}") for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJson(f"{path}: {value} cannot be sent as JSON")
        if value.is_integer() and -(2**63) <= value < 2**63:
            return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        # Past int64 the API server decodes a JSON number as a float.
        return float(value)
    return value


def _key(key: object) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


def load_all(text: str) -> Iterator[object]:
    """The documents of a YAML (or JSON) stream, as kubectl sends them."""
    for document in yaml.load_all(text, Loader=KubectlLoader):
        if document is not None:
            yield _as_json(document, "")


def objects(document: object) -> Iterator[object]:
    """The objects `kubectl apply` sends for one document: the items of a list, in turn
    (kubectl takes any object with an `items` array for one: a v1 List, the
    InferenceServiceList `kubectl get -o yaml` writes), else the document itself."""
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        for item in document["items"]:
            yield from objects(item)
    else:
        yield document


TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")


def problems(document: dict[str, Any]) -> list[str]:
    """Why `kubectl apply` and the API server would refuse this InferenceService; [] if
    they would accept it."""
    found = []
    if document.get("apiVersion") != resource.API_VERSION:
        found.append(f"apiVersion: must be {resource.API_VERSION}")
    if document.get("kind") != resource.KIND:
        found.append(f"kind: must be {resource.KIND}")
    found += [f"{key}: unknown field" for key in document if key not in TOP_LEVEL]
    metadata = without_nulls(document.get("metadata"))
    if not isinstance(metadata, dict):
        found.append("metadata: Required value")
    else:
        name = metadata.get("name")
        generated = metadata.get("generateName")
        if name is None and isinstance(generated, str):
            name = generated[:58] + "x0000"  # the API server appends 5 characters
        if problem := formats.name_problem(name):
            found.append(f"metadata.name: {problem}")
        found += objectmeta.metadata_problems(metadata)
    if problem := objectmeta.annotations_size_problem(document):
        found.append(problem)
    found += objectmeta.status_problems(without_nulls(document.get("status")))
    spec = without_nulls(document.get("spec"))
    if not isinstance(spec, dict):
        found.append("spec: Required value (an object)")
        return found
    try:
        parse_strict(spec)
    except pydantic.ValidationError as error:
        found.append(resource.describe_error(error))
    return found


def without_nulls(value: object) -> object:
    """The value with every null object member left out, as the API server prunes them
    before defaulting (runtime: null is no runtime; a null list item stays, and is refused)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def parse_strict(spec: dict[str, Any]) -> spec_api.InferenceServiceSpec:
    """The spec with the API server's types: no "3" for an integer, no 3 for a string."""
    return spec_api.InferenceServiceSpec.model_validate_json(json.dumps(spec), strict=True)
