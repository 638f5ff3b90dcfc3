"""Prometheus http_sd for the pods on the real node (Debian's Prometheus lacks kubernetes_sd).

  python3 -m tideserve_testbed.podsd STATE_DIR PORT

GET /targets lists, for every running pod on the real node annotated
prometheus.io/scrape=true, its container port named `metrics`, with the labels the
in-cluster scrape attaches: namespace, name (the InferenceService label), pod. Each
request asks the API server afresh, so Prometheus (refresh 1 s) sees pods come and go.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import sys
from typing import Any

from tideserve_testbed import controlplane, node, procs

ISVC_LABEL = "serving.tideserve.io/inferenceservice"


def targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status", {})
        ip = status.get("podIP")
        scrape = (meta.get("annotations") or {}).get("prometheus.io/scrape") == "true"
        if not ip or not scrape or status.get("phase") != "Running":
            continue
        for container in pod["spec"]["containers"]:
            for port in container.get("ports") or []:
                if port.get("name") == "metrics":
                    labels = {
                        "namespace": meta["namespace"],
                        "name": (meta.get("labels") or {}).get(ISVC_LABEL, ""),
                        "pod": meta["name"],
                    }
                    out.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": labels})
    return out


def main(argv: list[str]) -> int:
    d, port = pathlib.Path(argv[0]), int(argv[1])
    state = procs.read_json(d / "state.json")
    api = controlplane.Api(d, state["ports"]["kube-apiserver"])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node.NAME}"
            status, body = api.get(path, timeout=5)
            if status != 200:
                self.send_error(502, f"API server answered {status}")
                return
            data = json.dumps(targets(json.loads(body)["items"])).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
