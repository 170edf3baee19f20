"""The demo's check of the capacity model against real Triton (lepton_e2e.capacity_check):
which samples count as a steady load, and the error's sign."""

from __future__ import annotations

import pytest

from lepton_e2e.capacity_check import Check, Sample, steady_checks
from lepton_operator.planning.capacity import Capacity

REPLICA = Capacity("onnx", "cpu-standard", base_p95_ms=19.0, max_rps=57.4)


def test_only_steady_samples_on_replicas_already_ready_are_checked() -> None:
    samples = [
        Sample(20.0, 8.0, 1, 34.0),  # the rate window still filling
        Sample(20.0, 20.0, 1, 33.0),
        Sample(20.0, 19.5, 1, 35.0),
        Sample(40.0, 32.0, 1, 137.0),  # rising
        Sample(40.0, 40.0, 2, 90.0),  # the second replica just Ready
        Sample(40.0, 40.4, 2, 36.0),
        Sample(0.0, 3.0, 2, None),  # quiet
    ]
    checks = steady_checks(samples, REPLICA)
    assert [(c.rate_rps, c.replicas, c.served_ms) for c in checks] == [
        (20.0, 1, 34.0),
        (40.0, 2, 36.0),
    ]
    assert checks[0].predicted_ms == pytest.approx(REPLICA.p95_ms(20.0, 1))


def test_the_error_is_positive_where_the_model_is_pessimistic() -> None:
    assert Check(20.0, 1, 46.0, 34.0).error == pytest.approx(12 / 34)
    assert Check(6.0, 1, 14.9, 29.6).error < 0
    assert "error +35%" in Check(20.0, 1, 46.0, 34.0).line(REPLICA)
