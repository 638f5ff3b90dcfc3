"""The hostile-manifest table (tests/data/hostile.yaml): each case as the text a user
would apply, and the field its refusal must name (None: accepted)."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import yaml

from tideserve.api import resource

TABLE = pathlib.Path(__file__).resolve().parents[3] / "tests" / "data" / "hostile.yaml"
BASE_SPEC: dict[str, Any] = {"model": {"name": "tiny", "storageUri": "s3://models/tiny"}}


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    field: str | None  # the field the refusal names; None: accepted
    text: str  # the manifest as applied (JSON for spec cases: YAML reading aside)

    def named(self, name: str) -> str:
        """The manifest under another metadata.name (cases named "hostile" share one)."""
        return self.text.replace('"name": "hostile"', f'"name": "{name}"').replace(
            "metadata: {name: hostile", f"metadata: {{name: {name}"
        )


def cases() -> list[Case]:
    out = []
    for row in yaml.safe_load(TABLE.read_text()):
        if "yaml" in row:
            text = row["yaml"]
        else:
            spec = {**BASE_SPEC, **row.get("spec", {})}
            manifest = {
                "apiVersion": resource.API_VERSION,
                "kind": resource.KIND,
                "metadata": {"name": row.get("name", "hostile")},
                "spec": spec,
            }
            text = json.dumps(manifest)
        # fill: {TOKEN: [text, n]} writes text n times in place of TOKEN, for cases about
        # size that would otherwise need kilobytes of the same character in the table.
        for token, (piece, times) in row.get("fill", {}).items():
            text = text.replace(token, piece * times)
        out.append(Case(row["id"], row["field"], text))
    return out
