"""The accuracy guard: how far a variant's outputs drift from the fp32 baseline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Outputs = list[npt.NDArray[np.generic]]
"""One array per output tensor, batch first."""


@dataclass(frozen=True)
class Verdict:
    value: float
    accepted: bool
    reason: str


def _per_sample(outputs: Outputs) -> npt.NDArray[np.float64]:
    """Each sample's outputs flattened and concatenated: one row per sample."""
    rows = [np.asarray(o, dtype=np.float64).reshape(len(o), -1) for o in outputs]
    return np.concatenate(rows, axis=1)


def min_cosine(baseline: Outputs, candidate: Outputs) -> float:
    a, b = _per_sample(baseline), _per_sample(candidate)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosines = np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
    return float(np.min(cosines))


def top1_agreement(baseline: Outputs, candidate: Outputs) -> float:
    """Share of samples whose argmax over the first output's last axis agrees."""
    a = np.asarray(baseline[0]).reshape(len(baseline[0]), -1)
    b = np.asarray(candidate[0]).reshape(len(candidate[0]), -1)
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))


def max_abs_error(baseline: Outputs, candidate: Outputs) -> float:
    return float(np.max(np.abs(_per_sample(baseline) - _per_sample(candidate))))


def mask_padding(outputs: Outputs, mask: npt.NDArray[np.generic] | None) -> Outputs:
    """Zero the positions an attention mask excludes, in outputs shaped [batch, seq, ...].

    A transformer's states at padded positions carry no meaning and drift freely under
    quantization; on MiniLM with short sentences they are 90% of the positions and
    would decide the verdict. Outputs of any other shape are left as they are.
    """
    if mask is None:
        return outputs
    masked = []
    for output in outputs:
        if output.ndim >= 2 and output.shape[:2] == mask.shape:
            keep = mask.astype(bool).reshape(*mask.shape, *([1] * (output.ndim - 2)))
            masked.append(np.where(keep, output, 0))
        else:
            masked.append(output)
    return masked


def judge(metric: str, tolerance: float, baseline: Outputs, candidate: Outputs) -> Verdict:
    if metric == "max-abs-error":
        value = max_abs_error(baseline, candidate)
        ok = value <= tolerance
        bound = f"above the limit {tolerance:g}"
    else:
        value = (min_cosine if metric == "cosine" else top1_agreement)(baseline, candidate)
        ok = value >= tolerance
        bound = f"below the guard {tolerance:g}"
    if not np.isfinite(value):
        return Verdict(value, False, f"{metric} is not finite (the variant produced NaN/inf)")
    return Verdict(round(value, 6), ok, "" if ok else f"{metric} {value:.4f} {bound}")
