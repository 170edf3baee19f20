"""The observed p95 corrects the capacity model only at a steady load (decide.py).

Prometheus' p95 and request rate share a window; while the load moves they describe
different loads. These tests call the operator's own ``decide`` with one fresh sample.
"""

from __future__ import annotations

from lepton_operator.api.spec import LeptonModelSpec, PoolSpec
from lepton_operator.api.status import LeptonModelStatus, VariantStatus
from lepton_operator.decide import decide, steady_load
from lepton_operator.live.sample import LiveSample

NOW = 1_000_000.0
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


def _correction_after(previous_rps: float, rps: float, p95_ms: float) -> float:
    """The correction decide() keeps after one sample, the previous one 5 s before."""
    status = LeptonModelStatus.model_validate(
        {
            "decision": {
                "variant": "onnx",
                "pool": "cpu",
                "replicas": 2,
                "hourlyCostUSD": 0.68,
                "reason": "r",
                "time": "2026-12-06T00:00:00Z",
            },
            "live": {"time": "t", "replicasByPool": {"cpu": 2}},
            "planner": {"correction": 1.0, "rates": [[NOW - 5, previous_rps]]},
        }
    )
    sample = LiveSample(NOW, rps, None, p95_ms, None, None, None, None, None)
    decided = decide(SPEC, POOLS, [ONNX], {}, status, sample, NOW)
    assert decided.planner is not None
    return decided.planner.correction


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
