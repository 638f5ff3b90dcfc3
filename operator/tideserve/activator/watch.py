"""InferenceService watch in a background thread: one list+watch for all namespaces (or
one per namespace when the activator is limited to some), handing each change to the
event loop. The kubernetes client is synchronous, so it stays off the loop's thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import kubernetes

from tideserve.api import resource
from tideserve.kubeconfig import no_cluster

log = logging.getLogger(__name__)

# Server-side watch timeout, and the client's read timeout a little above it: without
# both, a watch through a load balancer can go silent for good.
WATCH_SECONDS = 240
READ_TIMEOUT_SECONDS = WATCH_SECONDS + 30

OnSnapshot = Callable[[list[dict[str, Any]], str | None], None]
OnEvent = Callable[[str, dict[str, Any]], None]


def api_client(kubeconfig: str | None) -> Any:
    """In a pod: the service account. Elsewhere: the kubeconfig (flag, $KUBECONFIG, ~)."""
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
            return kubernetes.client.ApiClient()
        except kubernetes.config.ConfigException:
            pass
    try:
        return kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except Exception as error:  # any failure to read it: none usable
        raise no_cluster(kubeconfig, error) from None


class Watcher:
    def __init__(
        self,
        client: Any,
        namespaces: Sequence[str],
        on_snapshot: OnSnapshot,
        on_event: OnEvent,
    ) -> None:
        self._api = kubernetes.client.CustomObjectsApi(client)
        self._namespaces: Sequence[str | None] = list(namespaces) or [None]
        self._on_snapshot = on_snapshot
        self._on_event = on_event
        self.stop = threading.Event()

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._run, args=(ns,), name=f"watch-{ns or 'all'}", daemon=True)
            for ns in self._namespaces
        ]
        for thread in threads:
            thread.start()
        return threads

    def _list(self, namespace: str | None, **kwargs: Any) -> Any:
        args = (resource.GROUP, resource.VERSION)
        if namespace is None:
            return self._api.list_cluster_custom_object(*args, resource.PLURAL, **kwargs)
        return self._api.list_namespaced_custom_object(*args, namespace, resource.PLURAL, **kwargs)

    def _run(self, namespace: str | None) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                listing = self._list(namespace, _request_timeout=(10, 60))
                self._on_snapshot(list(listing.get("items", [])), namespace)
                self._watch(namespace, listing["metadata"]["resourceVersion"])
                failures = 0
            except Exception as error:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning(
                    "InferenceService watch (%s) failed: %s; relisting in %.1f s",
                    namespace or "all namespaces",
                    error,
                    delay,
                )
                self.stop.wait(delay)

    def _watch(self, namespace: str | None, resource_version: str) -> None:
        """Watch from resource_version until the watch expires (410) or fails; the caller
        relists. Timeouts just resume from the last version seen."""
        while not self.stop.is_set():
            watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            stream = watch.stream(  # type: ignore[no-untyped-call]
                self._list,
                namespace,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _request_timeout=(10, READ_TIMEOUT_SECONDS),
            )
            for event in stream:
                kind = event.get("type")
                obj = event.get("object")
                if kind == "ERROR":
                    log.info("watch error %s; relisting", obj)
                    return
                if isinstance(obj, dict):
                    resource_version = obj.get("metadata", {}).get(
                        "resourceVersion", resource_version
                    )
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._on_event(str(kind), obj)
                if self.stop.is_set():
                    watch.stop()  # type: ignore[no-untyped-call]
                    return
            time.sleep(0)  # the stream ended at its timeout: resume
