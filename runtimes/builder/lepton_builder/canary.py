"""The canary reference the operator checks a freshly served variant against.

The operator cannot read the model volume, so the report carries, per accepted variant,
one sample input and the answer this very artifact gave to it alone (a canary request
arrives alone too). Tensors are raw little-endian bytes in base64 with their numpy
dtype and shape: exact, and decodable with numpy alone.

The report lives in a ConfigMap (1 MiB at most), so outputs keep only their first
``OUTPUT_VALUES`` values in C order (MiniLM's answer to one sentence is 49,152 floats;
the first 4,096 are its first ten tokens, which no wrong artifact reproduces), with
the full shape, which is checked too. Inputs cannot be cut: above ``MAX_INPUT_BYTES``
(images, say) the reference is left out and the operator reports the canary skipped.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_INPUT_BYTES = 64 * 1024
OUTPUT_VALUES = 4096


def encode_tensor(name: str, array: npt.NDArray[Any], limit: int | None = None) -> dict[str, Any]:
    """``limit`` keeps only the first values (C order); ``shape`` stays the full shape."""
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1)
    return {
        "name": name,
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "data": base64.b64encode(little[:limit].tobytes()).decode("ascii"),
    }


def reference(
    input_names: list[str],
    inputs: list[npt.NDArray[Any]],
    output_names: list[str],
    outputs: list[npt.NDArray[Any]],
) -> dict[str, Any] | None:
    """The report's ``canary`` entry, or None when the input is too large to carry."""
    if sum(a.nbytes for a in inputs) > MAX_INPUT_BYTES:
        return None
    return {
        "inputs": [encode_tensor(n, a) for n, a in zip(input_names, inputs, strict=True)],
        "outputs": [
            encode_tensor(n, a, OUTPUT_VALUES) for n, a in zip(output_names, outputs, strict=True)
        ],
    }
