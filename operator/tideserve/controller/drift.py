"""Drift: which children lost what tideserve applied to them (pure).

A child counts as drifted when it was deleted, or when a hand edit (`kubectl edit`,
`set image`, `patch`) shows in its `metadata.managedFields`, which it does in two ways:
- another manager now owns a field that tideserve's manifest sets, and tideserve no
  longer does (an update that changes a value moves its ownership to the editor);
- tideserve's own field set is not what its last apply left (a removed label, a port
  renumbered: the field is gone, so nobody owns it). This needs the digest of the set
  after the apply; after a restart the first one seen stands in for it.
Reading ownership instead of comparing values needs no model of the API server's
defaulting (quantities, ports, protocols) and ignores, by construction:
- fields tideserve never sets: the Deployment's replicas (the autoscaler's, through the
  scale subresource), annotations added by `kubectl rollout restart`, a user's labels;
- a field another manager set to the same value (shared ownership: tideserve keeps it),
  so re-applying cannot loop.
A watched child is kept only as a `Seen` summary (a digest of tideserve's fields and the
few paths others own without tideserve), not as its body: hundreds of bodies cost memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tideserve.api import resource

ChildKey = tuple[str, str]  # (kind, name)
Path = tuple[str, ...]  # managedFields keys from the root: ("f:spec", "f:template", ...)
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class Seen:
    """What drift needs to know of a live child."""

    mine: str  # digest of the fields the manager owns
    contested: tuple[Path, ...] = ()  # leaves other managers own and the manager does not


def key_of(manifest: Mapping[str, Any]) -> ChildKey:
    return str(manifest["kind"]), str(manifest["metadata"]["name"])


def _owned(live: Mapping[str, Any], manager: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manager's own field set, every other manager's) on the main resource."""
    mine: dict[str, Any] = {}
    others: list[dict[str, Any]] = []
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("subresource") or entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue  # status and scale writes are other managers' business by contract
        fields = entry.get("fieldsV1") or {}
        if entry.get("manager") == manager:
            mine = _merge(mine, fields)
        else:
            others.append(fields)
    return mine, others


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if k in out else v
    return out


def _contested(
    other: Mapping[str, Any], mine: Mapping[str, Any] | None, path: Path, out: list[Path]
) -> None:
    for key, sub in other.items():
        if key == ".":
            continue
        held = mine.get(key) if mine is not None else None
        if set(sub) <= {"."}:  # a leaf: an atomic value, or a list item owned whole
            if held is None:
                out.append((*path, key))
        else:
            _contested(sub, held, (*path, key), out)


def seen(live: Mapping[str, Any] | None, manager: str = resource.FIELD_MANAGER) -> Seen:
    mine, others = _owned(live or {}, manager)
    paths: list[Path] = []
    for fields in others:
        _contested(fields, mine, (), paths)
    text = json.dumps(mine, sort_keys=True, separators=(",", ":"))
    return Seen(hashlib.sha256(text.encode()).hexdigest()[:20], tuple(sorted(set(paths))))


def _element(items: Sequence[Any], kind: str, raw: str) -> Any:
    """The list element a managedFields key (k:, v:, i:) names in a manifest's list."""
    try:
        if kind == "k":
            wanted = json.loads(raw)
            for item in items:
                if isinstance(item, Mapping) and all(item.get(k) == v for k, v in wanted.items()):
                    return item
        elif kind == "v":
            value = json.loads(raw)
            if value in items:
                return value
        elif kind == "i" and 0 <= int(raw) < len(items):
            return items[int(raw)]
    except ValueError:
        pass
    return _MISSING


def _resolve(path: Path, manifest: Mapping[str, Any]) -> str | None:
    """The path as text if `manifest` sets the field it names, else None."""
    value: Any = manifest
    text = ""
    for key in path:
        kind, _, raw = key.partition(":")
        if kind == "f" and isinstance(value, Mapping) and raw in value:
            value = value[raw]
            text = f"{text}.{raw}" if text else raw
        elif kind in {"k", "v", "i"} and isinstance(value, list):
            value = _element(value, kind, raw)
            if value is _MISSING:
                return None
            text = f"{text}[{raw}]"
        else:
            return None
    return text


def taken(child: Seen, manifest: Mapping[str, Any]) -> list[str]:
    """Paths `manifest` sets that another manager owns on the child and tideserve does not."""
    return sorted({t for p in child.contested if (t := _resolve(p, manifest)) is not None})


def stale(
    manifests: Sequence[Mapping[str, Any]],
    live: Mapping[ChildKey, Seen | None],
    applied: Mapping[ChildKey, str] | None = None,
) -> list[tuple[Mapping[str, Any], str]]:
    """(manifest, why) of every child to apply again.

    `live` maps (kind, name) to what was seen of the child, or to None once it was seen
    deleted; a child not in `live` has not been seen yet (the watch is still listing): no
    verdict. `applied`: `Seen.mine` of each child as tideserve's last apply left it.
    """
    applied = applied or {}
    out: list[tuple[Mapping[str, Any], str]] = []
    for manifest in manifests:
        key = key_of(manifest)
        if key not in live:
            continue
        child = live[key]
        if child is None:
            out.append((manifest, "deleted"))
        elif paths := taken(child, manifest):
            out.append((manifest, "edited: " + ", ".join(paths[:5])))
        elif key in applied and child.mine != applied[key]:
            out.append((manifest, "edited: fields tideserve set were removed or renamed"))
    return out
