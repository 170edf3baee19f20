"""The activator's pure decisions: queue bounds, deadlines, the demand signal, waits."""

from __future__ import annotations

import pytest

from lepton_activator.holding import (
    Limits,
    admit,
    deadline,
    demand_due,
    quantile,
    timed_out,
    wait_report,
)

LIMITS = Limits(queue_limit=2, timeout_s=30.0, demand_refresh_s=5.0)


def test_the_queue_admits_up_to_its_limit_then_refuses_with_503() -> None:
    assert admit(0, LIMITS, "digits") is None
    assert admit(1, LIMITS, "digits") is None
    refusal = admit(2, LIMITS, "digits")
    assert refusal is not None and refusal.status == 503
    assert "queue full" in refusal.message and "digits" in refusal.message
    assert "limit 2" in refusal.message


def test_a_request_waits_the_shorter_of_the_activators_and_its_own_timeout() -> None:
    assert deadline(100.0, LIMITS) == 130.0
    assert deadline(100.0, LIMITS, 5.0) == 105.0
    assert deadline(100.0, LIMITS, 600.0) == 130.0
    assert deadline(100.0, LIMITS, 0.0) == 130.0  # nonsense is ignored


def test_an_outwaited_request_is_a_504_that_says_how_long() -> None:
    answer = timed_out("digits", 30.04)
    assert answer.status == 504 and "30.0 s" in answer.message


def test_demand_is_signalled_at_once_then_renewed_while_requests_wait() -> None:
    assert demand_due(None, 0.0, LIMITS)
    assert not demand_due(10.0, 14.9, LIMITS)
    assert demand_due(10.0, 15.0, LIMITS)


def test_wait_quantiles_are_waits_that_happened() -> None:
    waits = [float(i) for i in range(1, 21)]  # 1..20 s
    assert quantile(waits, 0.5) == 10.0
    assert quantile(waits, 0.95) == 19.0
    assert quantile([], 0.5) == 0.0
    report = wait_report(1000.0, waits, timed_out=1, refused=2)
    assert report.as_annotation() == {
        "at": 1000.0,
        "held": 20,
        "p50Ms": 10000.0,
        "p95Ms": 19000.0,
        "maxMs": 20000.0,
        "timedOut": 1,
        "refused": 2,
    }


@pytest.mark.parametrize("waits", [[], [0.25]])
def test_a_report_with_few_waits_is_still_whole(waits: list[float]) -> None:
    report = wait_report(0.0, waits, 0, 0)
    assert report.p50_ms == report.p95_ms == report.max_ms == (waits[0] * 1000 if waits else 0)
