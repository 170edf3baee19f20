"""The live PromQL selects exactly one model's Triton series, whatever its name holds,
and uses the configured window; the settings that feed it are validated at load."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import pytest
from pydantic import ValidationError

from lepton_operator.config import Prometheus
from lepton_operator.live.queries import (
    ModelQueries,
    model_queries,
    model_selector,
    promql_string,
)


def _matchers(selector: str) -> dict[str, tuple[str, str]]:
    """Parse ``name<op>"value"`` matchers back into (operator, unescaped value)."""
    found = re.findall(r'(\w+)(=~|=)("(?:[^"\\]|\\.)*")', selector)
    return {name: (op, json.loads(quoted)) for name, op, quoted in found}


def _selects(model: str, triton_model: str) -> bool:
    op, value = _matchers(model_selector("ns", model))["model"]
    assert op == "="
    return value == triton_model


@pytest.mark.parametrize(
    ("triton_model", "selected"),
    [
        ("minilm", True),  # every variant serves under the LeptonModel's name
        ("minilm-v2", False),  # another LeptonModel sharing a prefix
        ("xminilm", False),
        ("minilm__onnx", False),  # the old per-variant names are not ours any more
    ],
)
def test_the_model_matcher_takes_only_this_model(triton_model, selected):
    assert _selects("minilm", triton_model) is selected


def test_a_name_with_quotes_or_backslashes_is_matched_as_written():
    assert _selects('a"b', 'a"b') and _selects("a\\b", "a\\b")


def test_string_literals_survive_quotes_and_backslashes():
    for value in ["plain", 'with "quotes"', "back\\slash", "new\nline"]:
        assert json.loads(promql_string(value)) == value
    matchers = _matchers(model_selector('we"ird', "m"))
    assert matchers["namespace"] == ("=", 'we"ird')


def test_every_rate_uses_the_configured_window_and_only_it():
    queries = model_queries("ns", "minilm", "90s")
    ranges = {
        f.name: re.findall(r"\[([^\]]+)\]", getattr(queries, f.name)) for f in fields(queries)
    }
    assert ranges["request_rate_rps"] == ["90s"]
    assert ranges["mean_ms"] == ["90s", "90s"]
    assert ranges["queue_mean_ms"] == ["90s", "90s"]
    assert all(window == "90s" for found in ranges.values() for window in found)


def test_summaries_are_never_averaged_across_pods():
    queries = model_queries("ns", "minilm")
    for name, quantile in (("p95_ms", "0.95"), ("p99_ms", "0.99"), ("queue_p95_ms", "0.95")):
        query = getattr(queries, name)
        assert query.startswith("max(") and f'quantile="{quantile}"' in query, name
        assert query.endswith("/ 1000"), name  # Triton's microseconds, reported in ms


def test_every_query_is_scoped_to_the_namespace():
    queries = model_queries("team-a", "minilm")
    for field in fields(ModelQueries):
        query = getattr(queries, field.name)
        assert query.count('namespace="team-a"') >= 1, field.name
        assert 'model="minilm"' in query or "DCGM" in query, field.name


@pytest.mark.parametrize("window", ["0s", "1x", "", "30s1m", "5", "-1m"])
def test_a_window_prometheus_would_refuse_is_refused_here(window):
    with pytest.raises(ValueError, match="duration"):
        model_queries("ns", "m", window)
    with pytest.raises(ValidationError, match="rateWindow"):
        Prometheus.model_validate({"url": "http://p:9090", "rateWindow": window})


def test_the_prometheus_settings_stay_backwards_compatible():
    settings = Prometheus.model_validate({"url": "http://p:9090"})
    assert (settings.rate_window, settings.timeout_seconds) == ("1m", 5)
    custom = Prometheus.model_validate(
        {"url": "http://p:9090", "rateWindow": "1m30s", "timeoutSeconds": 2}
    )
    assert (custom.rate_window, custom.timeout_seconds) == ("1m30s", 2)
    with pytest.raises(ValidationError, match="timeoutSeconds"):
        Prometheus.model_validate({"url": "http://p:9090", "timeoutSeconds": 0})
    with pytest.raises(ValidationError, match="url"):
        Prometheus.model_validate({"rateWindow": "1m"})
