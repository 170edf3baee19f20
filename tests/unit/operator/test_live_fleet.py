"""The fleet queries read every model's figures in nine queries, one series per
namespace and model, and their answers become one sample per model with a request rate.

Pure: query strings and hand-written Prometheus vectors. The same figures per model as
the per-model queries, against a real Prometheus, are in
tests/integration/test_live_prometheus.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import pytest

from lepton_operator.config import Prometheus
from lepton_operator.live.fleet import FIGURES, by_model, fleet_samples
from lepton_operator.live.prometheus import PrometheusMetrics
from lepton_operator.live.queries import (
    ModelQueries,
    fleet_queries,
    model_queries,
    namespaces_selector,
)
from lepton_operator.live.sample import LiveSample, MetricsUnavailable

METRIC = re.compile(r"\b((?:nv|DCGM)_\w+)(\{[^}]*\})?")


def _selectors(query: str) -> list[tuple[str, str]]:
    """Every metric in ``query`` with its matchers (empty when it has none)."""
    return [(name, matchers or "") for name, matchers in METRIC.findall(query)]


def _regex(selector: str) -> str:
    (quoted,) = re.findall(r'namespace=~("(?:[^"\\]|\\.)*")', selector)
    value = json.loads(quoted)
    assert isinstance(value, str)
    return value


def test_every_figure_is_one_series_per_namespace_and_model():
    queries = fleet_queries()
    for name in FIGURES:
        query = getattr(queries, name)
        aggregations = re.findall(r"\b(sum|max|avg|count|group) by \(([^)]*)\)", query)
        outer = [by for op, by in aggregations if by == "namespace, model"]
        assert outer, name
        assert all(
            by in ("namespace, model", "namespace, pod", "namespace, pod, model")
            for _, by in aggregations
        ), name
        assert "model=" not in query and "namespace=" not in query, name  # every model


def test_the_fleet_queries_are_the_per_model_ones_aggregated_by_model():
    queries = fleet_queries("90s")
    assert queries.request_rate_rps == (
        "sum by (namespace, model) (rate(nv_inference_request_success[90s]))"
    )
    assert queries.p95_ms == (
        'max by (namespace, model) (nv_inference_request_summary_us{quantile="0.95"}) / 1000'
    )
    assert queries.mean_ms == (
        "sum by (namespace, model) (rate(nv_inference_request_duration_us[90s]))"
        f" / {queries.request_rate_rps} / 1000"
    )
    per_model = model_queries("ns", "m", "90s")
    for name in FIGURES:  # the same metrics, windows and quantiles as one model's
        fleet, one = getattr(queries, name), getattr(per_model, name)
        metrics = [metric for metric, _ in _selectors(fleet)]
        if name == "gpu_utilization":  # each gauge twice: summed and counted per pod
            assert set(metrics) == {metric for metric, _ in _selectors(one)}, name
        else:
            assert metrics == [metric for metric, _ in _selectors(one)], name
        assert re.findall(r"\[[^\]]+\]", fleet) == re.findall(r"\[[^\]]+\]", one), name
        assert re.findall(r"quantile=\S+", fleet) == re.findall(r"quantile=\S+", one), name


def test_gpu_utilization_averages_the_gpus_of_the_pods_serving_each_model():
    query = fleet_queries().gpu_utilization
    dcgm, triton = query.split(" / 100 or ")
    pods = "group by (namespace, pod, model) (nv_inference_request_success)"
    for side, gauge in ((dcgm, "DCGM_FI_DEV_GPU_UTIL"), (triton, "nv_gpu_utilization")):
        # The pod-model pairs are the "many" side: a pod may serve several models.
        for per_pod in ("sum", "count"):
            assert (
                f"sum by (namespace, model) ({pods} * on(namespace, pod) group_left() "
                f"{per_pod} by (namespace, pod) ({gauge}))"
            ) in side
    assert "group_left(model)" not in query


def test_a_namespace_filter_reaches_every_selector():
    queries = fleet_queries("1m", ["team-b", "team-a", "team-a"])
    for name in FIGURES:
        found = _selectors(getattr(queries, name))
        assert found, name
        for metric, matchers in found:
            assert _regex(matchers) == "team-a|team-b", (name, metric)


def test_namespace_values_are_regex_escaped_and_quoted():
    selector = namespaces_selector(["a.b", 'we"ird', "x|y", "back\\slash"])
    alternatives = _regex(selector).split("|")
    # Only the unescaped bar separates alternatives; each value matches only itself.
    rebuilt = re.split(r"(?<!\\)\|", _regex(selector))
    assert len(rebuilt) == 4 and len(alternatives) == 5
    for value in ["a.b", 'we"ird', "x|y", "back\\slash"]:
        assert any(re.fullmatch(pattern, value) for pattern in rebuilt), value
    assert not any(re.fullmatch(pattern, "axb") for pattern in rebuilt)
    assert namespaces_selector([]) == ""
    with pytest.raises(ValueError, match="non-empty"):
        fleet_queries("1m", ["team-a", ""])
    with pytest.raises(ValueError, match="duration"):
        fleet_queries("0s")


def _vector(*series: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [
        {"metric": {"namespace": ns, "model": model}, "value": [1000.0, value]}
        for ns, model, value in series
    ]


def test_two_models_each_get_their_own_figures_and_missing_ones_are_none():
    results = {
        "request_rate_rps": _vector(("team-a", "digits", "30"), ("team-b", "minilm", "0")),
        "failure_rate_rps": _vector(("team-a", "digits", "1"), ("team-b", "minilm", "0")),
        "p95_ms": _vector(("team-a", "digits", "12.5"), ("team-b", "minilm", "NaN")),
        "p99_ms": _vector(("team-a", "digits", "20"), ("team-b", "minilm", "NaN")),
        "mean_ms": _vector(("team-a", "digits", "6"), ("team-b", "minilm", "NaN")),
        "queue_mean_ms": _vector(("team-a", "digits", "1.3")),
        "queue_p95_ms": _vector(("team-a", "digits", "+Inf")),
        "gpu_utilization": _vector(("team-a", "digits", "0.8")),
        "cache_hit_rps": [],
    }
    samples = fleet_samples(results, 1000.0)
    assert samples == {
        ("team-a", "digits"): LiveSample(
            timestamp=1000.0,
            request_rate_rps=30.0,
            failure_rate_rps=1.0,
            p95_ms=12.5,
            p99_ms=20.0,
            mean_ms=6.0,
            queue_mean_ms=1.3,
            queue_p95_ms=None,
            gpu_utilization=0.8,
            cache_hit_rps=None,
        ),
        ("team-b", "minilm"): LiveSample(1000.0, 0.0, 0.0, None, None, None, None, None, None),
    }


def test_only_models_with_a_request_rate_have_a_sample():
    results = {
        "request_rate_rps": _vector(("team-a", "digits", "5"), ("team-a", "broken", "NaN")),
        "p95_ms": _vector(("team-a", "digits", "3"), ("team-a", "no-rate", "4")),
        # A series without both labels names no model: left out, not an error.
        "failure_rate_rps": [{"metric": {"model": "digits"}, "value": [1000.0, "9"]}],
    }
    samples = fleet_samples(results, 1000.0)
    assert list(samples) == [("team-a", "digits")]
    assert samples["team-a", "digits"].p95_ms == 3.0
    assert samples["team-a", "digits"].failure_rate_rps is None
    assert fleet_samples({"request_rate_rps": []}, 1000.0) == {}
    assert fleet_samples({}, 1000.0) == {}


@pytest.mark.parametrize(
    "result",
    [
        [{"metric": {"namespace": "a", "model": "m"}}],
        [{"metric": {"namespace": "a", "model": "m"}, "value": [1.0, "fast"]}],
        [{"value": [1.0, "1"]}],
        ["not a series"],
        _vector(("a", "m", "1"), ("a", "m", "2")),  # by (namespace, model) gives one
    ],
)
def test_an_answer_that_is_not_one_vector_by_model_is_a_failed_query(result):
    with pytest.raises(MetricsUnavailable) as caught:
        by_model("p95_ms", result)
    assert caught.value.reason == "QueryFailed" and "p95_ms" in caught.value.message


def test_an_unknown_figure_is_a_programming_error():
    with pytest.raises(ValueError, match="not a live figure"):
        fleet_samples({"p50_ms": []}, 1.0)


def test_nan_reads_as_none():
    assert by_model("x", _vector(("a", "m", "NaN"), ("a", "n", "-Inf"))) == {
        ("a", "m"): None,
        ("a", "n"): None,
    }
    assert by_model("x", _vector(("a", "m", "1e-3"))) == {("a", "m"): 1e-3}


class _Asked(PrometheusMetrics):
    """The adapter with Prometheus replaced by canned vectors per figure."""

    def __init__(
        self, answers: dict[str, list[dict[str, Any]]], selected: Sequence[str] = ("team-a",)
    ) -> None:
        super().__init__(Prometheus(url="http://prometheus:9090", rateWindow="30s"))
        self.by_query = {
            getattr(fleet_queries("30s", selected), name): answer
            for name, answer in answers.items()
        }
        self.asked: list[str] = []

    def _ask(self, promql: str, timestamp: float) -> list[dict[str, Any]]:
        self.asked.append(promql)
        return self.by_query.get(promql, [])


def test_sample_all_asks_nine_queries_at_one_instant_in_the_given_namespaces():
    rates = _vector(*(("team-a", f"m{i}", str(i)) for i in range(25)))
    metrics = _Asked({"request_rate_rps": rates, "p95_ms": _vector(("team-a", "m3", "7"))})
    samples = metrics.sample_all(at=1234.5, namespaces=["team-a"])
    assert len(metrics.asked) == len(fields(ModelQueries)) == 9
    assert metrics.asked[0] == fleet_queries("30s", ["team-a"]).request_rate_rps
    assert len(samples) == 25 and {s.timestamp for s in samples.values()} == {1234.5}
    assert samples["team-a", "m3"].p95_ms == 7.0 and samples["team-a", "m4"].p95_ms is None


def test_sample_all_stops_after_an_empty_request_rate():
    metrics = _Asked({})
    assert metrics.sample_all(namespaces=["team-a"]) == {}
    assert len(metrics.asked) == 1
    with pytest.raises(MetricsUnavailable) as caught:
        metrics.sample_all(namespaces=[""])
    assert caught.value.reason == "QueryFailed"


def test_sample_all_with_patterns_asks_for_every_namespace_and_keeps_those_kopf_watches():
    rates = _vector(("team-a", "m", "1"), ("team-b", "m", "2"), ("other", "m", "3"))
    metrics = _Asked({"request_rate_rps": rates}, selected=())
    samples = metrics.sample_all(namespaces=["team-*,!team-b"])
    assert metrics.asked[0] == fleet_queries("30s").request_rate_rps  # no namespace matcher
    assert list(samples) == [("team-a", "m")]
    assert list(metrics.sample_all(namespaces=["!team-*"])) == [("other", "m")]
    assert len(metrics.sample_all(namespaces=[])) == 3
