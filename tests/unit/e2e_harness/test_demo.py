"""The demo's pure parts: its table and its plot, from plain data (the demo itself is
``make demo`` on the real cluster)."""

from __future__ import annotations

import struct
from pathlib import Path

from lepton_e2e import demo


def test_variants_table_tells_accepted_rejected_and_not_built():
    status = {
        "variants": [
            {"pool": "cpu-standard", "variant": "onnx", "accepted": True, "accuracy": 1.0,
             "batchSize": 1, "p95Ms": 41.0, "throughputRps": 33.4},
            {"pool": "cpu-standard", "variant": "int8-dynamic", "accepted": False,
             "accuracy": 0.765, "batchSize": 8, "p95Ms": 147.9, "throughputRps": 59.0,
             "reason": "cosine 0.7650 below the guard 0.99"},
            {"pool": "gpu-l4", "variant": "fp16", "accepted": False,
             "reason": "needs a GPU"},
        ]
    }  # fmt: skip
    header, onnx, int8, fp16 = demo._variants_table(status).splitlines()
    assert header.split()[:3] == ["pool", "variant", "verdict"]
    assert onnx.split()[:4] == ["cpu-standard", "onnx", "accepted", "1.0000"]
    assert int8.split()[2] == "rejected" and int8.endswith("cosine 0.7650 below the guard 0.99")
    assert fp16.split()[:3] == ["gpu-l4", "fp16", "not"] and fp16.endswith("needs a GPU")


def test_plot_is_written_despite_missing_figures_and_a_pool_change(tmp_path: Path):
    points = [
        demo.Point(0, 2, None, None, None, {"cpu-standard": 1}, {"replicas": 1}, 0.34),
        demo.Point(15, 10, 80.0, 9.5, 95.0, {"cpu-standard": 2}, {"replicas": 2}, 0.68),
        demo.Point(30, 10, 40.0, 10.1, 45.0, {"cpu-standard": 1, "gpu-l4": 1}, {}, 1.15),
        demo.Point(45, 0, None, 0.0, None, {"gpu-l4": 1}, {"replicas": 1}, 0.81),
    ]
    run = demo.Demo(out=tmp_path, points=points)
    path = tmp_path / "plot" / "demo.png"
    demo._plot(run, path, slo_ms=60)
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (720, 720)


def test_the_demo_applies_the_example_with_its_patch_as_one_valid_manifest():
    """One apply, so one build: the example applied and then patched built twice."""
    from lepton_operator.api.spec import LeptonModelSpec

    manifest = demo.demo_manifest()
    spec = LeptonModelSpec.model_validate(manifest["spec"])
    assert spec.slo.p95_latency_ms == demo.DEMO_SLO_MS
    assert manifest["metadata"]["name"] == demo.MODEL
    # The example's own choices the patch does not touch are kept.
    assert spec.optimization.calibration_uri == "pvc://models/minilm-calibration.npz"
    assert spec.optimization.accuracy.tolerance == 0.99
    assert {p.name for p in spec.pools} == {"cpu-standard", "gpu-l4"}


def test_merge_patch_follows_rfc_7386():
    target = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert demo.merge_patch(target, {"a": {"c": [3], "e": None}, "d": None, "f": 2}) == {
        "a": {"b": 1, "c": [3]},
        "f": 2,
    }
    assert target == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # untouched


def test_slo_share_judges_only_windows_that_saw_requests():
    def point(rps: float | None, p95: float | None) -> demo.Point:
        return demo.Point(0, 0, None, rps, p95, {}, {}, 0.0)

    points = [point(None, None), point(5, 20), point(40, 80), point(40, 45), point(0, 80)]
    assert demo.slo_share(points, slo_ms=50) == (2, 3)


def test_below_the_limit_drops_only_misses_with_the_most_replicas_ready():
    def point(p95: float, ready: int) -> demo.Point:
        return demo.Point(0, 40, None, 40.0, p95, {"cpu-standard": ready}, {}, 0.0)

    points = [
        point(30, 1),  # within, one replica
        point(90, 1),  # over with one Ready: the plan's miss, judged
        point(95, 2),  # over with both Ready: past what the machine carries, dropped
        point(40, 2),  # within with both
        demo.Point(0, 0, None, 0.0, 200.0, {"cpu-standard": 1}, {}, 0.0),  # no requests
    ]
    assert demo.slo_share(points, slo_ms=60) == (2, 4)
    assert demo.slo_share_below_the_limit(points, slo_ms=60, most_replicas=2) == (2, 3)
    assert demo.slo_share_below_the_limit(points, slo_ms=60, most_replicas=3) == (2, 4)
