"""What a replica serves and how fast: model classes, cold starts and SLOs (plain data)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelClass:
    """Service behaviour of one replica with Triton's dynamic batcher.

    A batch of n requests with work units w_i takes `base_s + per_item_s * sum(w_i)`
    (w_i = 1 for fixed-size inputs; LLM requests carry their token count relative to
    the mean). The batcher waits at most `max_queue_delay_s` for a fuller batch.
    """

    name: str
    base_s: float
    per_item_s: float
    max_batch: int
    max_queue_delay_s: float
    image_pull_s: float
    model_load_s: float
    accelerator: str = "gpu"

    def batch_seconds(self, work: float) -> float:
        return self.base_s + self.per_item_s * work

    def capacity_rps(self) -> float:
        """Saturated throughput of one replica (full batches back to back)."""
        return self.max_batch / self.batch_seconds(self.max_batch)


@dataclasses.dataclass(frozen=True)
class Slo:
    """Per-request objective: a request meets it if served with both bounds met."""

    queue_wait_s: float
    e2e_s: float
    client_timeout_s: float


# Parameters are illustrative of each class, not measurements of a particular GPU,
# except tiny-cpu (see its note). Changing them changes every figure: keep in sync with
# docs/benchmarks/autoscaling.md.
MODELS: dict[str, ModelClass] = {
    # ResNet-50 on one GPU: ~5 ms at batch 1, ~1 ms per extra image, batches of 32.
    "resnet50": ModelClass("resnet50", 0.004, 0.001, 32, 0.001, 20.0, 5.0),
    # BERT-base-like: 10 ms at batch 1, 16 per batch.
    "bert": ModelClass("bert", 0.008, 0.002, 16, 0.002, 20.0, 10.0),
    # Small LLM (7B-class) with continuous batching folded into batches: a request of
    # mean length takes ~1.6 s alone, 8 at a time take ~3 s. Loads in 45 s.
    "llm-small": ModelClass("llm-small", 1.2, 0.25, 8, 0.0, 30.0, 45.0),
    # Image generation-like heavy CNN: 100 ms at batch 1, batches of 4.
    "imagegen": ModelClass("imagegen", 0.06, 0.04, 4, 0.005, 30.0, 20.0),
    # Text-to-image diffusion (Stable Diffusion-like, for the Alibaba GenAI trace whose
    # requests carry their execution time): ~3 s per image at 30 steps, 4 per batch.
    "diffusion": ModelClass("diffusion", 0.5, 2.5, 4, 0.05, 30.0, 30.0),
    # The test bed's tiny Python-backend model (hack/testbed/triton-models/tiny, DELAY_MS
    # 20) on the real tritonserver from nvidia-pytriton, CPU, this 2-core machine,
    # measured over HTTP on loopback (2026-11-23, load average ~10): start -> ready 2.2 s;
    # nv_inference_compute_infer_duration_us / nv_inference_request_success = 21.2 ms per
    # batch; client p50 29.7 ms alone, 31.7 ms with 8 concurrent, 46.7 ms with 16 (two
    # batches of 8): so ~20.5 ms + 0.3 ms per item. Image pull is not measured (5 s).
    "tiny-cpu": ModelClass("tiny-cpu", 0.0205, 0.0003, 8, 0.002, 5.0, 2.2, "cpu"),
}

NODE_PROVISION_S = {"none": 0.0, "warm-pool": 60.0, "new-node": 600.0}


def cold_start_s(model: ModelClass, node_provision_s: float) -> float:
    """Requested -> Ready: node provisioning + image pull + model load."""
    return node_provision_s + model.image_pull_s + model.model_load_s
