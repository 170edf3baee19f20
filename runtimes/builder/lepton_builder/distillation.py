"""Students for distillation: smaller models made from the teacher, before training.

For a BERT-style encoder the student keeps every other layer (the first, third, ...),
as DistilBERT does; for a sequential CNN it is a narrower network, each prunable layer
at half its width, started from the teacher's most important channels rather than from
random weights, so the time budget goes into matching the teacher, not into learning
from scratch. ``lepton_builder.training`` then trains it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from lepton_builder import pruning
from lepton_builder.pruning import Arrays

NARROWER_BY = 0.5  # the CNN student's share of each layer's channels removed


@dataclass
class Student:
    module: Any
    description: str


def make_student(teacher: Any, calibration: Arrays, token_mask: Any | None) -> Student:
    """The untrained student, or ValueError for a model of a shape we do not know."""
    encoder = pruning.bert_encoder(teacher)
    if encoder is not None:
        return _every_other_layer(teacher)
    narrow = pruning.prune(teacher, calibration, NARROWER_BY, token_mask)
    return Student(narrow.module, f"narrower network: {narrow.summary()}")


def _every_other_layer(teacher: Any) -> Student:
    from torch import nn

    student = copy.deepcopy(teacher).eval()
    encoder = pruning.encoder_of(student)
    layers = list(encoder.layer)
    if len(layers) < 2:
        raise ValueError("a one-layer encoder has no layer to leave out")
    kept = layers[::2]
    encoder.layer = nn.ModuleList(kept)
    inner = getattr(student, "model", student)
    if hasattr(getattr(inner, "config", None), "num_hidden_layers"):
        inner.config.num_hidden_layers = len(kept)
    return Student(student, f"every other layer: {len(kept)} of {len(layers)} encoder layers")
