"""Tiny Triton Python-backend model: OUTPUT0 = INPUT0 + 1 after a short delay.

The delay (parameter DELAY_MS, per batch) keeps the single model instance busy
so that concurrent requests queue up and Triton's nv_inference_pending_request_count
and nv_inference_queue_duration_us metrics move under load.
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.delay_s = float(params.get("DELAY_MS", {}).get("string_value", "20")) / 1000.0

    def execute(self, requests):
        time.sleep(self.delay_s)
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            out = pb_utils.Tensor("OUTPUT0", (data + 1).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
