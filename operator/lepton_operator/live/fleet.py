"""Every model's live figures from the answers to the fleet queries: data only, no I/O.

``queries.fleet_queries`` asks each figure for every model at once, one series per
``namespace`` and ``model``; this module turns those nine instant vectors into one
``LiveSample`` per model, so the adapter stays a loop over HTTP requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from lepton_operator.live.queries import ModelQueries
from lepton_operator.live.sample import LiveSample, MetricsUnavailable

ModelKey = tuple[str, str]  # (namespace, model)
FIGURES = tuple(field.name for field in fields(ModelQueries))


def by_model(figure: str, result: Sequence[Mapping[str, Any]]) -> dict[ModelKey, float | None]:
    """One instant vector's values by (namespace, model); NaN and infinities read as None.

    Series without both labels name no LeptonModel and are left out. Raises
    ``MetricsUnavailable`` ("QueryFailed") for an answer that is not such a vector.
    """
    values: dict[ModelKey, float | None] = {}
    for series in result:
        try:
            labels = series["metric"]
            key = (str(labels.get("namespace", "")), str(labels.get("model", "")))
            value = float(series["value"][1])
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:
            raise MetricsUnavailable(
                "QueryFailed", f"unexpected answer for {figure}: {series!r:.200}"
            ) from error
        if not all(key):
            continue
        if key in values:
            raise MetricsUnavailable(
                "QueryFailed", f"two series for {key[0]}/{key[1]} in the answer for {figure}"
            )
        values[key] = value if math.isfinite(value) else None
    return values


def fleet_samples(
    results: Mapping[str, Sequence[Mapping[str, Any]]], timestamp: float
) -> dict[ModelKey, LiveSample]:
    """One sample per model with a request rate, from each figure's vector (keyed by
    ``ModelQueries``' field names; a missing figure reads as an empty vector).

    A model missing from another figure's vector, or NaN there, has None for it, as
    ``PrometheusMetrics.sample`` would give.
    """
    unknown = set(results) - set(FIGURES)
    if unknown:
        raise ValueError(f"not a live figure: {sorted(unknown)}")
    figures = {name: by_model(name, results.get(name, ())) for name in FIGURES}
    rates = figures.pop("request_rate_rps")
    return {
        key: LiveSample(
            timestamp=timestamp,
            request_rate_rps=rate,
            **{name: values.get(key) for name, values in figures.items()},
        )
        for key, rate in sorted(rates.items())
        if rate is not None
    }
