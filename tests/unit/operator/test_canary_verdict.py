"""The canary's judgement: the builder's encoding round-trips, and only a real
difference in the served answer fails it."""

from __future__ import annotations

import numpy as np
import pytest

from lepton_builder.canary import MAX_INPUT_BYTES, OUTPUT_VALUES, encode_tensor, reference
from lepton_operator.canary.verdict import TOLERANCE, Expected, compare, decode, expected
from lepton_operator.report import CanaryTensor


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "int32", "bool"])
def test_the_builders_encoding_decodes_to_the_same_array(dtype: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    decoded = decode(CanaryTensor.model_validate(encode_tensor("t", array)))
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_large_outputs_keep_their_shape_and_first_values() -> None:
    answer = np.random.default_rng(0).standard_normal((1, 128, 384)).astype(np.float32)
    (entry,) = reference(["ids"], [np.zeros((1, 128), np.int64)], ["h"], [answer])["outputs"]
    want = expected(CanaryTensor.model_validate(entry))
    assert want.shape == (1, 128, 384) and want.values.size == OUTPUT_VALUES
    assert compare({"h": want}, {"h": answer}).passed
    wrong = answer.copy()
    wrong[0, :4] *= -1  # a wrong artifact differs in the first tokens too
    assert not compare({"h": want}, {"h": wrong}).passed
    assert not compare({"h": want}, {"h": answer[:, :64]}).passed


def test_a_reference_whose_input_is_too_large_is_left_out() -> None:
    big = np.zeros(MAX_INPUT_BYTES // 4 + 1, dtype=np.float32)
    assert reference(["x"], [big], ["y"], [np.zeros(1, np.float32)]) is None
    assert reference(["x"], [big[:10]], ["y"], [np.zeros(1, np.float32)]) is not None


def _exact(array: np.ndarray) -> Expected:
    return Expected(array.shape, array.reshape(-1))


def test_rounding_passes_and_a_different_answer_fails() -> None:
    want = np.linspace(-1, 1, 384, dtype=np.float32).reshape(1, 384)
    assert compare({"e": _exact(want)}, {"e": want + 1e-5}).passed
    noisy = want + TOLERANCE * 2 * np.abs(want).max()
    verdict = compare({"e": _exact(want)}, {"e": noisy})
    assert not verdict.passed and "output e differs" in verdict.message


def test_a_flipped_label_fails() -> None:
    assert not compare({"label": _exact(np.array([3, 7]))}, {"label": np.array([3, 1])}).passed


def test_a_missing_output_or_a_wrong_shape_fails_with_its_name() -> None:
    want = {"logits": _exact(np.zeros((1, 10), np.float32))}
    assert "missing" in compare(want, {}).message
    verdict = compare(want, {"logits": np.zeros((1, 9), np.float32)})
    assert not verdict.passed and "[1, 9]" in verdict.message
