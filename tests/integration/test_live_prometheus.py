"""The metrics adapter against a real Prometheus 3 scraping recorded Triton metrics.

``data/triton_metrics.txt`` is a real Triton's exposition after load (see
``data/record_triton_metrics.py``). A replay exporter serves it per simulated pod, with
the counters the adapter reads advancing at known rates from the moment it starts, so
``rate()`` has a known true value, and the recorded latency quantiles scaled per pod,
so ``max`` across pods has a known answer. Prometheus scrapes two such pods and a DCGM
exporter every second; the adapter reads a 10 s window.
"""

from __future__ import annotations

import http.server
import math
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import pytest

from lepton_e2e import binaries
from lepton_e2e.prometheus import PrometheusServer, free_port, static_job
from lepton_operator.config import Prometheus
from lepton_operator.live.prometheus import LiveSample, MetricsUnavailable, PrometheusMetrics

pytestmark = pytest.mark.integration

RECORDING = Path(__file__).parent / "data" / "triton_metrics.txt"
RECORDED_MODEL = "digits"
NS = "team-a"
WINDOW = "10s"
SETTLE_WINDOW, SETTLE_SCRAPES = "12s", 12  # one scrape a second for 12 s covers WINDOW
SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})?\s+(\S+)$")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _recorded(name: str, **labels: str) -> float:
    for line in RECORDING.read_text().splitlines():
        match = SAMPLE.match(line)
        if (
            match
            and match[1] == name
            and all(f'{k}="{v}"' in (match[2] or "") for k, v in labels.items())
        ):
            return float(match[3])
    raise KeyError(name)


@dataclass(frozen=True)
class Load:
    """What one simulated pod does for one Triton model from the exporter's start."""

    model: str
    success_rps: float = 0.0
    failure_rps: float = 0.0  # as reason="BACKEND"
    mean_us: float = 0.0
    queue_mean_us: float = 0.0
    quantile_scale: float | None = 1.0  # None: no observations in the window (NaN)

    def per_second(self, name: str, labels: str) -> float:
        """How fast the counter ``name`` grows; the ones the adapter does not read stay."""
        if name in ("nv_inference_request_success", "nv_inference_request_summary_us_count"):
            return self.success_rps
        if name in ("nv_inference_request_duration_us", "nv_inference_request_summary_us_sum"):
            return self.success_rps * self.mean_us
        if name in ("nv_inference_queue_duration_us", "nv_inference_queue_summary_us_sum"):
            return self.success_rps * self.queue_mean_us
        if name == "nv_inference_request_failure" and 'reason="BACKEND"' in labels:
            return self.failure_rps
        return 0.0


class ReplayExporter:
    """Serves the recording as one Triton pod would, for each ``Load``'s model."""

    def __init__(self, loads: list[Load], gpu_utilization: float | None = None) -> None:
        self.loads = loads
        self.gpu_utilization = gpu_utilization
        self.lines = RECORDING.read_text().splitlines()
        self.started = time.time()
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render(time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def render(self, now: float) -> str:
        elapsed = now - self.started
        out: list[str] = []
        for line in self.lines:
            match = SAMPLE.match(line)
            if not match or f'model="{RECORDED_MODEL}"' not in (match[2] or ""):
                out.append(line)
                continue
            name, labels, value = match[1], match[2], float(match[3])
            for load in self.loads:
                if "quantile=" in labels:
                    scaled = "NaN" if load.quantile_scale is None else value * load.quantile_scale
                    replayed = str(scaled)
                else:
                    replayed = repr(value + load.per_second(name, labels) * elapsed)
                relabelled = labels.replace(f'model="{RECORDED_MODEL}"', f'model="{load.model}"')
                out.append(f"{name}{{{relabelled}}} {replayed}")
        if self.gpu_utilization is not None:
            out += [
                "# TYPE nv_gpu_utilization gauge",
                f'nv_gpu_utilization{{gpu_uuid="GPU-0"}} {self.gpu_utilization}',
            ]
        return "\n".join(out) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StaticExporter(http.server.ThreadingHTTPServer):
    """A fixed exposition (the DCGM exporter's), or a fixed HTTP status for other tests."""

    def __init__(self, body: str = "", status: int = 200) -> None:
        payload, code = body.encode(), status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(code)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _pod(name: str) -> dict[str, str]:
    return {"namespace": NS, "pod": name, "service": "digits-triton"}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    pod_a = ReplayExporter(
        [
            Load("digits", 20.0, 1.0, mean_us=5000, queue_mean_us=1000, quantile_scale=1.0),
            # Another LeptonModel whose name shares the prefix: never counted as digits.
            Load("digits-v2", 100.0, 5.0, mean_us=90000, queue_mean_us=9000, quantile_scale=3.0),
            Load("idle", quantile_scale=None),
        ],
        gpu_utilization=0.42,
    )
    pod_b = ReplayExporter(
        [Load("digits", 10.0, 0.0, mean_us=8000, queue_mean_us=2000, quantile_scale=0.5)]
    )
    # DCGM labels the pod that uses the GPU; scraped with honor_labels as the GPU
    # Operator's ServiceMonitor does. The pod "batch-job" serves no model: not counted.
    dcgm = StaticExporter(
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
        f'DCGM_FI_DEV_GPU_UTIL{{gpu="0",namespace="{NS}",pod="triton-a"}} 80\n'
        f'DCGM_FI_DEV_GPU_UTIL{{gpu="1",namespace="{NS}",pod="batch-job"}} 10\n'
    )
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"),
        f"127.0.0.1:{free_port()}",
        [
            static_job(
                "triton", {pod_a.address: _pod("triton-a"), pod_b.address: _pod("triton-b")}
            ),
            {
                **static_job("dcgm", {dcgm.url.removeprefix("http://"): {}}),
                "honor_labels": True,
            },
        ],
        scrape_interval="1s",
        binary=binaries.ensure_built() / "prometheus",
    )
    server.start()
    try:
        server.wait_ready()
        _settle(server)
        yield server
    finally:
        server.stop()
        for exporter in (pod_a, pod_b):
            exporter.close()
        dcgm.shutdown()
        dcgm.server_close()


def _metrics(url: str, timeout: int = 5) -> PrometheusMetrics:
    return PrometheusMetrics(Prometheus(url=url, rateWindow=WINDOW, timeoutSeconds=timeout))


def _settle(server: PrometheusServer, timeout: float = 60) -> None:
    """Wait until every pod's scrapes cover the rate window (and a bit): over a partly
    filled window rate() under-reads, since Prometheus extrapolates only half a scrape
    interval before a series' first sample, not to the window's start. Scraping starts
    a little after ``/-/ready``, so readiness alone is not enough."""
    covered = f'min(count_over_time(up{{job="triton"}}[{SETTLE_WINDOW}])) >= {SETTLE_SCRAPES}'
    deadline = time.monotonic() + timeout
    while not server.query(covered):
        assert time.monotonic() < deadline, "Prometheus never scraped a full window"
        time.sleep(0.5)


def _sample(metrics: PrometheusMetrics, model: str, timeout: float = 30) -> LiveSample:
    """The first sample Prometheus can give (it may still be scraping its first round)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return metrics.sample(NS, model)
        except MetricsUnavailable as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"no sample for {model}: {error}") from error
        time.sleep(0.5)


def test_a_sample_reads_the_known_rates_means_and_the_slowest_pods_quantiles(prometheus):
    sample = _sample(_metrics(prometheus.url), "digits")
    assert sample.request_rate_rps == pytest.approx(30.0, rel=0.03)  # 20 + 10, not digits-v2
    assert sample.failure_rate_rps == pytest.approx(1.0, rel=0.05)
    # Summaries: the larger of the two pods' recorded quantiles (pod B serves half).
    p95 = _recorded("nv_inference_request_summary_us", quantile="0.95") / 1000
    p99 = _recorded("nv_inference_request_summary_us", quantile="0.99") / 1000
    queue_p95 = _recorded("nv_inference_queue_summary_us", quantile="0.95") / 1000
    assert (sample.p95_ms, sample.p99_ms) == pytest.approx((p95, p99))
    assert sample.queue_p95_ms == pytest.approx(queue_p95)
    assert sample.mean_ms == pytest.approx((20 * 5.0 + 10 * 8.0) / 30, rel=0.03)
    assert sample.queue_mean_ms == pytest.approx((20 * 1.0 + 10 * 2.0) / 30, rel=0.03)
    assert sample.gpu_utilization == pytest.approx(0.80)  # DCGM first, only pods serving it
    assert abs(sample.timestamp - time.time()) < 5


def test_an_idle_model_has_a_zero_rate_and_no_latency_rather_than_nan(prometheus):
    sample = _sample(_metrics(prometheus.url), "idle")
    assert sample.request_rate_rps == 0.0
    assert (sample.p95_ms, sample.p99_ms, sample.mean_ms, sample.queue_mean_ms) == (
        None,
        None,
        None,
        None,
    )


def test_a_model_without_series_is_no_data(prometheus):
    with pytest.raises(MetricsUnavailable) as caught:
        _metrics(prometheus.url).sample(NS, "absent")
    assert caught.value.reason == "NoData"
    with pytest.raises(MetricsUnavailable) as caught:
        _metrics(prometheus.url).sample("other-namespace", "digits")
    assert caught.value.reason == "NoData"


def test_a_url_that_is_not_the_api_is_a_failed_query(prometheus):
    with pytest.raises(MetricsUnavailable) as caught:
        _metrics(prometheus.url + "/not-prometheus").sample(NS, "digits")
    assert caught.value.reason == "QueryFailed" and "404" in caught.value.message
    with pytest.raises(MetricsUnavailable) as caught:  # no selector for an empty name
        _metrics(prometheus.url).sample(NS, "")
    assert caught.value.reason == "QueryFailed"


def test_a_server_error_or_a_silent_server_is_unreachable_within_the_timeout():
    failing = StaticExporter("overloaded", status=503)
    try:
        with pytest.raises(MetricsUnavailable) as caught:
            _metrics(failing.url).sample(NS, "digits")
        assert caught.value.reason == "PrometheusUnreachable"
    finally:
        failing.shutdown()
        failing.server_close()
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(MetricsUnavailable) as caught:
            _metrics(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=1).sample(NS, "m")
        assert caught.value.reason == "PrometheusUnreachable"
        assert time.monotonic() - started < 3


def _same(fleet: LiveSample, one: LiveSample) -> bool:
    """Every figure equal, to float rounding (both read at the same instant)."""
    return all(
        (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b))
        for a, b in zip(astuple(fleet), astuple(one), strict=True)
    )


def test_one_fleet_read_gives_every_model_its_own_figures_in_nine_queries(prometheus, monkeypatch):
    """Three models (all on pod A, one on pod B too) in the nine queries that one
    model costs; each the figures of its own read. The GPU figure joins a pod serving
    several models, the case a ``group_left(model)`` join would refuse."""
    metrics = _metrics(prometheus.url)
    _sample(metrics, "digits")
    asked: list[str] = []
    ask = PrometheusMetrics._ask

    def counting(self: PrometheusMetrics, promql: str, timestamp: float) -> list[Any]:
        asked.append(promql)
        return ask(self, promql, timestamp)

    monkeypatch.setattr(PrometheusMetrics, "_ask", counting)
    # A few scrapes in the past: a scrape stamped just before "now" but stored between
    # the fleet's read and a model's own would change a rate read at "now" (seen on a
    # busy machine: 30.0103 against 30.0124 req/s). At 3 s ago both see the same data.
    at = time.time() - 3
    fleet = metrics.sample_all(at=at)
    assert len(asked) == 9
    assert set(fleet) == {(NS, "digits"), (NS, "digits-v2"), (NS, "idle")}
    asked.clear()
    for (namespace, model), sample in fleet.items():
        one = metrics.sample(namespace, model, at=at)
        assert _same(sample, one), (model, sample, one)
    assert len(asked) == 9 * len(fleet)  # what the fleet read saves
    digits, other = fleet[NS, "digits"], fleet[NS, "digits-v2"]
    assert digits.request_rate_rps == pytest.approx(30.0, rel=0.03)
    assert other.request_rate_rps == pytest.approx(100.0, rel=0.03)
    assert other.p95_ms == pytest.approx(
        3 * _recorded("nv_inference_request_summary_us", quantile="0.95") / 1000
    )
    assert digits.gpu_utilization == other.gpu_utilization == pytest.approx(0.80)
    assert fleet[NS, "idle"].mean_ms is None

    asked.clear()
    assert set(metrics.sample_all(at=at, namespaces=[NS, "team-b"])) == set(fleet)
    assert len(asked) == 9
    asked.clear()
    assert metrics.sample_all(at=at, namespaces=["other-namespace"]) == {}
    assert len(asked) == 1  # no request rate: nothing else asked


def test_a_killed_prometheus_is_unreachable_at_once_and_recovers_after_start(prometheus):
    metrics = _metrics(prometheus.url)
    _sample(metrics, "digits")
    prometheus.stop(kill=True)
    started = time.monotonic()
    with pytest.raises(MetricsUnavailable) as caught:
        metrics.sample(NS, "digits")
    assert caught.value.reason == "PrometheusUnreachable"
    assert time.monotonic() - started < 1  # refused, not retried
    prometheus.start()
    prometheus.wait_ready()
    _sample(metrics, "digits")  # answers again as soon as it scraped twice
    _settle(prometheus)
    recovered = _sample(metrics, "digits")
    assert recovered.request_rate_rps == pytest.approx(30.0, rel=0.03)
