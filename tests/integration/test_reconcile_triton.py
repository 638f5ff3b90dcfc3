"""What the reconciler renders for Triton, run by a real Triton server (CPU, no cluster).

The rendered container args and the Triton config merge step are executed as they
would be in the pod: the merge script from the rendered ConfigMap rewrites a copy of the
test bed's model repository, then the `tritonserver` binary from the nvidia-pytriton
wheel starts with the rendered args, and Triton itself reports the config it loaded.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tideserve_testbed import fixtures, harness, procs, triton

from tideserve.api import resource
from tideserve.render import children, names

pytestmark = pytest.mark.e2e

OWNER = names.Owner("models", "tiny", "uid-1", 1)
SPEC = {
    "model": {
        "name": "tiny",
        "storageUri": "https://models.invalid/tiny.tar.gz",
        "maxBatchSize": 4,
        "dynamicBatching": {"preferredBatchSizes": [2, 4], "maxQueueDelayMicroseconds": 500},
        "instanceCount": 2,
        "responseCache": True,
    },
    "resources": {"accelerator": "cpu"},
}


def rendered() -> tuple[dict[str, Any], dict[str, Any]]:
    plan = children.plan(OWNER, resource.parse_spec(SPEC), children.Options(triton_image="x"))
    by_kind = {m["kind"]: m for m in plan.apply}
    return by_kind["ConfigMap"], by_kind["Deployment"]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.loads(r.read())


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[dict[str, str]]:
    config_map, deployment = rendered()
    pod = deployment["spec"]["template"]["spec"]
    # The fetch init container's job: the repository lands in /models.
    models = tmp_path / "models"
    shutil.copytree(triton.MODEL_REPOSITORY, models, ignore=shutil.ignore_patterns("__pycache__"))
    # The model-config init container, as rendered, with the ConfigMap's files.
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for key, value in config_map["data"].items():
        (config_dir / key).write_text(value)
    (merge,) = [c for c in pod["initContainers"] if c["name"] == "model-config"]
    command = [
        str(config_dir / "merge.py") if a.endswith("/merge.py") else a for a in merge["command"]
    ]
    command = [sys.executable if a == "python3" else a for a in command]
    command = [
        str(models) if a == "/models" else str(config_dir) if a.startswith("/etc/") else a
        for a in command
    ]
    subprocess.run(command, check=True, capture_output=True)
    # The Triton container's args, with this machine's paths and loopback ports.
    info = triton._install()
    http, grpc, metrics = procs.free_port(), procs.free_port(), procs.free_port()
    args = []
    for arg in pod["containers"][0]["args"]:
        flag = arg.split("=", 1)[0]
        args.append(
            {
                "--model-repository": f"--model-repository={models}",
                "--http-port": f"--http-port={http}",
                "--grpc-port": f"--grpc-port={grpc}",
                "--metrics-port": f"--metrics-port={metrics}",
            }.get(flag, arg)
        )
    local = [
        f"--backend-directory={info['backends']}",
        f"--cache-directory={pathlib.Path(info['pytriton']) / 'tritonserver' / 'caches'}",
        "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
        "--allow-gpu-metrics=false",
        f"--backend-config=python,shm-region-prefix-name=tideserve_render_{os.getpid()}_",
    ]  # fmt: skip
    log = (tmp_path / "triton.log").open("wb")
    proc = subprocess.Popen(
        [info["server"], *args, *local], env=triton._env(info), stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{http}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "triton.log").read_text()[-3000:]
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as r:
            return bool(r.status == 200)

    try:
        fixtures.eventually(ready, 90, "Triton ready", interval=0.5)
        yield {"http": url, "metrics": f"http://127.0.0.1:{metrics}/metrics"}
    finally:
        harness.stop_process(proc)
        log.close()


def test_triton_loads_the_model_with_the_rendered_args_and_merged_config(
    server: dict[str, str],
) -> None:
    config = get_json(f"{server['http']}/v2/models/tiny/config")
    assert config["max_batch_size"] == 4
    assert config["dynamic_batching"]["preferred_batch_size"] == [2, 4]
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 500
    assert [(g["count"], g["kind"]) for g in config["instance_group"]] == [(2, "KIND_CPU")]
    assert config["response_cache"]["enable"] is True
    # What the model author wrote and tideserve does not override is kept.
    assert config["backend"] == "python"
    assert config["parameters"]["DELAY_MS"]["string_value"] == "20"
    assert [i["name"] for i in config["input"]] == ["INPUT0"]
    # Explicit model control: exactly the one model was loaded.
    index = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(f"{server['http']}/v2/repository/index", method="POST"),
            timeout=2,
        ).read()
    )
    assert [(m["name"], m.get("state")) for m in index] == [("tiny", "READY")]


def test_rendered_probes_and_metrics_port_answer(server: dict[str, str]) -> None:
    _, deployment = rendered()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        with urllib.request.urlopen(f"{server['http']}{path}", timeout=2) as r:
            assert r.status == 200, probe
    with urllib.request.urlopen(server["metrics"], timeout=2) as r:
        text = r.read().decode()
    # The autoscaler's queue signal, from the port the Service and scrape annotations name.
    assert 'nv_inference_pending_request_count{model="tiny"' in text
