"""Base model and the cross-field rule mechanism shared by spec and status.

A cross-field rule is written once, as a `Rule`: its CEL expression goes into the CRD
(`x-kubernetes-validations`, so `kubectl apply` refuses a bad manifest) and its Python
check runs in pydantic (so the operator reports a clear condition instead of crashing
on an object that reached it some other way). Keeping both halves side by side is what
stops them from drifting apart; tests/unit/api checks they agree on examples.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, ClassVar, Self

import pydantic
import pydantic_core
from pydantic import alias_generators
from pydantic_core import core_schema as cs


@dataclasses.dataclass(frozen=True)
class Rule:
    """One cross-field rule: a CEL expression and the same check in Python."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None


# Rule message -> the rule's fieldPath, so that an error pydantic reports at the model
# names the same field as the API server does (resource.describe_error reads it).
FIELD_PATHS: dict[str, str] = {}


@dataclasses.dataclass(frozen=True)
class FieldRule:
    """A rule on one field's value, for `Annotated[T, FieldRule(...)]` (also on list items).

    The CEL expression reads the value as `self` and goes on the field's own schema, so
    the API server names the field (and list index) in its refusal, even when the
    expression fails to evaluate; the check runs in pydantic after the type's own.
    """

    cel: str
    message: str
    check: Callable[[Any], bool]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> cs.CoreSchema:
        def validate(value: Any) -> Any:
            if not self.check(value):
                raise pydantic_core.PydanticCustomError("rule", self.message)
            return value

        return cs.no_info_after_validator_function(validate, handler(source))

    def __get_pydantic_json_schema__(
        self, core_schema: cs.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        rules = schema.setdefault("x-kubernetes-validations", [])
        rules.append({"rule": self.cel, "message": self.message})
        return schema


def pattern_rule(pattern: str, message: str) -> FieldRule:
    """A FieldRule that the value matches `pattern` (anchored; see api/formats.py)."""
    return FieldRule(
        cel=f"self.matches({cel_string(pattern)})",
        message=message,
        check=lambda value: re.fullmatch(pattern, value) is not None,
    )


def no_match_rule(pattern: str, message: str) -> FieldRule:
    """A FieldRule that the value does not contain a match of `pattern` (anchor it with ^
    to mean a prefix)."""
    return FieldRule(
        cel=f"!self.matches({cel_string(pattern)})",
        message=message,
        check=lambda value: re.search(pattern, value) is None,
    )


def cel_string(text: str) -> str:
    """A CEL string literal: raw, single-quoted (a pattern never holds a quote)."""
    if "'" in text or "\n" in text:
        raise ValueError(f"pattern not expressible as a raw CEL string: {text!r}")
    return f"r'{text}'"


class Model(pydantic.BaseModel):
    """Frozen, camelCase-aliased, closed model: the boundary type for API objects."""

    model_config = pydantic.ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=alias_generators.to_camel,
        validate_default=True,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for rule in cls.rules:
            if rule.field_path:
                FIELD_PATHS[rule.message] = rule.field_path

    @pydantic.model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).rules:
            if not rule.check(self):
                # The error's location names the object; the message names the field.
                raise ValueError(rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: Any, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        # The handler may return a $ref for this model; the rules belong on the
        # resolved object schema.
        target = handler.resolve_ref_schema(schema)
        if cls.rules:
            target["x-kubernetes-validations"] = [
                {"rule": r.cel, "message": r.message}
                | ({"fieldPath": r.field_path} if r.field_path else {})
                for r in cls.rules
            ]
        return schema

    def dump(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, no Nones."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
