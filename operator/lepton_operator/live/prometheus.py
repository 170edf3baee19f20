"""The adapter between the operator and Prometheus: PromQL in, a ``LiveSample`` out.

Thin on purpose: the queries come from ``queries`` and every failure is folded into
``MetricsUnavailable`` with a reason, so the reconcile loop has exactly one exception
to handle and a condition reason to show. Requests are short (``timeoutSeconds``) and
never retried here: the reconcile timer is the retry. A dead Prometheus costs one
timeout, then every model is told at once for ``retryAfterUnreachableSeconds``
(``breaker``), not one timeout per model. Blocking (``requests``): call it from a sync
handler or ``asyncio.to_thread``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from lepton_operator.config import Prometheus
from lepton_operator.live.breaker import UnreachableBreaker
from lepton_operator.live.fleet import fleet_samples
from lepton_operator.live.queries import fleet_queries, model_queries
from lepton_operator.live.sample import LiveSample, MetricsUnavailable, Reason
from lepton_operator.watched import are_names, watches

__all__ = ["LiveSample", "MetricsUnavailable", "PrometheusMetrics"]

# prometheus-api-client reports a non-200 answer only as this message.
_STATUS = re.compile(r"HTTP Status Code (\d{3})")


class PrometheusMetrics:
    """Reads one model's live figures (``sample``), or every model's in nine queries
    (``sample_all``), from the Prometheus at ``settings.url``."""

    def __init__(self, settings: Prometheus) -> None:
        self.settings = settings
        self._client = PrometheusConnect(
            url=settings.url.rstrip("/"),
            retry=Retry(total=0, connect=0, read=0, status=0, redirect=0),
            timeout=settings.timeout_seconds,
        )
        self._breaker = UnreachableBreaker(settings.retry_after_unreachable_seconds)

    def sample(self, namespace: str, model: str, at: float | None = None) -> LiveSample:
        """Every figure evaluated at one instant (``at``, default now).

        The request rate is read first: without it there is no model to describe, so
        ``NoData`` comes after one query, and a dead Prometheus costs one timeout, not
        eight. Raises ``MetricsUnavailable`` and nothing else.
        """
        timestamp = time.time() if at is None else at
        try:
            queries = model_queries(namespace, model, self.settings.rate_window)
        except ValueError as error:
            raise MetricsUnavailable("QueryFailed", str(error)) from error
        values: dict[str, float | None] = {}
        for field in fields(queries):
            values[field.name] = self._scalar(getattr(queries, field.name), timestamp)
            if field.name == "request_rate_rps" and values[field.name] is None:
                raise MetricsUnavailable(
                    "NoData",
                    f"no Triton request series for {namespace}/{model} in the last "
                    f"{self.settings.rate_window} (not scraped yet, or not serving)",
                )
        rate = values.pop("request_rate_rps")
        assert rate is not None  # checked above: NoData otherwise
        return LiveSample(timestamp=timestamp, request_rate_rps=rate, **values)

    def sample_all(
        self, at: float | None = None, namespaces: Sequence[str] = ()
    ) -> dict[tuple[str, str], LiveSample]:
        """Every model's figures at one instant, by (namespace, model): nine queries
        whatever the number of models (``queries.fleet_queries``), in ``namespaces``
        only when given.

        A model is in the answer when it has a request-rate series, as ``sample`` gives
        a model ``NoData`` otherwise; an empty request rate ends the read at one query
        with ``{}``. Raises ``MetricsUnavailable`` and nothing else, as ``sample``.
        """
        timestamp = time.time() if at is None else at
        # Plain names are selected by Prometheus; kopf's patterns (globs, exclusions) have
        # no PromQL regex of the same meaning, so those answers are filtered here.
        selected = namespaces if are_names(namespaces) else ()
        try:
            queries = fleet_queries(self.settings.rate_window, selected)
        except ValueError as error:
            raise MetricsUnavailable("QueryFailed", str(error)) from error
        results: dict[str, list[dict[str, Any]]] = {}
        for field in fields(queries):
            results[field.name] = self._query(getattr(queries, field.name), timestamp)
            if field.name == "request_rate_rps" and not results[field.name]:
                return {}
        samples = fleet_samples(results, timestamp)
        if selected or not namespaces:
            return samples
        return {key: sample for key, sample in samples.items() if watches(key[0], namespaces)}

    def close(self) -> None:
        self._client.close()

    def _scalar(self, promql: str, timestamp: float) -> float | None:
        """The single value of an aggregated instant query; None for empty or NaN."""
        result = self._query(promql, timestamp)
        if not result:
            return None
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise MetricsUnavailable(
                "QueryFailed", f"unexpected answer to {promql}: {result!r:.200}"
            ) from error
        return value if math.isfinite(value) else None

    def _query(self, promql: str, timestamp: float) -> list[dict[str, Any]]:
        self._breaker.check()
        try:
            result = self._ask(promql, timestamp)
        except MetricsUnavailable as error:
            self._breaker.record(error)
            raise
        self._breaker.record(None)
        return result

    def _ask(self, promql: str, timestamp: float) -> list[dict[str, Any]]:
        url = self.settings.url
        try:
            result = self._client.custom_query(promql, params={"time": f"{timestamp:.3f}"})
        except PrometheusApiClientException as error:
            status = _STATUS.search(str(error))
            code = int(status.group(1)) if status else 0
            reason: Reason = "QueryFailed" if 400 <= code < 500 else "PrometheusUnreachable"
            raise MetricsUnavailable(reason, f"{url}: {str(error)[:300]}") from error
        except (KeyError, TypeError, ValueError) as error:
            # Before OSError: requests' JSONDecodeError is both (a 200 that is not JSON).
            raise MetricsUnavailable(
                "QueryFailed", f"{url} did not answer as the Prometheus API: {error}"
            ) from error
        except OSError as error:  # requests' RequestException: refused, reset, timed out
            raise MetricsUnavailable("PrometheusUnreachable", f"{url}: {error}") from error
        except Exception as error:
            # The reconcile loop handles MetricsUnavailable only; name what this was.
            raise MetricsUnavailable(
                "QueryFailed", f"{url}: {type(error).__name__}: {error}"
            ) from error
        if not isinstance(result, list):
            raise MetricsUnavailable("QueryFailed", f"{url} answered a {type(result).__name__}")
        return result
