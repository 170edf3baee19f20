"""Prometheus durations, as the operator's configuration takes them."""

from __future__ import annotations

import pytest

from lepton_operator.timestamps import duration_seconds, is_positive_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1m", 60), ("90s", 90), ("1m30s", 90), ("2h", 7200), ("1d", 86400), ("250ms", 0.25)],
)
def test_a_duration_reads_as_its_seconds(text: str, seconds: float) -> None:
    assert is_positive_duration(text) and duration_seconds(text) == seconds


def test_zero_is_no_positive_duration() -> None:
    assert not is_positive_duration("0s") and duration_seconds("0s") == 0
