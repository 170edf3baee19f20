"""Inputs for the accuracy guard and for profiling: the user's, or made from the signature."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lepton_builder.request import Tensor
from lepton_builder.untrusted import LoadError

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
    """An .npz with one array per input name, batch first, all the same length.

    Whatever is wrong with the file (not an npz, truncated, object arrays, a missing
    input, a shape the model cannot take) ends the build with ``LoadError`` naming it,
    as the model's own checks do, not with a traceback.
    """
    try:
        # Opened here: np.load leaves its own handle open when the archive is broken.
        with path.open("rb") as file, np.load(file, allow_pickle=False) as data:
            missing = [t.name for t in inputs if t.name not in data]
            if missing:
                raise LoadError(f"calibration data lacks inputs: {', '.join(missing)}")
            arrays = [np.asarray(data[t.name], dtype=NUMPY_DTYPES[t.dtype]) for t in inputs]
    except LoadError:
        raise
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise LoadError(f"calibration data {path.name} cannot be read: {error}") from error
    lengths = {len(a) if a.ndim else 0 for a in arrays}
    if len(lengths) != 1 or 0 in lengths:
        raise LoadError(
            f"calibration data {path.name}: every input needs the same number (>0) of "
            f"samples, batch first; found {sorted(lengths)}"
        )
    return arrays


def batch(arrays: list[npt.NDArray[Any]], size: int) -> list[npt.NDArray[Any]]:
    """The first ``size`` samples, repeated when there are fewer."""
    count = len(arrays[0])
    index = np.arange(size) % count
    return [a[index] for a in arrays]
