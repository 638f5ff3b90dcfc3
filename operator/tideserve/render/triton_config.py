"""Triton model-config overrides: backend, dynamic batching, max batch size, instances, response
cache.

Approach: a ConfigMap `<name>-config` holds the override fragment (protobuf text) and a
small merge script; an init container running the Triton image (which ships python3)
rewrites `/models/<model>/config.pbtxt`: it drops the top-level fields being overridden
and appends ours. The model's own inputs, outputs, backend and parameters stay as the
model author wrote them. If the model has no config.pbtxt, the fragment alone is written
and Triton's auto-complete fills in the rest (ONNX, TensorRT, TensorFlow, Python).

Why not `--model-config-name`: it makes Triton read `configs/<name>.pbtxt` *instead of*
config.pbtxt, so an override would have to repeat the whole config, which tideserve
does not know for backends without auto-complete (PyTorch). Why not the load API's
`config` parameter: it also replaces the whole config, and needs a call after start-up
that would race readiness.

For a pvc:// repository (read-only), the merge step builds /models/<model> in an
emptyDir: the merged config.pbtxt plus symlinks to everything else in the claim.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tideserve.api import spec as spec_api
from tideserve.render import hardware as hardware_mod
from tideserve.render import names, storage

CONFIG_ROOT = "/etc/tideserve/model-config"
CONFIG_VOLUME = "model-config"
OVERRIDES_KEY = "overrides.pbtxt"
REMOVE_KEY = "remove-fields"
SCRIPT_KEY = "merge.py"
RESPONSE_CACHE_BYTES = 256 * 1024 * 1024

MERGE_SCRIPT = r'''"""Merge tideserve's overrides into a Triton config.pbtxt."""
import os
import re
import sys

TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#[^\n]*|[{}\[\]:,;<>]|[^\s{}\[\]:,;<>#"\']+'
)


def spans(text):
    """(name, start, end) of every top-level field in protobuf text format."""
    tokens = [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]
    tokens = [t for t in tokens if not t[0].startswith("#")]
    out, i = [], 0
    while i < len(tokens):
        name, start, end = tokens[i]
        i += 1
        if i < len(tokens) and tokens[i][0] == ":":
            i += 1
        if i < len(tokens) and tokens[i][0] in "{[<":
            depth = 0
            while i < len(tokens):
                tok = tokens[i][0]
                depth += tok in "{[<"
                depth -= tok in "}]>"
                end = tokens[i][2]
                i += 1
                if depth == 0:
                    break
        elif i < len(tokens):
            end = tokens[i][2]
            i += 1
            while i < len(tokens) and tokens[i][0][:1] in "\"'" and tokens[i - 1][0][:1] in "\"'":
                end = tokens[i][2]
                i += 1
        while i < len(tokens) and tokens[i][0] in ",;":
            i += 1
        out.append((name, start, end))
    return out


def merge(original, overrides, remove):
    drop = set(remove) | {name for name, _, _ in spans(overrides)}
    kept, cursor = [], 0
    for name, start, end in spans(original):
        if name in drop:
            kept.append(original[cursor:start])
            cursor = end
    kept.append(original[cursor:])
    return "".join(kept).rstrip() + "\n\n# tideserve overrides\n" + overrides


def main():
    model, models, source, config = sys.argv[1:5]
    target = os.path.join(models, model)
    if source != "-":
        # Read-only repository: link everything, then write the merged config beside it.
        origin = os.path.join(source, model)
        os.makedirs(target, exist_ok=True)
        for entry in os.listdir(origin):
            if entry != "config.pbtxt":
                os.symlink(os.path.join(origin, entry), os.path.join(target, entry))
    else:
        origin = target
        os.makedirs(target, exist_ok=True)
    path = os.path.join(origin, "config.pbtxt")
    original = open(path).read() if os.path.exists(path) else ""
    overrides = open(os.path.join(config, "overrides.pbtxt")).read()
    remove = open(os.path.join(config, "remove-fields")).read().split()
    merged = merge(original, overrides, remove)
    out = os.path.join(target, "config.pbtxt")
    if os.path.lexists(out):
        os.remove(out)
    with open(out, "w") as f:
        f.write(merged)
    print(merged)


if __name__ == "__main__":
    main()
'''


# spec.model.format -> Triton's backend name (config.pbtxt `backend`; a model author's
# `platform`, e.g. onnxruntime_onnx, names the same backend and is kept).
BACKENDS = {
    spec_api.ModelFormat.ONNX: "onnxruntime",
    spec_api.ModelFormat.TENSORRT: "tensorrt",
    spec_api.ModelFormat.PYTORCH: "pytorch",
    spec_api.ModelFormat.TENSORFLOW: "tensorflow",
    spec_api.ModelFormat.PYTHON: "python",
    spec_api.ModelFormat.OPENVINO: "openvino",
}


def overrides(model: spec_api.ModelSpec, hw: hardware_mod.Hardware) -> tuple[str, list[str]]:
    """(protobuf text to append, top-level fields to remove). Both empty: no override."""
    lines: list[str] = []
    remove: list[str] = []
    if model.format is not None:
        lines.append(f'backend: "{BACKENDS[model.format]}"')
    if model.max_batch_size is not None:
        lines.append(f"max_batch_size: {model.max_batch_size}")
    batching = model.dynamic_batching
    if batching is not None and batching.enabled:
        lines.append("dynamic_batching {")
        if batching.preferred_batch_sizes:
            sizes = ", ".join(str(s) for s in batching.preferred_batch_sizes)
            lines.append(f"  preferred_batch_size: [ {sizes} ]")
        lines.append(f"  max_queue_delay_microseconds: {batching.max_queue_delay_microseconds}")
        lines.append("}")
    elif batching is not None:
        remove.append("dynamic_batching")
    # On CPU hardware the instance kind must be CPU even if the model's config says GPU,
    # or Triton refuses to load it; elsewhere only an explicit instanceCount overrides.
    if hw.kind == "cpu" or "instance_count" in model.model_fields_set:
        kind = "KIND_GPU" if hw.uses_gpu else "KIND_CPU"
        lines += ["instance_group [", "  {", f"    count: {model.instance_count}"]
        lines += [f"    kind: {kind}", "  }", "]"]
    if model.response_cache:
        lines += ["response_cache {", "  enable: true", "}"]
    return ("\n".join(lines) + "\n" if lines else ""), remove


def needed(model: spec_api.ModelSpec, hw: hardware_mod.Hardware) -> bool:
    text, remove = overrides(model, hw)
    return bool(text or remove)


def config_map(
    owner: names.Owner, model: spec_api.ModelSpec, hw: hardware_mod.Hardware
) -> dict[str, Any]:
    text, remove = overrides(model, hw)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(owner, names.config(owner.name), "model-config"),
        "data": {
            OVERRIDES_KEY: text,
            REMOVE_KEY: "\n".join(remove) + ("\n" if remove else ""),
            SCRIPT_KEY: MERGE_SCRIPT,
        },
    }


def digest(model: spec_api.ModelSpec, hw: hardware_mod.Hardware) -> str:
    """Hash of the override, stamped on the pod template so a change rolls the pods."""
    text, remove = overrides(model, hw)
    payload = text + "\0" + ",".join(remove) + "\0" + MERGE_SCRIPT
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def merge_container(
    model: spec_api.ModelSpec,
    image: str,
    source_mount: dict[str, Any] | None,
    security_context: dict[str, Any],
) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [
        {"name": storage.REPOSITORY_VOLUME, "mountPath": storage.MODEL_ROOT},
        {"name": CONFIG_VOLUME, "mountPath": CONFIG_ROOT, "readOnly": True},
    ]
    if source_mount is not None:
        mounts.append(dict(source_mount))
    source = storage.SOURCE_ROOT if source_mount is not None else "-"
    return {
        "name": "model-config",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "python3",
            f"{CONFIG_ROOT}/{SCRIPT_KEY}",
            model.name,
            storage.MODEL_ROOT,
            source,
            CONFIG_ROOT,
        ],
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": security_context,
    }


def volume(owner: names.Owner) -> dict[str, Any]:
    return {"name": CONFIG_VOLUME, "configMap": {"name": names.config(owner.name)}}
