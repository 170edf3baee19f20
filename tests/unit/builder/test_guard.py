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
