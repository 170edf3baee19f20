"""The timer's cadence: work under way is followed every tick, settled models seldom."""

from __future__ import annotations

import pytest

from lepton_operator.cadence import pass_due


@pytest.mark.parametrize("phase", ["Pending", "Building", "Deploying", None])
def test_a_model_under_way_is_reconciled_on_every_tick(phase: str | None) -> None:
    status = {"observedGeneration": 3, "phase": phase}
    assert pass_due(status, 3, seconds_since_last_pass=5, settled_seconds=30)


@pytest.mark.parametrize("phase", ["Ready", "Degraded", "Failed"])
def test_a_settled_model_waits_for_the_settled_interval(phase: str) -> None:
    status = {"observedGeneration": 3, "phase": phase}
    assert not pass_due(status, 3, seconds_since_last_pass=5, settled_seconds=30)
    assert not pass_due(status, 3, seconds_since_last_pass=29.9, settled_seconds=30)
    assert pass_due(status, 3, seconds_since_last_pass=30, settled_seconds=30)


def test_a_new_generation_or_a_fresh_process_is_never_made_to_wait() -> None:
    ready = {"observedGeneration": 3, "phase": "Ready"}
    assert pass_due(ready, 4, seconds_since_last_pass=1, settled_seconds=30)
    assert pass_due(ready, 3, seconds_since_last_pass=None, settled_seconds=30)


def test_right_after_a_pass_the_timer_waits_even_for_work_under_way() -> None:
    # A create or spec change was just handled: the timer's body may predate its status.
    building = {"observedGeneration": 4, "phase": "Building"}
    assert not pass_due(building, 5, 1.0, settled_seconds=30, min_gap_seconds=2.5)
    assert pass_due(building, 5, 2.5, settled_seconds=30, min_gap_seconds=2.5)


def test_a_pool_back_off_ending_wakes_a_settled_model() -> None:
    """A pool left out may be planned again once its back-off ends: the settled
    cadence would add up to its whole period to the return."""
    status = {
        "phase": "Ready",
        "observedGeneration": 1,
        "poolBackoff": [{"pool": "gpu", "failures": 1, "retryAt": "2026-11-24T00:01:00Z"}],
    }
    retry = 1795478460.0  # 2026-11-24T00:01:00Z
    assert pass_due(status, 1, 5.0, 30.0, 2.5, now_s=retry + 1)
    assert not pass_due(status, 1, 5.0, 30.0, 2.5, now_s=retry - 1)
    assert not pass_due(status, 1, 5.0, 30.0, 2.5, now_s=retry + 10)  # already passed since
