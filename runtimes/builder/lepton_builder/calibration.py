"""Inputs for the accuracy guard and for profiling: the user's, or made from the signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lepton_builder.request import Tensor

NUMPY_DTYPES = {
    "fp32": np.float32,
    "fp16": np.float16,
    "bf16": np.float32,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "bool": np.bool_,
}


def generate(
    inputs: list[Tensor], samples: int, dynamic_dim: int, seed: int = 0
) -> list[npt.NDArray[Any]]:
    """Deterministic inputs in the signature's dtypes; -1 dims become ``dynamic_dim``.

    Integer inputs named like masks are all ones; other integers are token-like ids in
    [0, 1000), floats standard normal. Real data (``calibrationUri``) is better: this
    is the fallback the spec promises when none is given.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in inputs:
        shape = (samples, *[dynamic_dim if d == -1 else d for d in tensor.shape])
        dtype = NUMPY_DTYPES[tensor.dtype]
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif "mask" in tensor.name.lower() or dtype == np.bool_:
            arrays.append(np.ones(shape, dtype=dtype))
        else:
            arrays.append(rng.integers(0, 1000, size=shape).astype(dtype))
    return arrays


def load(path: Path, inputs: list[Tensor]) -> list[npt.NDArray[Any]]:
    """An .npz with one array per input name, batch first."""
    with np.load(path, allow_pickle=False) as data:
        missing = [t.name for t in inputs if t.name not in data]
        if missing:
            raise ValueError(f"calibration data lacks inputs: {', '.join(missing)}")
        return [np.asarray(data[t.name], dtype=NUMPY_DTYPES[t.dtype]) for t in inputs]


def batch(arrays: list[npt.NDArray[Any]], size: int) -> list[npt.NDArray[Any]]:
    """The first ``size`` samples, repeated when there are fewer."""
    count = len(arrays[0])
    index = np.arange(size) % count
    return [a[index] for a in arrays]
