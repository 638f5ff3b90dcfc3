"""An in-memory view of the children, fed by kopf's watch events (an informer cache).

Status and routing are recomputed from this view on every relevant event without
reading from the API server, which keeps the request rate flat as objects multiply.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from tideserve.controller import drift
from tideserve.render import names

Key = tuple[str, str]  # (namespace, InferenceService name)
ChildKey = drift.ChildKey


def owner_key(body: Mapping[str, Any]) -> Key | None:
    """The InferenceService a child belongs to, from the label every child carries."""
    meta = body.get("metadata", {})
    name = (meta.get("labels") or {}).get(names.ISVC_LABEL)
    if not name:
        return None
    return str(meta.get("namespace", "")), str(name)


@dataclasses.dataclass
class Store:
    isvcs: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    deployments: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    pods: dict[Key, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    activator_slices: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # Every watched child by (kind, name), as drift needs it; None once seen deleted.
    children: dict[Key, dict[ChildKey, drift.Seen | None]] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def put_isvc(self, key: Key, body: Mapping[str, Any] | None) -> None:
        with self.lock:
            if body is None:
                self.isvcs.pop(key, None)
                self.children.pop(key, None)
            else:
                self.isvcs[key] = dict(body)

    def put_deployment(self, key: Key, body: Mapping[str, Any] | None) -> None:
        with self.lock:
            if body is None:
                self.deployments.pop(key, None)
            else:
                self.deployments[key] = dict(body)

    def put_pod(self, key: Key, pod_name: str, body: Mapping[str, Any] | None) -> None:
        with self.lock:
            pods = self.pods.setdefault(key, {})
            if body is None:
                pods.pop(pod_name, None)
                if not pods:
                    self.pods.pop(key, None)
            else:
                pods[pod_name] = dict(body)

    def put_child(self, key: Key, kind: str, name: str, seen: drift.Seen | None) -> None:
        """A child seen (or None: seen deleted). Tombstones only for known owners: the
        children of a deleted InferenceService go by garbage collection, not repair."""
        with self.lock:
            if seen is not None:
                # Now labelled for this InferenceService: gone from any other one whose
                # child of that name it was (two objects whose children share a name).
                for other, children in self.children.items():
                    if other != key and other[0] == key[0] and children.get((kind, name)):
                        children[(kind, name)] = None
                self.children.setdefault(key, {})[(kind, name)] = seen
            elif key in self.isvcs:
                self.children.setdefault(key, {})[(kind, name)] = None

    def children_of(self, key: Key) -> dict[ChildKey, drift.Seen | None]:
        with self.lock:
            return dict(self.children.get(key, {}))

    def holder(self, namespace: str, child: ChildKey) -> Key | None:
        """The InferenceService a live child of this name belongs to, by its label."""
        with self.lock:
            for key, children in self.children.items():
                if key[0] == namespace and children.get(child) is not None:
                    return key
        return None

    def put_activator_slice(self, name: str, body: Mapping[str, Any] | None) -> None:
        with self.lock:
            if body is None:
                self.activator_slices.pop(name, None)
            else:
                self.activator_slices[name] = dict(body)

    def snapshot(
        self, key: Key
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]:
        """(InferenceService, Deployment, pods) of one key, copied under the lock."""
        with self.lock:
            return (
                self.isvcs.get(key),
                self.deployments.get(key),
                list(self.pods.get(key, {}).values()),
            )

    def activator(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.activator_slices.values())
