"""Hypothesis strategies for InferenceService manifests, read off the CRD's own schema.

Every field the schema declares may appear, with values its types, bounds, enums,
patterns and list rules allow; a string checked by CEL `matches` rules is drawn from one
of those expressions (or the schema pattern), so values that pass one rule and not
another are drawn too. Nothing here knows tideserve's rules beyond what the CRD says:
the API server decides what is admitted, and the property tests check what follows.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from hypothesis import strategies as st

from tideserve.api import crd, formats, resource

# CEL `matches` with a raw-string regular expression, as base.pattern_rule writes it, and
# its negation, as base.no_match_rule writes it.
_CEL_MATCHES = re.compile(r"self\.matches\(r'([^']*)'\)")
_CEL_NO_MATCH = re.compile(r"!self\.matches\(r'([^']*)'\)")
MAX_ITEMS = 3  # lists stay short: bounds are checked by the hostile table


def root_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _regexes(node: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(expressions every value must match, expressions of conditional rules, expressions
    no value may contain a match of)."""
    always = [node["pattern"]] if "pattern" in node else []
    conditional, never = [], []
    for rule in node.get("x-kubernetes-validations", []):
        whole = _CEL_MATCHES.fullmatch(rule["rule"])
        negated = _CEL_NO_MATCH.fullmatch(rule["rule"])
        if whole:
            always.append(whole[1])
        elif negated:
            never.append(negated[1])
        else:
            conditional += _CEL_MATCHES.findall(rule["rule"])
    return always, conditional, never


def _string(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if node.get("format") == "date":
        return st.dates(datetime.date(2000, 1, 1), datetime.date(2100, 1, 1)).map(
            datetime.date.isoformat
        )
    limit = node.get("maxLength", 64)
    always, conditional, never = _regexes(node)
    if not always and not conditional:
        return st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=limit)

    def fits(value: str) -> bool:
        return (
            len(value) <= limit
            and all(re.fullmatch(p, value) for p in always)
            and not any(re.search(p, value) for p in never)
        )

    def drawn(pattern: str) -> st.SearchStrategy[str]:
        return st.from_regex(pattern, fullmatch=True)

    # Mostly values every unconditional expression admits, drawn from the stricter
    # conditional ones when there are (pvc://, s3://, https:// URIs); sometimes a value
    # only one expression admits, which the API server refuses.
    strict = st.sampled_from(conditional or always).flatmap(drawn).filter(fits)
    loose = st.sampled_from(always + conditional).flatmap(drawn).filter(lambda v: len(v) <= limit)
    return st.one_of(strict, strict, strict, loose)


def _integer(node: dict[str, Any]) -> st.SearchStrategy[int]:
    low = node.get("minimum", -(2**31))
    high = node.get("maximum", 2**31)
    if node.get("exclusiveMinimum"):
        low += 1
    if node.get("exclusiveMaximum"):
        high -= 1
    # Mostly small values (the ones that make interesting specs), the bounds sometimes.
    small = st.integers(max(low, -3), min(high, max(low, -3) + 16))
    return st.one_of(small, small, st.integers(low, high), st.sampled_from([low, high]))


def _number(node: dict[str, Any]) -> st.SearchStrategy[float]:
    low, high = node.get("minimum"), node.get("maximum")
    return st.floats(
        low,
        high,
        exclude_min=bool(node.get("exclusiveMinimum")),
        exclude_max=bool(node.get("exclusiveMaximum")),
        allow_nan=False,
        allow_infinity=False,
    )


def _array(node: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    items = strategy(node["items"])
    size = min(node.get("maxItems", MAX_ITEMS), MAX_ITEMS)
    kind = node.get("x-kubernetes-list-type")
    if kind == "set":
        return st.lists(items, max_size=size, unique=True)
    if kind == "map":
        keys = node.get("x-kubernetes-list-map-keys", [])
        return st.lists(
            items, max_size=size, unique_by=lambda item: tuple(item.get(k) for k in keys)
        )
    return st.lists(items, max_size=size)


def _object(node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = node.get("properties", {})
    required = set(node.get("required", []))
    return st.fixed_dictionaries(
        {k: strategy(v) for k, v in properties.items() if k in required},
        optional={k: strategy(v) for k, v in properties.items() if k not in required},
    )


def strategy(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema node admits by type, bounds and patterns (CEL rules aside)."""
    if node.get("x-kubernetes-int-or-string"):
        low = node.get("minimum", 0)
        return st.one_of(st.integers(low, low + 64), _string(node))
    kind = node.get("type")
    if kind == "object":
        return _object(node)
    if kind == "array":
        return _array(node)
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return _integer(node)
    if kind == "number":
        return _number(node)
    if kind == "boolean":
        return st.booleans()
    raise ValueError(f"no strategy for schema node {node}")


def names() -> st.SearchStrategy[str]:
    """metadata.name: DNS-1035 labels, some too long for the children (54-63)."""
    return st.from_regex(formats.DNS1035_LABEL, fullmatch=True).filter(lambda s: 0 < len(s) <= 63)


def manifests() -> st.SearchStrategy[dict[str, Any]]:
    spec = strategy(root_schema()["properties"]["spec"])
    return st.builds(
        lambda name, body: {
            "apiVersion": resource.API_VERSION,
            "kind": resource.KIND,
            "metadata": {"name": name},
            "spec": body,
        },
        names(),
        spec,
    )
