"""When a model asks for another pass without a change, and which figures wake it."""

from __future__ import annotations

from typing import Any

from lepton_operator.api.status import LeptonModelStatus
from lepton_operator.live.sample import LiveSample
from lepton_operator.live.wake import Seen, moved, stale, to_wake
from lepton_operator.revisit import figures_wanted_at, revisit_after
from lepton_operator.timestamps import format_time


def _sample(rate: float = 10.0, p95: float | None = 20.0, failures: float = 0.0) -> LiveSample:
    return LiveSample(
        timestamp=1.0,
        request_rate_rps=rate,
        failure_rate_rps=failures,
        p95_ms=p95,
        p99_ms=None,
        mean_ms=None,
        queue_mean_ms=None,
        queue_p95_ms=None,
        gpu_utilization=None,
    )


def _conditions(**reasons: str) -> list[dict[str, str]]:
    return [
        {"type": kind, "status": "False", "reason": why, "lastTransitionTime": "T"}
        for kind, why in reasons.items()
    ]


def _status(**fields: Any) -> LeptonModelStatus:
    return LeptonModelStatus.model_validate(fields)


def _decision(variant: str, pool: str, replicas: int) -> dict[str, Any]:
    return {
        "variant": variant,
        "pool": pool,
        "replicas": replicas,
        "hourlyCostUSD": 1.0,
        "reason": "r",
        "time": "T",
    }


def test_a_settled_model_asks_for_nothing() -> None:
    for phase in ("Ready", "Failed", "Advisory", "Degraded"):
        assert revisit_after(_status(phase=phase), 1000.0) is None


def test_work_under_way_and_waits_no_watch_reports_ask_for_a_time() -> None:
    assert revisit_after(_status(phase="Deploying"), 0.0) == 5.0
    assert revisit_after(_status(phase="Building"), 0.0) == 30.0
    serving_early = _status(phase="Building", conditions=_conditions(Ready="RollingOut"))
    assert revisit_after(serving_early, 0.0) == 5.0
    missing = _status(phase="Pending", conditions=_conditions(Built="SourceClaimMissing"))
    assert revisit_after(missing, 0.0) == 15.0
    refused = _status(phase="Degraded", conditions=_conditions(Deployed="RejectedByAPIServer"))
    assert revisit_after(refused, 0.0) == 30.0


def test_a_pool_back_off_ending_wakes_the_model_just_after() -> None:
    now = 1_800_000_000.0
    status = _status(
        phase="Ready",
        poolBackoff=[
            {"pool": "gpu", "failures": 1, "retryAt": format_time(now + 120)},
            {"pool": "l4", "failures": 2, "retryAt": format_time(now + 60)},
        ],
    )
    assert revisit_after(status, now) == 60.5
    assert revisit_after(status, now + 600) == 0.5  # overdue: at once


def test_a_plan_wants_figures_while_its_latest_recommendation_differs_or_from_its_review() -> None:
    decision = _decision("int8", "cpu", 3)
    held = {"time": 1.0, "variant": "int8", "pool": "cpu", "replicas": 1}
    same = {**held, "replicas": 3}
    wanted = figures_wanted_at(_status(decision=decision, planner={"history": [same, held]}))
    assert wanted == 0
    wanted = figures_wanted_at(_status(decision=decision, planner={"history": [held, same]}))
    assert wanted is None
    assert figures_wanted_at(_status(decision=decision)) is None
    assert figures_wanted_at(_status(planner={"history": [held]})) is None
    # Settled, but its memory ages out later (a burst, the daily pattern's next step).
    review = {"history": [held, same], "reviewAt": 1_800_000_000.5}
    assert figures_wanted_at(_status(decision=decision, planner=review)) == 1_800_000_000.5


def test_moves_within_ten_percent_are_noise() -> None:
    before = Seen(_sample(10.0, 20.0))
    assert not moved(before, Seen(_sample(10.5, 21.0)))  # within 10%
    assert moved(before, Seen(_sample(12.0, 20.0)))  # the load moved
    assert moved(before, Seen(_sample(10.0, 30.0)))  # the latency moved
    assert moved(before, Seen(_sample(10.0, 20.0, failures=1.0)))  # failures appeared
    assert moved(before, Seen(_sample(10.0, None)))  # the p95 went
    assert not moved(Seen(_sample(0.05)), Seen(_sample(0.1)))  # noise at a trickle


def test_first_figures_and_prometheus_failing_or_returning_wake_the_model() -> None:
    assert moved(None, Seen(None, "NoData"))
    assert moved(Seen(_sample()), Seen(None, "PrometheusUnreachable"))
    assert moved(Seen(None, "PrometheusUnreachable"), Seen(_sample()))
    assert not moved(Seen(None, "NoData"), Seen(None, "NoData"))


def test_every_sample_of_a_model_with_traffic_wakes_it_and_idle_ones_only_on_news() -> None:
    idle = _sample(rate=0.0, p95=None)
    keys = {("ns", "busy"), ("ns", "idle"), ("ns", "stopped"), ("ns", "gone")}
    last = {
        ("ns", "busy"): Seen(_sample()),
        ("ns", "idle"): Seen(idle),
        ("ns", "stopped"): Seen(idle),
        ("ns", "gone"): Seen(None, "NoData"),
    }
    now = {
        ("ns", "busy"): Seen(_sample()),  # the same figures: the planner still learns
        ("ns", "idle"): Seen(idle),
        ("ns", "stopped"): Seen(idle),
        ("ns", "gone"): Seen(None, "NoData"),
    }
    assert to_wake(keys, last, now, waiting={("ns", "stopped")}) == {
        ("ns", "busy"),
        ("ns", "stopped"),  # its scale-down window is running
    }


def test_while_prometheus_fails_a_busy_model_says_so_again_every_half_minute() -> None:
    down = "PrometheusUnreachable"
    assert not stale(Seen(None, down, 0.0, busy=True), Seen(None, down, 15.0, busy=True))
    assert stale(Seen(None, down, 0.0, busy=True), Seen(None, down, 30.0, busy=True))
    # An idle model heard of the failure once (its reason changed), and that is all.
    assert not stale(Seen(None, down, 0.0), Seen(None, down, 3600.0))
