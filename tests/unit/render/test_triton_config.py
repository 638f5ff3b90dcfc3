"""Triton config overrides: the fragment, and the merge script run on a real config."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import pytest

from tideserve.api import spec as spec_api
from tideserve.render import hardware, names, triton_config

pytestmark = pytest.mark.unit

GPU = hardware.Hardware(kind="gpu")
CPU = hardware.Hardware(kind="cpu")
ORIGINAL = """name: "resnet"
platform: "onnxruntime_onnx"  # the model author's
max_batch_size: 4
input [
  { name: "x" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }
]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 1000 ] } ]
instance_group [ { count: 1 kind: KIND_GPU } ]
dynamic_batching { max_queue_delay_microseconds: 50 }
parameters { key: "a{b" value: { string_value: "}" } }
"""


def model(**fields: Any) -> spec_api.ModelSpec:
    return spec_api.ModelSpec.model_validate({"name": "resnet", "storageUri": "s3://b/r"} | fields)


def merge(original: str, overrides: str, remove: list[str]) -> str:
    namespace: dict[str, Any] = {}
    exec(compile(triton_config.MERGE_SCRIPT, "merge.py", "exec"), namespace)
    result: str = namespace["merge"](original, overrides, remove)
    return result


def test_no_override_for_a_plain_gpu_model() -> None:
    assert not triton_config.needed(model(), GPU)


def test_cpu_hardware_forces_cpu_instances() -> None:
    text, _ = triton_config.overrides(model(), CPU)
    assert "kind: KIND_CPU" in text


def test_fragment_carries_batching_instances_and_cache() -> None:
    m = model(
        maxBatchSize=16,
        dynamicBatching={"preferredBatchSizes": [4, 8], "maxQueueDelayMicroseconds": 200},
        instanceCount=2,
        responseCache=True,
    )
    text, remove = triton_config.overrides(m, GPU)
    assert "max_batch_size: 16" in text
    assert "preferred_batch_size: [ 4, 8 ]" in text
    assert "max_queue_delay_microseconds: 200" in text
    assert "count: 2" in text and "kind: KIND_GPU" in text
    assert "response_cache {" in text
    assert remove == []


def test_disabled_dynamic_batching_removes_the_models_own() -> None:
    _, remove = triton_config.overrides(model(dynamicBatching={"enabled": False}), GPU)
    assert remove == ["dynamic_batching"]


def test_merge_replaces_overridden_fields_and_keeps_the_rest() -> None:
    text, _ = triton_config.overrides(model(maxBatchSize=16, instanceCount=2), GPU)
    merged = merge(ORIGINAL, text, [])
    assert merged.count("max_batch_size") == 1 and "max_batch_size: 16" in merged
    assert merged.count("instance_group") == 1 and "count: 2" in merged
    assert 'input [\n  { name: "x"' in merged and "output [" in merged
    assert "dynamic_batching { max_queue_delay_microseconds: 50 }" in merged
    assert 'parameters { key: "a{b" value: { string_value: "}" } }' in merged


def test_merge_script_runs_on_a_repository(tmp_path: pathlib.Path) -> None:
    repo, config, source = tmp_path / "models", tmp_path / "config", tmp_path / "src"
    (source / "resnet" / "1").mkdir(parents=True)
    (source / "resnet" / "config.pbtxt").write_text(ORIGINAL)
    (source / "resnet" / "1" / "model.onnx").write_text("weights")
    cm = triton_config.config_map(names.Owner("ns", "demo", "u"), model(maxBatchSize=8), GPU)
    config.mkdir()
    for key, value in cm["data"].items():
        (config / key).write_text(value)
    subprocess.run(
        [sys.executable, str(config / "merge.py"), "resnet", str(repo), str(source), str(config)],
        check=True,
        capture_output=True,
    )
    assert (repo / "resnet" / "1").is_symlink()
    merged = (repo / "resnet" / "config.pbtxt").read_text()
    assert "max_batch_size: 8" in merged and "max_batch_size: 4" not in merged


@pytest.mark.parametrize(
    ("fmt", "backend"),
    [
        ("onnx", "onnxruntime"),
        ("pytorch", "pytorch"),
        ("tensorrt", "tensorrt"),
        ("python", "python"),
    ],
)
def test_the_format_sets_the_backend(fmt: str, backend: str) -> None:
    # spec.model.format was accepted and then ignored: a pytorch model without a backend
    # line in its config.pbtxt never loaded, whatever the spec said.
    text, remove = triton_config.overrides(model(format=fmt), GPU)
    assert f'backend: "{backend}"' in text.splitlines()
    assert triton_config.needed(model(format=fmt), GPU)
    merged = merge(
        ORIGINAL.replace('platform: "onnxruntime_onnx"', 'backend: "python"'), text, remove
    )
    assert merged.count("backend:") == 1


def test_every_format_has_a_backend() -> None:
    assert set(triton_config.BACKENDS) == set(spec_api.ModelFormat)
