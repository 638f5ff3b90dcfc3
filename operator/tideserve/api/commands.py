"""`tideserve crds` and `tideserve validate`."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, TypeGuard

import yaml

from tideserve.api import crd, manifests, resource


def main_crds(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tideserve crds",
        description="Write the InferenceService CRD generated from the API models into "
        "crds/ and charts/tideserve/crds/, or print it.",
    )
    parser.add_argument(
        "--root",
        type=pathlib.Path,
        default=pathlib.Path.cwd(),
        help="repository root (default: current directory)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a generated file is missing or out of date"
    )
    parser.add_argument("--stdout", action="store_true", help="print the CRD instead")
    args = parser.parse_args(argv)
    if args.stdout:
        sys.stdout.write(crd.render())
        return 0
    if args.check:
        text = crd.render()
        stale = [p for p in crd.targets(args.root) if not p.exists() or p.read_text() != text]
        for path in stale:
            print(f"out of date: {path} (run `tideserve crds`)", file=sys.stderr)
        return 1 if stale else 0
    for path in crd.write(args.root):
        print(f"wrote {path}")
    return 0


def main_validate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tideserve validate",
        description="Check InferenceService manifests with the same rules the CRD enforces "
        "(metadata.name included), reading YAML the way kubectl does.",
    )
    parser.add_argument(
        "files", nargs="+", type=pathlib.Path, help="manifest files; - reads standard input"
    )
    args = parser.parse_args(argv)
    failures = 0
    for path in args.files:
        try:
            raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
            documents = [o for d in manifests.load_all(_text(raw)) for o in manifests.objects(d)]
        except (OSError, ValueError, yaml.YAMLError, manifests.NotJson) as error:
            print(f"{path}: cannot read: {error}", file=sys.stderr)
            failures += 1
            continue
        for doc in documents:
            if not _ours(doc):
                continue
            metadata = doc.get("metadata")
            name = metadata.get("name", "?") if isinstance(metadata, dict) else "?"
            found = manifests.problems(doc)
            if found:
                print(f"{path}: {name}: {'; '.join(found)}", file=sys.stderr)
                failures += 1
            else:
                print(f"{path}: {name}: valid")
    return 1 if failures else 0


def _text(raw: bytes) -> str:
    """A manifest's bytes as text: UTF-8, a leading byte-order mark dropped."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start})"
        ) from None


def _ours(doc: object) -> TypeGuard[dict[str, Any]]:
    """An InferenceService, or anything of our API group: a misspelt kind is named, not
    skipped as someone else's."""
    if not isinstance(doc, dict):
        return False
    group = str(doc.get("apiVersion", "")).partition("/")[0]
    return doc.get("kind") == resource.KIND or group == resource.GROUP
