"""The canary reference the operator checks a freshly served variant against.

The operator cannot read the model volume, so the report carries, per accepted variant,
one sample input and the answer this very artifact gave to it alone (a canary request
arrives alone too). Tensors are raw little-endian bytes in base64 with their numpy
dtype and shape: exact, and decodable with numpy alone. Large inputs (images) would
bloat the report ConfigMap past its 1 MiB limit, so a reference above ``MAX_BYTES``
is left out and the operator reports the canary as skipped.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_BYTES = 64 * 1024


def encode_tensor(name: str, array: npt.NDArray[Any]) -> dict[str, Any]:
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {
        "name": name,
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "data": base64.b64encode(little.tobytes()).decode("ascii"),
    }


def reference(
    input_names: list[str],
    inputs: list[npt.NDArray[Any]],
    output_names: list[str],
    outputs: list[npt.NDArray[Any]],
) -> dict[str, Any] | None:
    """The report's ``canary`` entry, or None when it would be too large to carry."""
    if sum(a.nbytes for a in [*inputs, *outputs]) > MAX_BYTES:
        return None
    return {
        "inputs": [encode_tensor(n, a) for n, a in zip(input_names, inputs, strict=True)],
        "outputs": [encode_tensor(n, a) for n, a in zip(output_names, outputs, strict=True)],
    }
