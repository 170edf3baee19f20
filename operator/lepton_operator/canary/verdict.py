"""Is a served answer the answer the builder recorded? Pure: arrays in, verdict out.

The reference was produced by the same artifact on the same kind of device, so a
correct deployment reproduces it to rounding; a wrong artifact, a wrong runtime or a
mangled signature does not. The relative L2 error is the test: scale-free across
logits and embeddings, and any flipped integer label shows up as a large error.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lepton_operator.report import CanaryTensor

TOLERANCE = 1e-2  # relative L2 error; rounding differences are orders of magnitude below


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str


@dataclass(frozen=True)
class Expected:
    """An output's full shape and its first values in C order (all of them, or a prefix:
    the builder keeps reports small)."""

    shape: tuple[int, ...]
    values: npt.NDArray[Any]


def _values(tensor: CanaryTensor) -> npt.NDArray[Any]:
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    flat = np.frombuffer(base64.b64decode(tensor.data), dtype=dtype)
    return flat.astype(dtype.newbyteorder("="))


def decode(tensor: CanaryTensor) -> npt.NDArray[Any]:
    """An input: always carried whole."""
    return _values(tensor).reshape(tensor.shape)


def expected(tensor: CanaryTensor) -> Expected:
    return Expected(tuple(tensor.shape), _values(tensor))


def compare(want_outputs: dict[str, Expected], served: dict[str, npt.NDArray[Any]]) -> Verdict:
    errors: list[str] = []
    worst = 0.0
    for name, want in want_outputs.items():
        got = served.get(name)
        if got is None:
            errors.append(f"output {name} missing from the answer")
            continue
        if got.shape != want.shape:
            errors.append(f"output {name} has shape {list(got.shape)}, expected {list(want.shape)}")
            continue
        want64 = want.values.astype(np.float64)
        got64 = got.reshape(-1)[: want.values.size].astype(np.float64)
        scale = max(float(np.linalg.norm(want64)), 1e-12)
        error = float(np.linalg.norm(got64 - want64)) / scale
        worst = max(worst, error)
        if not np.isfinite(error) or error > TOLERANCE:
            errors.append(f"output {name} differs by {error:.3g} (relative L2; limit {TOLERANCE})")
    if errors:
        return Verdict(False, "; ".join(errors))
    return Verdict(True, f"answer matches the build's reference (relative L2 error {worst:.2g})")
