"""The Prometheus cool-off: one unreachable answer is told to every model for a while,
and nothing else opens it. Pure: a fake clock."""

from __future__ import annotations

import pytest

from lepton_operator.live.breaker import UnreachableBreaker
from lepton_operator.live.sample import MetricsUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_unreachable_prometheus_is_told_at_once_until_the_cool_off_ends() -> None:
    clock = Clock()
    breaker = UnreachableBreaker(30, clock)
    breaker.check()  # closed: ask
    breaker.record(MetricsUnavailable("PrometheusUnreachable", "http://p:9090: refused"))
    clock.now += 10
    with pytest.raises(MetricsUnavailable) as caught:
        breaker.check()
    assert caught.value.reason == "PrometheusUnreachable"
    assert caught.value.message == "http://p:9090: refused (asked again in 20 s)"
    clock.now += 20.5
    breaker.check()  # cooled off: the next pass asks Prometheus again


def test_an_answer_closes_it_and_query_errors_or_no_data_never_open_it() -> None:
    clock = Clock()
    breaker = UnreachableBreaker(30, clock)
    breaker.record(MetricsUnavailable("PrometheusUnreachable", "down"))
    breaker.record(None)
    breaker.check()
    breaker.record(MetricsUnavailable("QueryFailed", "HTTP 400"))
    breaker.record(MetricsUnavailable("NoData", "no series"))
    breaker.check()


def test_a_zero_cool_off_asks_every_time() -> None:
    breaker = UnreachableBreaker(0, Clock())
    breaker.record(MetricsUnavailable("PrometheusUnreachable", "down"))
    breaker.check()
