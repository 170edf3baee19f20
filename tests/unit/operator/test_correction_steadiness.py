"""The observed p95 corrects the capacity model only when it is the plan's own: the
planned replicas Ready for the whole of Triton's latency window, at a steady load
(decide.py).

Triton's p95 is a sliding summary of about a minute and Prometheus' request rate has
its own window; while the replicas or the load change they describe different things.
These tests call the operator's own ``decide`` with one fresh sample.
"""

from __future__ import annotations

from lepton_operator.api.spec import LeptonModelSpec, PoolSpec
from lepton_operator.api.status import LeptonModelStatus, VariantStatus
from lepton_operator.decide import LATENCY_WINDOW_S, decide, settled_since, steady_load
from lepton_operator.live.sample import LiveSample

NOW = 1_796_000_000.0  # 2026-11-30T00:53:20Z
DECIDED = "2026-11-29T00:00:00Z"  # a day before: the decision is old
LONG_READY = NOW - 2 * LATENCY_WINDOW_S
SPEC = LeptonModelSpec.model_validate(
    {
        "model": {
            "uri": "pvc://models/m",
            "format": "onnx",
            "inputs": [{"name": "x", "dtype": "fp32", "shape": [4]}],
            "outputs": [{"name": "y", "dtype": "fp32", "shape": [2]}],
        },
        "slo": {"p95LatencyMs": 50},
        "scaling": {"minReplicas": 1, "maxReplicas": 3},
    }
)
POOLS = [PoolSpec.model_validate({"name": "cpu", "hourlyPriceUSD": 0.34})]
ONNX = VariantStatus.model_validate(
    {"variant": "onnx", "pool": "cpu", "batchSize": 1, "p95Ms": 14.0, "throughputRps": 80.0}
    | {"accepted": True}
)


def _decided(
    rates: list[list[float]],
    rps: float,
    p95_ms: float,
    ready_since: float | None = LONG_READY,
    decided: str = DECIDED,
    ready: int = 2,
    rate_window_s: float = 60.0,
) -> tuple[float, float | None]:
    """The correction and ``readySince`` decide() keeps after one sample at NOW."""
    status = LeptonModelStatus.model_validate(
        {
            "decision": {
                "variant": "onnx",
                "pool": "cpu",
                "replicas": 2,
                "hourlyCostUSD": 0.68,
                "reason": "r",
                "time": decided,
            },
            "live": {"time": "t", "replicasByPool": {"cpu": ready}},
            "planner": {"correction": 1.0, "rates": rates, "readySince": ready_since},
        }
    )
    sample = LiveSample(NOW, rps, None, p95_ms, None, None, None, None, None)
    result = decide(SPEC, POOLS, [ONNX], {}, status, sample, NOW, rate_window_s=rate_window_s)
    assert result.planner is not None
    return result.planner.correction, result.planner.ready_since


def _correction_after(previous_rps: float, rps: float, p95_ms: float) -> float:
    """The correction after one sample, the previous one 5 s before."""
    return _decided([[NOW - 5, previous_rps]], rps, p95_ms)[0]


def test_a_p95_read_while_the_load_falls_corrects_nothing() -> None:
    """40 req/s stopped: the window's p95 is still the heavy load's, its rate already
    half of it; judged against the prediction at that rate, the model would look 3x
    slow and the plan would add replicas to an emptying model."""
    assert _correction_after(previous_rps=40.0, rps=20.0, p95_ms=45.0) == 1.0


def test_a_p95_read_while_the_load_rises_corrects_nothing() -> None:
    assert _correction_after(previous_rps=5.0, rps=20.0, p95_ms=45.0) == 1.0


def test_a_p95_read_at_a_steady_load_corrects_the_model() -> None:
    assert _correction_after(previous_rps=20.0, rps=21.0, p95_ms=45.0) > 1.0


def test_steady_load_tolerates_noise_and_a_first_sample() -> None:
    assert steady_load([[0.0, 10.0]])
    assert steady_load([[0.0, 10.0], [5.0, 11.5]])
    assert not steady_load([[0.0, 10.0], [5.0, 13.0]])
    assert steady_load([[0.0, 0.0], [5.0, 0.0]])


def test_steady_load_looks_over_the_whole_latency_window() -> None:
    """A load that rose 40 s ago and has held since is still moving for a 60 s p95 when
    the rates are sampled over short ranges."""
    rates = [[0.0, 10.0], [20.0, 20.0], [40.0, 20.0], [60.0, 20.5]]
    assert steady_load(rates)  # the last two agree
    assert not steady_load(rates, window_s=60.0)
    assert steady_load(rates, window_s=40.0)


def test_a_p95_read_within_a_minute_of_the_plan_turning_ready_corrects_nothing() -> None:
    """Its summary still holds the seconds one replica carried the load of two: the
    demo's correction went x0.57 -> x1.70 so."""
    steady = [[NOW - 30, 20.0], [NOW - 15, 20.0]]
    assert _decided(steady, 20.0, 45.0, ready_since=NOW - 30) == (1.0, NOW - 30)
    assert _decided(steady, 20.0, 45.0)[0] > 1.0  # the same, a minute later


def test_the_first_sample_that_sees_the_plan_ready_starts_the_window() -> None:
    steady = [[NOW - 15, 20.0]]
    assert _decided(steady, 20.0, 45.0, ready_since=None) == (1.0, NOW)


def test_replicas_not_yet_ready_forget_when_they_were() -> None:
    steady = [[NOW - 15, 20.0]]
    assert _decided(steady, 20.0, 45.0, ready=1) == (1.0, None)


def test_a_decision_changed_since_the_plan_turned_ready_restarts_the_window() -> None:
    """A scale-down applied between two samples: the Ready count already matches the
    new plan, but the p95's minute was served by more replicas."""
    recent = "2026-11-30T00:53:00Z"  # 20 s before NOW
    assert settled_since(LONG_READY, recent, True, NOW) == NOW - 20
    steady = [[NOW - 15, 20.0]]
    assert _decided(steady, 20.0, 45.0, decided=recent) == (1.0, NOW - 20)


def test_settled_since_keeps_the_earliest_ready_sample() -> None:
    assert settled_since(NOW - 100, DECIDED, True, NOW) == NOW - 100
    assert settled_since(NOW - 100, DECIDED, False, NOW) is None
    assert settled_since(NOW - 100, "not a time", True, NOW) == NOW - 100


def test_with_short_rate_windows_the_samples_across_the_latency_window_must_agree() -> None:
    """A 15 s rate window (make demo's): the sample 30 s back still describes loads the
    p95 covers; with the default 1 m one, the latest sample's range is the p95's window."""
    rose = [[NOW - 30, 10.0], [NOW - 15, 20.0]]
    assert _decided(rose, 20.0, 45.0, rate_window_s=15.0)[0] == 1.0
    assert _decided(rose, 20.0, 45.0, rate_window_s=60.0)[0] > 1.0
