"""The PromQL behind a LeptonModel's live figures: strings only, no I/O.

Every query selects one model's Triton series by the target label ``namespace`` (set by
the scrape job, as a Prometheus Operator ServiceMonitor sets it) and by Triton's own
``model`` label, an exact match: every variant serves under the LeptonModel's own name
(each from its own repository folder), so one matcher takes every variant of this
model and nothing of ``minilm-v2``.
``w`` below is the configured rate window (``prometheus.rateWindow``, e.g. ``1m``);
``sel`` is the selector above.

``request_rate_rps``
    ``sum(rate(nv_inference_request_success{sel}[w]))``: successful requests per second
    over every pod and variant. Empty when no series exist: the adapter's ``NoData``.
``failure_rate_rps``
    ``sum(rate(nv_inference_request_failure{sel}[w]))``: Triton splits failures by
    ``reason`` (BACKEND, REJECTED, CANCELED, OTHER); summed.
``p95_ms``, ``p99_ms``
    ``max(nv_inference_request_summary_us{sel,quantile="0.95"}) / 1000``. Triton's
    summaries (``--metrics-config=summary_latencies=true``: quantiles 0.5, 0.9, 0.95,
    0.99 and 0.999 over a sliding window) are computed per pod and cannot be averaged
    or summed across pods; ``max`` is the conservative answer (the slowest pod's p95
    bounds what a client may see). A pod with no requests in the window exports NaN;
    ``max`` skips NaN unless every pod is NaN, which reads as None.
``mean_ms``
    ``sum(rate(nv_inference_request_duration_us{sel}[w]))
    / sum(rate(nv_inference_request_success{sel}[w])) / 1000``: the exact fleet mean
    over the window, since counters do add up across pods; 0/0 (idle) is NaN, so None.
``queue_mean_ms``, ``queue_p95_ms``
    The same two forms over ``nv_inference_queue_duration_us`` and
    ``nv_inference_queue_summary_us``: time waiting for a model instance, the first
    sign that replicas are short.
``gpu_utilization``
    ``avg(DCGM_FI_DEV_GPU_UTIL{ns} and on(namespace, pod) nv_inference_request_success{sel})
    / 100 or avg(nv_gpu_utilization{ns} and on(namespace, pod) ...same...)``: a fraction
    0..1. The DCGM exporter's gauge (percent; its ``namespace``/``pod`` name the pod
    using the GPU when scraped with ``honorLabels``, as the GPU Operator's
    ServiceMonitor does) when deployed, else Triton's own (already a fraction).
    ``and on(namespace, pod)`` keeps only GPUs of pods serving this model. Empty, so
    None, on CPU pools.

``cache_hit_rps``
    ``sum(rate(nv_cache_hit_summary_per_model_count{sel}[w]))
    or sum(rate(nv_cache_num_hits_per_model{sel}[w]))``: requests answered by Triton's
    response cache (``spec.serving.responseCache``). With summary latencies on (as our
    servers run) Triton 2.51 exports hits only as the count of the hit-duration summary
    and drops the ``nv_cache_num_hits_per_model`` counter (measured: the misses counter
    stays); the counter is the fallback for servers without summaries. Triton exports
    either only for models whose config enables the cache on a server that has one:
    empty, so None, otherwise. ``nv_inference_request_success`` counts hits too.

Durations are Triton's microseconds, turned into milliseconds here so that callers only
ever see ms, rps and fractions.

The fleet queries (``fleet_queries``) read the same figures for every model at once, a
fixed nine queries per interval whatever the number of models: each keeps the
``namespace`` and ``model`` labels and nothing else, so every answer is a vector with
one series per model and ``or`` and ``/`` match model to model. ``sel`` is empty, or
``namespace=~"team-a|team-b"`` (values regex-escaped, the regex anchored by Prometheus)
when the operator watches only some namespaces; every selector carries it. Per model
the answers equal the per-model queries' above.

``request_rate_rps``, ``failure_rate_rps``
    ``sum by (namespace, model) (rate(nv_inference_request_success{sel}[w]))``, and the
    same over ``nv_inference_request_failure``. The request rate is the list of models:
    a model with no series here has no sample (the per-model ``NoData``).
``p95_ms``, ``p99_ms``, ``queue_p95_ms``
    ``max by (namespace, model) (nv_inference_request_summary_us{sel,quantile="0.95"})
    / 1000``: the slowest pod's quantile per model, NaN only when every pod is NaN.
``mean_ms``, ``queue_mean_ms``
    ``sum by (namespace, model) (rate(nv_inference_request_duration_us{sel}[w]))
    / sum by (namespace, model) (rate(nv_inference_request_success{sel}[w])) / 1000``:
    both sides carry exactly ``namespace`` and ``model``, so ``/`` divides model by model.
``gpu_utilization``
    ``sum by (namespace, model) (pods * on(namespace, pod) group_left()
    sum by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{sel}))
    / sum by (namespace, model) (pods * on(namespace, pod) group_left()
    count by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{sel})) / 100 or ...the same over
    nv_gpu_utilization...``, where ``pods`` is
    ``group by (namespace, pod, model) (nv_inference_request_success{sel})`` (1 per pod
    serving a model). The mean over every GPU series of the pods serving each model, as
    the per-model ``avg(... and on(namespace, pod) ...)``. Not the shorter
    ``avg by (namespace, model) (gauge * on(namespace, pod) group_left(model) pods)``:
    ``group_left`` needs the right side unique per (namespace, pod), and a pod serving
    two models has two ``pods`` series, so Prometheus refuses the whole query
    ("many-to-many matching not allowed"); and the gauge has one series per GPU, so the
    side that is one per pod must be an aggregate of it. Hence the GPU sums and counts
    per pod on the "one" side and the pod-model pairs on the "many" side. ``or`` keeps
    DCGM's figure where a model has one and Triton's elsewhere, model by model.
``cache_hit_rps``
    ``sum by (namespace, model) (rate(nv_cache_hit_summary_per_model_count{sel}[w]))
    or sum by (namespace, model) (rate(nv_cache_num_hits_per_model{sel}[w]))``: the
    counter is the fallback per model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lepton_operator.timestamps import is_positive_duration


def promql_string(value: str) -> str:
    """A double-quoted PromQL string literal holding exactly ``value``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def model_selector(namespace: str, model: str) -> str:
    """Label matchers (without braces) for one LeptonModel's Triton series: every
    variant serves under the LeptonModel's own name (runtimes/triton/README.md)."""
    if not namespace or not model:
        raise ValueError("namespace and model must be non-empty")
    return f"namespace={promql_string(namespace)},model={promql_string(model)}"


@dataclass(frozen=True)
class ModelQueries:
    """One instant query per live figure; field names match ``LiveSample``'s."""

    request_rate_rps: str
    failure_rate_rps: str
    p95_ms: str
    p99_ms: str
    mean_ms: str
    queue_mean_ms: str
    queue_p95_ms: str
    gpu_utilization: str
    cache_hit_rps: str


def _queries(
    rate: Callable[[str], str],
    quantile: Callable[[str, str], str],
    serving: Callable[[str], str],
) -> ModelQueries:
    """The nine figures from how one scope (a model, or the fleet by model) takes a
    rate, a quantile and a per-pod gauge: the same formulas for both scopes."""
    success = rate("nv_inference_request_success")
    return ModelQueries(
        request_rate_rps=success,
        failure_rate_rps=rate("nv_inference_request_failure"),
        p95_ms=quantile("nv_inference_request_summary_us", "0.95"),
        p99_ms=quantile("nv_inference_request_summary_us", "0.99"),
        mean_ms=f"{rate('nv_inference_request_duration_us')} / {success} / 1000",
        queue_mean_ms=f"{rate('nv_inference_queue_duration_us')} / {success} / 1000",
        queue_p95_ms=quantile("nv_inference_queue_summary_us", "0.95"),
        gpu_utilization=(
            f"{serving('DCGM_FI_DEV_GPU_UTIL')} / 100 or {serving('nv_gpu_utilization')}"
        ),
        cache_hit_rps=(
            f"{rate('nv_cache_hit_summary_per_model_count')} "
            f"or {rate('nv_cache_num_hits_per_model')}"
        ),
    )


def model_queries(namespace: str, model: str, window: str = "1m") -> ModelQueries:
    """The queries for ``model`` in ``namespace`` with rates over ``window``."""
    if not is_positive_duration(window):
        raise ValueError(f"{window!r} is not a positive Prometheus duration")
    sel = model_selector(namespace, model)
    ns = f"namespace={promql_string(namespace)}"

    def rate(metric: str) -> str:
        return f"sum(rate({metric}{{{sel}}}[{window}]))"

    def quantile(metric: str, q: str) -> str:
        return f'max({metric}{{{sel},quantile="{q}"}}) / 1000'

    def serving(gauge: str) -> str:
        return f"avg({gauge}{{{ns}}} and on(namespace, pod) nv_inference_request_success{{{sel}}})"

    return _queries(rate, quantile, serving)


# RE2's metacharacters outside a class; a backslash before any other punctuation would
# also do, but only these need it.
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def namespaces_selector(namespaces: Sequence[str]) -> str:
    """A matcher (without braces) for the series of ``namespaces``; empty for all."""
    if any(not namespace for namespace in namespaces):
        raise ValueError("namespaces must be non-empty")
    if not namespaces:
        return ""
    escaped = ("".join("\\" + c if c in _RE2_SPECIAL else c for c in ns) for ns in namespaces)
    return f"namespace=~{promql_string('|'.join(sorted(set(escaped))))}"


def fleet_queries(window: str = "1m", namespaces: Sequence[str] = ()) -> ModelQueries:
    """The queries for every model at once (one series per namespace and model), with
    rates over ``window``, in ``namespaces`` only when given."""
    if not is_positive_duration(window):
        raise ValueError(f"{window!r} is not a positive Prometheus duration")
    sel = namespaces_selector(namespaces)
    by = "by (namespace, model)"

    def series(metric: str, *matchers: str) -> str:
        inside = ",".join(m for m in (sel, *matchers) if m)
        return f"{metric}{{{inside}}}" if inside else metric

    def rate(metric: str) -> str:
        return f"sum {by} (rate({series(metric)}[{window}]))"

    def quantile(metric: str, q: str) -> str:
        return f"max {by} ({series(metric, f'quantile={promql_string(q)}')}) / 1000"

    pods = f"group by (namespace, pod, model) ({series('nv_inference_request_success')})"

    def serving(gauge: str) -> str:
        def per_model(per_pod: str) -> str:
            return (
                f"sum {by} ({pods} * on(namespace, pod) group_left() "
                f"{per_pod} by (namespace, pod) ({series(gauge)}))"
            )

        return f"({per_model('sum')} / {per_model('count')})"

    return _queries(rate, quantile, serving)
