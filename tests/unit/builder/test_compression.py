"""Structured pruning, students and the training loop, on tiny models built here.

The properties that matter: what is removed is what contributes least on the
calibration inputs, the result is a smaller dense model with the same signature, and
training moves a student toward its teacher while a held-out quarter stays unseen.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lepton_builder import distillation, pruning, training  # noqa: E402


def _cnn() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 6),
        torch.nn.ReLU(),
        torch.nn.Linear(6, 3),
    ).eval()


def _bert() -> Any:
    from transformers import BertConfig, BertModel

    from lepton_builder.loading import _HuggingFaceSignature

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=20,
        max_position_embeddings=16,
    )
    model = BertModel(config).eval()
    return _HuggingFaceSignature.wrap(model, ["input_ids", "attention_mask"], ["last_hidden_state"])


def _tokens(count: int = 8, length: int = 10) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, size=(count, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[:, 7:] = 0  # padded tail
    return [ids, mask]


def _run(module: Any, arrays: list[np.ndarray]) -> np.ndarray:
    result = pruning.run_once(module, arrays)
    return (result[0] if isinstance(result, tuple) else result).numpy()


def test_a_ratio_removes_that_share_of_each_layer_and_never_all():
    assert [pruning.drop_count(12, r) for r in (0.1, 0.25, 0.4)] == [1, 3, 5]
    assert pruning.drop_count(1, 0.4) == 0
    assert pruning.drop_count(2, 0.9) == 1
    assert pruning.keep_indices(np.array([3.0, 0.1, 2.0, 0.2]), 0.5) == [0, 2]


def test_dead_channels_go_first_and_the_outputs_stay_exact():
    model = _cnn()
    with torch.no_grad():
        model[0].weight[5].zero_()
        model[0].bias[5] = -1.0  # never positive after ReLU: contributes nothing
        model[3].weight[2].zero_()
        model[3].bias[2] = -1.0  # and a dead hidden unit, the one of six that goes
    x = np.random.default_rng(1).standard_normal((16, 1, 4, 4)).astype(np.float32)
    pruned = pruning.prune(model, [x], 0.125, None)  # one of eight channels
    conv = pruned.module[0]
    assert conv.out_channels == 7 and conv.weight.shape[0] == 7
    assert pruned.module[3].in_features == 7 * 16
    assert pruned.removed == {"conv channels": 1, "hidden units": 1}
    np.testing.assert_allclose(_run(pruned.module, [x]), _run(model, [x]), atol=1e-5)
    assert model[0].out_channels == 8, "the source model is left as it was"


def test_a_scripted_sequential_is_rebuilt_and_pruned():
    model = _cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
    x = np.random.default_rng(2).standard_normal((4, 1, 4, 4)).astype(np.float32)
    pruned = pruning.prune(scripted, [x], 0.25, None)
    assert pruned.summary() == "removed 2 of 8 conv channels, 2 of 6 hidden units"
    assert _run(pruned.module, [x]).shape == (4, 3)


def test_a_model_of_another_shape_is_refused_with_its_name():
    class Odd(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x

    with pytest.raises(ValueError, match="sequential CNNs; this model is Odd"):
        pruning.prune(Odd(), [np.zeros((1, 2), np.float32)], 0.25, None)
    with pytest.raises(ValueError, match="between 0 and 1"):
        pruning.prune(_cnn(), [np.zeros((1, 1, 4, 4), np.float32)], 1.0, None)


def test_a_silent_head_goes_first_and_the_encoder_keeps_its_signature():
    model = _bert()
    layer = model.model.encoder.layer[0]
    with torch.no_grad():
        layer.attention.output.dense.weight[:, 4:8].zero_()  # head 1 writes nothing
    tokens = _tokens()
    pruned = pruning.prune(model, tokens, 0.25, tokens[1])
    kept = pruned.module.model.encoder.layer[0].attention
    assert kept.self.query.out_features == 12  # 3 heads of 4
    assert kept.output.dense.in_features == 12
    assert pruned.removed == {"heads": 2, "ffn channels": 10}
    # The silent head carried nothing: layer 0 with it removed answers as before.
    reference = _run(model, tokens)
    assert _run(pruned.module, tokens).shape == reference.shape


def test_removing_only_a_silent_head_changes_nothing():
    model = _bert()
    for layer in model.model.encoder.layer:
        with torch.no_grad():
            layer.attention.output.dense.weight[:, 4:8].zero_()
    tokens = _tokens()
    original = pruning.keep_indices

    def heads_only(importance: Any, ratio: float) -> list[int]:
        return original(importance, ratio) if len(importance) == 4 else list(range(len(importance)))

    pruning.keep_indices = heads_only  # type: ignore[assignment]
    try:
        pruned = pruning.prune(model, tokens, 0.25, tokens[1])
    finally:
        pruning.keep_indices = original  # type: ignore[assignment]
    np.testing.assert_allclose(_run(pruned.module, tokens), _run(model, tokens), atol=1e-5)


def test_the_student_keeps_every_other_encoder_layer():
    student = distillation.make_student(_bert(), _tokens(), None)
    assert len(student.module.model.encoder.layer) == 1
    assert student.description == "every other layer: 1 of 2 encoder layers"
    narrow = distillation.make_student(_cnn(), [np.zeros((2, 1, 4, 4), np.float32)], None)
    assert narrow.module[0].out_channels == 4


def test_a_quarter_is_held_out_and_tiny_sets_are_not_split():
    fitted, held = training.split(8)
    assert held.tolist() == [3, 7] and sorted([*fitted, *held]) == list(range(8))
    fitted, held = training.split(3)
    assert held.size == 0 and fitted.tolist() == [0, 1, 2]


def test_padding_is_trimmed_to_the_longest_sentence():
    ids, mask = _tokens()
    trimmed = training.trim_padding([ids, mask], 1)
    assert trimmed[0].shape == (8, 7) and trimmed[1].all()


def test_training_moves_the_student_toward_the_teacher():
    teacher = _cnn()
    x = np.random.default_rng(3).standard_normal((32, 1, 4, 4)).astype(np.float32)
    student = pruning.prune(teacher, [x], 0.5, None).module
    before = np.abs(_run(student, [x]) - _run(teacher, [x])).mean()
    log = training.fit(student, teacher, [x], 600, learning_rate=1e-2, max_steps=400)
    after = np.abs(_run(student, [x]) - _run(teacher, [x])).mean()
    assert log.steps == 400 and log.losses[-1] < log.losses[0]
    assert after < before / 2
    assert not student.training and not any(p.requires_grad for p in student.parameters())
    assert log.as_report()["trainedOn"] == 32
