"""The probe's request of zeros is byte for byte what Triton's own client sends for the same
tensors (tritonclient, a dev dependency, is the reference for the binary tensor extension)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton_http
import tritonclient.utils as triton_utils
from hypothesis import given
from hypothesis import strategies as st

from tideserve.rightsizing import profiling

pytestmark = pytest.mark.unit

# BF16 has no numpy dtype in tritonclient, so it has no reference encoding to compare with.
DATATYPES = sorted(set(profiling.DATATYPE_BYTES) - {"BF16"} | {"BYTES"})
SPECS = st.lists(
    st.tuples(
        st.sampled_from(DATATYPES),
        st.lists(st.one_of(st.just(-1), st.integers(1, 5)), min_size=0, max_size=3),
    ),
    min_size=1,
    max_size=4,
)


def reference(shapes: list[tuple[str, list[int]]]) -> tuple[bytes, int]:
    inputs = []
    for i, (datatype, shape) in enumerate(shapes):
        tensor = triton_http.InferInput(f"in{i}", shape, datatype)
        if datatype == "BYTES":
            tensor.set_data_from_numpy(np.full(shape, b"0", dtype=np.object_))
        else:
            dtype = triton_utils.triton_to_np_dtype(datatype)
            tensor.set_data_from_numpy(np.zeros(shape, dtype=dtype))
        inputs.append(tensor)
    body, json_size = triton_http.InferenceServerClient.generate_request_body(inputs)
    return body, int(json_size)


@given(SPECS, st.booleans())
def test_the_request_is_what_tritonclient_sends(
    specs: list[tuple[str, list[int]]], batched: bool
) -> None:
    metadata = {
        "inputs": [{"name": f"in{i}", "datatype": d, "shape": s} for i, (d, s) in enumerate(specs)]
    }
    request = profiling.request_of("m", metadata, {"max_batch_size": 8 if batched else 0})
    # The shapes the probe settles on (-1 -> 1, a batch dimension of 1 when the model batches).
    shapes = []
    for datatype, shape in specs:
        fixed = [1 if d < 0 else d for d in shape]
        if batched and (not fixed or fixed[0] != 1):
            fixed = [1, *fixed]
        shapes.append((datatype, fixed))
    body, json_size = reference(shapes)
    assert request.body == body
    assert request.headers[profiling.HEADER_LENGTH] == str(json_size)
    assert request.path == "/v2/models/m/infer"


def test_a_datatype_it_cannot_encode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'FP8'"):
        profiling.zeros("FP8", [2])
