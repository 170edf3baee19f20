"""The accuracy guard: how far a variant's outputs drift from the fp32 baseline, on what
clients consume.

Each held-out sample gets one score (its cosine, its top-1 agreement, its largest
absolute error) on the output as the spec says it is used (token states, or a pooled
and normalized embedding); the verdict reads the mean and the tail (p5, or p95 for an
error) over those samples. A minimum over all samples, as this guard once took, lets
one odd sentence decide, and says nothing about how many samples were judged: the
verdict here states its count and refuses to judge below the spec's minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Outputs = list[npt.NDArray[np.generic]]
"""One array per output tensor, batch first."""
Mask = npt.NDArray[np.generic] | None
Pooling = Literal["none", "mean", "cls"]
TAIL_PERCENT = 5.0  # the tail read beside the mean: p5 of a score, p95 of an error


@dataclass(frozen=True)
class Usage:
    """How clients consume an output shaped [batch, sequence, ...] (token states):
    whole, or pooled over the sequence (mean over the attention mask, or the first
    token), then optionally L2-normalized."""

    pooling: Pooling = "none"
    normalize: bool = False

    def describe(self) -> str:
        if self.pooling == "none" and not self.normalize:
            return "the outputs as served (padding excluded)"
        pooled = {
            "none": "the outputs",
            "mean": "the mean over the attention mask",
            "cls": "the first token's state",
        }[self.pooling]
        return pooled + (", L2-normalized" if self.normalize else "")


@dataclass(frozen=True)
class Verdict:
    value: float  # the mean over the judged samples
    accepted: bool
    reason: str
    tail: float = float("nan")  # p5 of a score, p95 of an error
    samples: int = 0


def _is_states(output: npt.NDArray[np.generic], mask: Mask) -> bool:
    return mask is not None and output.ndim >= 3 and output.shape[:2] == mask.shape


def mask_padding(outputs: Outputs, mask: Mask) -> Outputs:
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


def consumed(outputs: Outputs, mask: Mask, usage: Usage) -> Outputs:
    """What clients read from each output: token states pooled and normalized as the
    spec declares; outputs of other shapes (logits, already pooled) as they are."""
    result: Outputs = []
    for output in mask_padding(outputs, mask):
        value = np.asarray(output, dtype=np.float64)
        if _is_states(value, mask) and usage.pooling != "none":
            assert mask is not None
            if usage.pooling == "cls":
                value = value[:, 0]
            else:
                weight = mask.astype(np.float64).reshape(*mask.shape, *([1] * (value.ndim - 2)))
                value = value.sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-9)
        if usage.normalize:
            flat = value.reshape(len(value), -1)
            norms = np.linalg.norm(flat, axis=1).reshape(-1, *([1] * (value.ndim - 1)))
            value = value / np.maximum(norms, 1e-12)
        result.append(value)
    return result


def _per_sample(outputs: Outputs) -> npt.NDArray[np.float64]:
    """Each sample's outputs flattened and concatenated: one row per sample."""
    rows = [np.asarray(o, dtype=np.float64).reshape(len(o), -1) for o in outputs]
    return np.concatenate(rows, axis=1)


def cosines(baseline: Outputs, candidate: Outputs) -> npt.NDArray[np.float64]:
    a, b = _per_sample(baseline), _per_sample(candidate)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    result: npt.NDArray[np.float64] = np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
    return result


def agreements(baseline: Outputs, candidate: Outputs, mask: Mask = None) -> npt.NDArray[np.float64]:
    """Per sample, the share of positions whose argmax over the first output's last axis
    agrees: one position for logits, every unmasked token for per-token outputs."""
    a, b = np.asarray(baseline[0]), np.asarray(candidate[0])
    if a.ndim <= 2:
        a, b = a.reshape(len(a), 1, -1), b.reshape(len(b), 1, -1)
        weight = np.ones((len(a), 1))
    else:
        a, b = a.reshape(len(a), -1, a.shape[-1]), b.reshape(len(b), -1, b.shape[-1])
        has_mask = mask is not None and mask.shape == a.shape[:2]
        weight = np.asarray(mask, dtype=np.float64) if has_mask else np.ones(a.shape[:2])
    same = (np.argmax(a, axis=-1) == np.argmax(b, axis=-1)).astype(np.float64)
    result: npt.NDArray[np.float64] = (same * weight).sum(axis=1) / np.maximum(
        weight.sum(axis=1), 1e-9
    )
    return result


def abs_errors(baseline: Outputs, candidate: Outputs) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = np.max(
        np.abs(_per_sample(baseline) - _per_sample(candidate)), axis=1
    )
    return result


def min_cosine(baseline: Outputs, candidate: Outputs) -> float:
    return float(np.min(cosines(baseline, candidate)))


def top1_agreement(baseline: Outputs, candidate: Outputs) -> float:
    return float(np.mean(agreements(baseline, candidate)))


def max_abs_error(baseline: Outputs, candidate: Outputs) -> float:
    return float(np.max(abs_errors(baseline, candidate)))


def scores(
    metric: str, baseline: Outputs, candidate: Outputs, mask: Mask = None, usage: Usage = Usage()
) -> npt.NDArray[np.float64]:
    """One score per sample, on what clients consume."""
    if metric == "top1-agreement":
        return agreements(mask_padding(baseline, mask), mask_padding(candidate, mask), mask)
    a, b = consumed(baseline, mask, usage), consumed(candidate, mask, usage)
    return abs_errors(a, b) if metric == "max-abs-error" else cosines(a, b)


def label_scores(
    outputs: Outputs, labels: npt.NDArray[np.integer[Any]], mask: Mask = None
) -> npt.NDArray[np.float64]:
    """Per sample, the share of labelled positions whose argmax over the first output's
    last axis is the label: one position for logits, every unmasked token with a label
    (>= 0) for per-token outputs; NaN for a sample with no labelled position."""
    predicted = np.argmax(np.asarray(outputs[0]), axis=-1).reshape(len(labels), -1)
    expected = np.asarray(labels).reshape(len(labels), -1)
    if predicted.shape != expected.shape:
        raise ValueError(
            f"labels of shape {list(np.shape(labels))} do not match the first output's "
            f"predictions {list(predicted.shape)} (one label per sample or per position)"
        )
    weight = (expected >= 0).astype(np.float64)
    if mask is not None and np.shape(mask) == expected.shape:
        weight *= np.asarray(mask, dtype=np.float64)
    counted = weight.sum(axis=1)
    right = ((predicted == expected) * weight).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: npt.NDArray[np.float64] = np.where(counted > 0, right / counted, np.nan)
    return result


@dataclass(frozen=True)
class _Bounds:
    mean: float
    tail: float | None
    mean_from: str  # how each bound was set, for the reason
    tail_from: str


def _bounded(
    metric: str,
    tolerance: float,
    tail_tolerance: float | None,
    baseline: Outputs,
    candidate: Outputs,
    mask: Mask,
    usage: Usage,
    labels: npt.NDArray[np.integer[Any]] | None,
) -> tuple[npt.NDArray[np.float64], _Bounds]:
    """The candidate's per-sample scores and the bounds they must meet: the tolerances
    themselves, or for label-accuracy the tolerances times the fp32 baseline's own
    accuracy on the same labels (0.99: at most 1% relative loss, the criterion Intel
    Neural Compressor's accuracy-aware tuning reads)."""
    if metric != "label-accuracy":
        values = scores(metric, baseline, candidate, mask, usage)
        return values, _Bounds(
            tolerance, tail_tolerance, f"the guard {tolerance:g}", f"the guard {tail_tolerance}"
        )
    if labels is None:
        raise ValueError("label-accuracy needs labels in the calibration data")
    values = label_scores(candidate, labels, mask)
    reference = label_scores(baseline, labels, mask)
    kept = np.isfinite(reference)  # samples with no labelled position are not judged
    values, reference = values[kept], reference[kept]
    if not len(reference):
        return values, _Bounds(tolerance, tail_tolerance, "", "")
    base_mean = float(np.mean(reference))
    base_tail = float(np.percentile(reference, TAIL_PERCENT))
    tail = None if tail_tolerance is None else tail_tolerance * base_tail
    return values, _Bounds(
        tolerance * base_mean,
        tail,
        f"{tolerance:g} x fp32's {base_mean:.4f}",
        f"{tail_tolerance} x fp32's {base_tail:.4f}",
    )


def judge(
    metric: str,
    tolerance: float,
    baseline: Outputs,
    candidate: Outputs,
    *,
    mask: Mask = None,
    usage: Usage = Usage(),
    tail_tolerance: float | None = None,
    min_samples: int = 1,
    labels: npt.NDArray[np.integer[Any]] | None = None,
) -> Verdict:
    """Accepted when the mean (and the tail, where bound) is within the tolerance and at
    least ``min_samples`` samples were judged; the reason names the first failed bound."""
    values, bounds = _bounded(
        metric, tolerance, tail_tolerance, baseline, candidate, mask, usage, labels
    )
    count = len(values)
    if count < min_samples:
        return Verdict(
            float("nan"),
            False,
            f"judged on {count} samples, fewer than the guard's minimum {min_samples}",
            samples=count,
        )
    errors = metric == "max-abs-error"
    mean = float(np.mean(values))
    tail = float(np.percentile(values, 100 - TAIL_PERCENT if errors else TAIL_PERCENT))
    if not (np.isfinite(mean) and np.isfinite(tail)):
        reason = f"{metric} is not finite (the variant produced NaN/inf)"
        return Verdict(mean, False, reason, tail, count)
    tail_name = f"p{100 - TAIL_PERCENT:g}" if errors else f"p{TAIL_PERCENT:g}"
    reason = ""
    if errors:
        if mean > bounds.mean:
            reason = f"{metric} mean {mean:.4f} above the limit {tolerance:g}"
        elif bounds.tail is not None and tail > bounds.tail:
            reason = f"{metric} {tail_name} {tail:.4f} above the limit {bounds.tail:g}"
    elif mean < bounds.mean:
        reason = f"{metric} mean {mean:.4f} below {bounds.mean_from}"
    elif bounds.tail is not None and tail < bounds.tail:
        reason = f"{metric} {tail_name} {tail:.4f} below {bounds.tail_from}"
    return Verdict(round(mean, 6), not reason, reason, round(tail, 6), count)
