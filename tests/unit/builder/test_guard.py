"""The guard's statistics: one score per sample on what clients consume, the mean and
the tail over them, and no verdict below the minimum sample count."""

from __future__ import annotations

import numpy as np
import pytest

from lepton_builder.accuracy import Usage, consumed, judge, scores


def _states(seed: int = 0, batch: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((batch, 6, 4))
    mask = np.ones((batch, 6), dtype=np.int64)
    mask[:, 4:] = 0
    return states, mask


def test_mean_pooling_reads_only_the_unmasked_tokens_and_normalizes():
    states, mask = _states()
    pooled = consumed([states], mask, Usage("mean", normalize=True))[0]
    expected = states[:, :4].mean(axis=1)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(pooled, expected)
    cls = consumed([states], mask, Usage("cls"))[0]
    np.testing.assert_allclose(cls, states[:, 0])


def test_noise_on_padding_does_not_move_the_pooled_score():
    states, mask = _states()
    noisy = states.copy()
    noisy[:, 4:] += 100.0  # padded positions: clients never read them
    values = scores("cosine", [states], [noisy], mask, Usage("mean", normalize=True))
    np.testing.assert_allclose(values, 1.0)


def test_the_verdict_reads_the_mean_and_the_p5_not_the_single_worst_sample():
    states, mask = _states(batch=100)
    candidate = states.copy()
    candidate[0] = -candidate[0]  # one sample flipped: cosine -1, the rest exact
    verdict = judge("cosine", 0.97, [states], [candidate], mask=mask, tail_tolerance=0.95)
    assert verdict.accepted and verdict.samples == 100
    assert verdict.value == pytest.approx(0.98) and verdict.tail == pytest.approx(1.0)
    # Ten flipped: the mean still passes 0.7, the p5 does not, and the reason says so.
    candidate[1:10] = -candidate[1:10]
    verdict = judge("cosine", 0.7, [states], [candidate], mask=mask, tail_tolerance=0.95)
    assert not verdict.accepted and verdict.reason.startswith("cosine p5 -1.0000 below")
    verdict = judge("cosine", 0.9, [states], [candidate], mask=mask)
    assert not verdict.accepted and "mean 0.8000 below the guard 0.9" in verdict.reason


def test_too_few_samples_are_rejected_with_the_count():
    states, mask = _states(batch=8)
    verdict = judge("cosine", 0.5, [states], [states], mask=mask, min_samples=16)
    assert not verdict.accepted and verdict.samples == 8
    assert verdict.reason == "judged on 8 samples, fewer than the guard's minimum 16"


def test_top1_agreement_is_per_position_over_the_mask_for_token_outputs():
    logits = np.zeros((2, 3, 5))
    logits[:, :, 1] = 1.0
    candidate = logits.copy()
    candidate[0, 0, 2] = 5.0  # one real position disagrees
    candidate[1, 2, 3] = 5.0  # a padded position disagrees: not counted
    mask = np.array([[1, 1, 0], [1, 1, 0]])
    np.testing.assert_allclose(scores("top1-agreement", [logits], [candidate], mask), [0.5, 1.0])


def test_max_abs_error_bounds_the_mean_and_the_p95():
    base = [np.zeros((20, 3))]
    off = [np.zeros((20, 3))]
    off[0][0, 0] = 1.0
    assert judge("max-abs-error", 0.1, base, off).accepted  # mean 0.05, p95 0.05
    verdict = judge("max-abs-error", 0.1, base, off, tail_tolerance=0.01)
    assert not verdict.accepted and "p95" in verdict.reason


def test_nan_is_never_accepted():
    verdict = judge("cosine", 0.1, [np.ones((2, 2))], [np.full((2, 2), np.nan)])
    assert not verdict.accepted and "not finite" in verdict.reason


def _logits(labels: np.ndarray, wrong: int, seed: int = 0) -> np.ndarray:
    """Logits for ``labels`` whose argmax is right except on the first ``wrong``."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((len(labels), 10))
    logits[np.arange(len(labels)), labels] += 10
    logits[np.arange(wrong), (labels[:wrong] + 1) % 10] += 20
    return logits


def test_label_accuracy_is_bound_relative_to_the_fp32_baselines_own():
    """The task's accuracy on the user's labels: a variant may lose at most
    1 - tolerance of what fp32 itself gets right, not of a perfect score."""
    labels = np.arange(1000) % 10
    baseline = [_logits(labels, wrong=100)]  # fp32: 0.900 on these labels
    close = judge("label-accuracy", 0.99, baseline, [_logits(labels, 108, 1)], labels=labels)
    far = judge("label-accuracy", 0.99, baseline, [_logits(labels, 115, 2)], labels=labels)
    assert close.accepted and close.value == pytest.approx(0.892)  # >= 0.99 x 0.900
    assert not far.accepted and far.value == pytest.approx(0.885)
    assert far.reason == "label-accuracy mean 0.8850 below 0.99 x fp32's 0.9000"


def test_label_accuracy_per_token_skips_unlabelled_and_masked_positions():
    states, mask = _states(batch=20)  # 6 positions, the last two padding
    labels = np.argmax(states, axis=-1)
    labels[:, 0] = -100  # no label on the first token (Hugging Face's convention)
    wrong = states.copy()
    wrong[:, 4:] = -wrong[:, 4:]  # padding changed: masked, not judged
    wrong[:, 0] = -wrong[:, 0]  # unlabelled position changed: not judged
    verdict = judge("label-accuracy", 1.0, [states], [wrong], mask=mask, labels=labels)
    assert verdict.accepted and verdict.value == 1.0 and verdict.samples == 20


def test_label_accuracy_without_labels_or_with_the_wrong_shape_says_so():
    outputs = [np.eye(10)[:4]]
    with pytest.raises(ValueError, match="needs labels"):
        judge("label-accuracy", 0.99, outputs, outputs)
    with pytest.raises(ValueError, match="do not match"):
        judge("label-accuracy", 0.99, outputs, outputs, labels=np.zeros((4, 3), dtype=int))


def test_labels_are_read_from_the_calibration_data_or_refused_with_the_reason(tmp_path):
    from lepton_builder.calibration import load_labels
    from lepton_builder.untrusted import LoadError

    path = tmp_path / "calibration.npz"
    np.savez(path, pixels=np.zeros((4, 1, 8, 8)), labels=np.array([1, 2, 3, 4]))
    assert load_labels(path, "labels", 4).tolist() == [1, 2, 3, 4]
    with pytest.raises(LoadError, match="lacks the labels array 'classes'"):
        load_labels(path, "classes", 4)
    with pytest.raises(LoadError, match="one row per sample \\(5\\)"):
        load_labels(path, "labels", 5)
    np.savez(path, labels=np.array([0.5, 1.0, 2.0, 3.0]))
    with pytest.raises(LoadError, match="integer classes"):
        load_labels(path, "labels", 4)
