"""A small external-metrics adapter of the test bed's own: external.metrics.k8s.io/v1beta1
served from Prometheus queries, so the real HPA controller (kube-controller-manager's) can
scale on Triton's queue without KEDA (prometheus-adapter is not served here).

It is an aggregated API server as the HPA sees it: an APIService
`v1beta1.external.metrics.k8s.io` with a caBundle, backed by a selectorless Service whose
EndpointSlice names the adapter's address (the API server runs with
--enable-aggregator-routing and dials it). It listens, over TLS with a certificate from a
CA of its own, on the real node's bridge address (an EndpointSlice may not hold a
loopback address): it needs the real node. Requests are not authenticated (the API server
authenticates and authorizes the HPA controller before proxying; but pods on the node's
bridge reach the adapter too: it serves only the test bed's own queue metrics). A client
that connects and sends nothing times out (10 s) in a thread of its own; it never blocks
the handshake of the next one. Each metric name maps to one PromQL query whose `$namespace` is
the request's namespace; the label selector is ignored. The same APIService name as
KEDA's adapter: the two never run at once (`served` refuses while it is registered).

Stdlib only (the test bed's scripts run before the venv exists).
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import json
import pathlib
import re
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tideserve_testbed import certs, keda, node, procs
from tideserve_testbed import prometheus as testbed_prometheus

NAMESPACE = "tideserve-metrics-adapter"
SERVICE = "external-metrics"
GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
APISERVICE = f"{VERSION}.{GROUP}"
PREFIX = f"/apis/{GROUP}/{VERSION}"
NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a namespace: pasted into PromQL


def quantity(value: float) -> str:
    """A Kubernetes quantity for a metric value, in thousandths (the HPA's resolution)."""
    return f"{round(value * 1000)}m"


def metric_path(path: str) -> tuple[str, str] | None:
    """(namespace, metric) of `/apis/external.metrics.k8s.io/v1beta1/namespaces/N/M`."""
    parts = urllib.parse.urlsplit(path).path.removeprefix(PREFIX).strip("/").split("/")
    if len(parts) == 3 and parts[0] == "namespaces" and NAME.fullmatch(parts[1]) and parts[2]:
        return parts[1], parts[2]
    return None


def value_list(metric: str, value: float, now: datetime.datetime) -> dict[str, Any]:
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "ExternalMetricValueList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {},
        "items": [{"metricName": metric, "metricLabels": {}, "timestamp": stamp,
                   "value": quantity(value)}],
    }  # fmt: skip


RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
    "resources": [{"name": "externalmetrics", "singularName": "", "namespaced": True,
                   "kind": "ExternalMetricValueList", "verbs": ["get"]}],
}  # fmt: skip


def _handler(
    queries: Mapping[str, str], measure: Callable[[str], float]
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 10  # the socket's, so also the TLS handshake's

        def setup(self) -> None:
            super().setup()
            self.connection.do_handshake()  # type: ignore[attr-defined]

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, code: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path.rstrip("/")
            if path == PREFIX:
                self._send(200, RESOURCES)
                return
            found = metric_path(self.path)
            if found is None or found[1] not in queries:
                self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "NotFound", "code": 404})  # fmt: skip
                return
            namespace, metric = found
            try:
                value = measure(queries[metric].replace("$namespace", namespace))
            except Exception as error:  # Prometheus down: the HPA reports it and holds
                self._send(503, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "message": str(error), "code": 503})  # fmt: skip
                return
            self._send(200, value_list(metric, value, datetime.datetime.now(datetime.UTC)))

    return Handler


def _prometheus_value(base_url: str) -> Callable[[str], float]:
    def measure(promql: str) -> float:
        result = testbed_prometheus.query(base_url, promql)
        return sum(float(r["value"][1]) for r in result)

    return measure


@contextlib.contextmanager
def served(
    d: pathlib.Path, prometheus_url: str, queries: Mapping[str, str], timeout: float = 120.0
) -> Iterator[int]:
    """The adapter for the duration of the block (yields its port), serving each metric
    name in `queries` from Prometheus; its APIService, Service and namespace removed after."""
    found = keda.kubectl(d, "get", "apiservice", APISERVICE, "--ignore-not-found", "-o", "json")
    if found.strip():
        backend = (json.loads(found).get("spec") or {}).get("service") or {}
        if backend.get("namespace") != NAMESPACE:
            raise procs.StartupError(f"APIService {APISERVICE} is registered by another "
                                     f"adapter (service {backend}): KEDA's?")  # fmt: skip
        keda.kubectl(d, "delete", "apiservice", APISERVICE)  # ours, left by a killed run
    tls = d / "metrics-adapter" / "certs"
    certs.issue_own_ca(tls, "tideserve-metrics-adapter-ca", {
        "tls": ("/CN=external-metrics", "serverAuth",
                f"DNS:{SERVICE}.{NAMESPACE}.svc,IP:{node.GATEWAY}"),
    })  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "tls.crt", tls / "tls.key")
    server = http.server.ThreadingHTTPServer(
        (node.GATEWAY, 0), _handler(queries, _prometheus_value(prometheus_url))
    )
    port = server.server_address[1]
    # The handshake in each request's thread (under Handler.timeout), not in accept().
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        items = keda.external_metrics_manifests(
            NAMESPACE, SERVICE, node.GATEWAY, port, (tls / "ca.crt").read_text()
        )
        listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        keda.kubectl(d, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=listed)
        procs.wait_for(
            f"APIService {APISERVICE} Available", lambda: keda.apiservice_available(d), timeout
        )
        yield port
    finally:
        with contextlib.suppress(procs.StartupError):
            keda.kubectl(d, "delete", "apiservice", APISERVICE, "--ignore-not-found")
        with contextlib.suppress(procs.StartupError):
            keda.kubectl(d, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
        server.shutdown()
        server.server_close()
