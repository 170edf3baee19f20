"""Training a smaller model to answer as the fp32 model does, within a time budget.

Used after pruning (to recover what the removed units carried) and for distilled
students. The target is the teacher's own outputs on the calibration inputs, so no
labels are needed; the loss is per sample (1 - cosine) plus the mean squared error
scaled by the teacher's variance, which suits both embeddings and logits.

A quarter of the calibration samples is kept out of training (``split``), so the guard
can judge a trained model on inputs it never fitted; a model judged on its own training
inputs would look better than it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Arrays = list[npt.NDArray[Any]]
HELD_OUT_EVERY = 4  # every 4th calibration sample is kept out of training
MIN_SAMPLES_TO_HOLD_OUT = 4


@dataclass
class TrainingLog:
    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # mean loss per epoch
    samples: int = 0  # how many inputs it was trained on
    held_out: int = 0  # how many were kept out, for the guard

    def as_report(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "lossCurve": [round(v, 6) for v in self.losses],
            "trainedOn": self.samples,
            "heldOut": self.held_out,
        }


def split(count: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(training, held-out) sample indices; nothing is held out of tiny sets."""
    index = np.arange(count)
    if count < MIN_SAMPLES_TO_HOLD_OUT:
        return index, index[:0]
    held = index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
    return index[~held], index[held]


def take(arrays: Arrays, index: npt.NDArray[np.intp]) -> Arrays:
    return [a[index] for a in arrays]


def trim_padding(arrays: Arrays, mask_index: int | None) -> Arrays:
    """Inputs cut after the longest unpadded sequence of the batch.

    Short sentences padded to 128 tokens spend most of a step on padding; the outputs at
    real positions do not change (the mask hides padding from attention).
    """
    if mask_index is None:
        return arrays
    mask = arrays[mask_index]
    longest = int(np.max(np.nonzero(mask.any(axis=0))[0], initial=0)) + 1
    length = mask.shape[1]
    return [a[:, :longest] if a.ndim >= 2 and a.shape[1] == length else a for a in arrays]


def fit(
    student: Any,
    teacher: Any,
    inputs: Arrays,
    seconds: float,
    mask_index: int | None = None,
    batch_size: int = 8,
    learning_rate: float = 1e-4,
    seed: int = 0,
    max_steps: int | None = None,
) -> TrainingLog:
    """Train ``student`` (in place) toward ``teacher``'s outputs on ``inputs``.

    Stops after ``seconds`` of training (at least one step), so a build's time stays
    bounded whatever the model's size, or after ``max_steps`` (for runs that must be
    repeatable). Padded positions do not count in the loss.
    """
    import torch

    from lepton_builder.pruning import device_of

    device = device_of(teacher)
    generator = torch.Generator().manual_seed(seed)
    count = len(inputs[0])
    log = TrainingLog(samples=count)
    batches = []
    for start in range(0, count, batch_size):
        arrays = trim_padding([a[start : start + batch_size] for a in inputs], mask_index)
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]
        with torch.inference_mode():
            targets = _tuple(teacher(*tensors))
        weight = None
        if mask_index is not None:
            weight = tensors[mask_index].to(torch.float32)
        batches.append((tensors, [t.clone() for t in targets], weight))
    student.train()
    for parameter in student.parameters():
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(student.parameters(), lr=learning_rate, weight_decay=0.0)
    started = time.monotonic()
    try:
        while True:
            total = 0.0
            for position in torch.randperm(len(batches), generator=generator).tolist():
                tensors, targets, weight = batches[position]
                optimizer.zero_grad()
                loss = _loss(_tuple(student(*tensors)), targets, weight)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                log.steps += 1
                if _done(log.steps, started, seconds, max_steps):
                    break
            log.losses.append(total / max(len(batches), 1))
            if _done(log.steps, started, seconds, max_steps):
                break
    finally:
        student.eval()
        for parameter in student.parameters():
            parameter.requires_grad_(False)
    log.seconds = time.monotonic() - started
    return log


def _done(steps: int, started: float, seconds: float, max_steps: int | None) -> bool:
    return time.monotonic() - started >= seconds or (max_steps is not None and steps >= max_steps)


def _tuple(result: Any) -> tuple[Any, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _loss(outputs: tuple[Any, ...], targets: list[Any], weight: Any | None) -> Any:
    import torch

    total = torch.zeros((), device=outputs[0].device)
    for output, target in zip(outputs, targets, strict=True):
        output = output.float()
        if weight is not None and output.shape[:2] == weight.shape:  # [b, t, ...] states
            keep = weight.reshape(*weight.shape, *([1] * (output.ndim - 2)))
            output, target = output * keep, target * keep
        a, b = output.reshape(len(output), -1), target.reshape(len(target), -1)
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-8)
        scale = b.var().clamp(min=1e-8)
        total = total + (1 - cosine).mean() + ((a - b) ** 2).mean() / scale
    return total
