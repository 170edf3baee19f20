"""The builder's pure parts: which variants apply, the accuracy guard, the repository."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.grpc.model_config_pb2 import TYPE_FP32

from lepton_builder import cpu
from lepton_builder.accuracy import judge, max_abs_error, min_cosine, top1_agreement
from lepton_builder.build import _preferred, summary_table
from lepton_builder.profiling import Budget, profile
from lepton_builder.request import BuildRequest, Tensor
from lepton_builder.selection import choose_variants
from lepton_builder.tritonrepo import model_config, parse, render


def _built(choices):
    return [c.variant for c in choices if c.build]


def test_cpu_builds_cpu_variants_and_says_why_gpu_ones_are_skipped():
    choices = choose_variants("cpu", "safetensors", None, False, False)
    assert _built(choices) == ["fp32", "int8-dynamic", "onnx", "onnx-int8", "torchscript"]
    skipped = {c.variant: c.reason for c in choices if not c.build}
    assert skipped["fp16"].startswith("needs a GPU")
    assert set(skipped) == {"torch-compile", "fp16", "bf16"}
    assert "no native bf16" in skipped["bf16"]


def test_bf16_is_a_cpu_variant_only_where_the_cpu_computes_bf16_natively():
    native = choose_variants("cpu", "safetensors", None, False, False, cpu_bf16_native=True)
    assert _built(native) == ["fp32", "int8-dynamic", "onnx", "onnx-int8", "torchscript", "bf16"]
    # An ONNX source has no torch module to cast.
    onnx = choose_variants("cpu", "onnx", ["bf16"], False, False, cpu_bf16_native=True)
    assert _built(onnx) == ["fp32"]


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        ("flags\t\t: fpu sse avx2 avx512f avx512_vnni\n", False),  # Skylake/Ice Lake: emulated
        ("flags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n", True),  # Cooper Lake, Zen 4
        ("flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n", True),  # Sapphire Rapids
        ("Features\t: fp asimd sve bf16 i8mm\n", True),  # Neoverse V1/N2, Graviton 3
        ("Features\t: fp asimd evtstrm aes\n", False),  # Graviton 2
        ("model name\t: bf16 in a name is not a flag\n", False),
        ("", False),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, native):
    assert cpu.native_bf16(cpuinfo) is native


def test_unreadable_cpu_flags_mean_no_native_bf16(tmp_path):
    assert cpu.has_native_bf16(tmp_path / "absent") is False


def test_tensorrt_is_no_default_and_a_request_for_it_is_skipped_with_why():
    without = choose_variants("cuda", "safetensors", None, False, True)
    assert _built(without) == ["fp32", "onnx", "torch-compile", "fp16", "bf16"]
    assert "tensorrt" not in [c.variant for c in without]
    asked = choose_variants("cuda", "safetensors", ["tensorrt"], False, True)
    assert "not present" in next(c.reason for c in asked if c.variant == "tensorrt")
    # Even where the library is present: no engine is built, so none is offered.
    present = choose_variants("cuda", "safetensors", ["tensorrt"], True, True)
    assert "tensorrt" not in _built(present)
    assert "not built" in next(c.reason for c in present if c.variant == "tensorrt")
    no_ort_cuda = choose_variants("cuda", "safetensors", None, False, False)
    assert "onnx" not in _built(no_ort_cuda)


def test_onnx_sources_build_only_onnx_variants_and_fp32_is_always_there():
    choices = choose_variants("cpu", "onnx", ["torchscript", "onnx-int8"], False, False)
    assert _built(choices) == ["fp32", "onnx-int8"]
    assert "torch source" in next(c.reason for c in choices if c.variant == "torchscript")


def test_accuracy_metrics():
    base = [np.array([[1.0, 0.0], [0.0, 1.0]])]
    same = [np.array([[2.0, 0.0], [0.0, 3.0]])]
    flipped = [np.array([[0.0, 1.0], [0.0, 1.0]])]
    assert min_cosine(base, same) == pytest.approx(1.0)
    assert min_cosine(base, flipped) == pytest.approx(0.0)
    assert top1_agreement(base, flipped) == 0.5
    assert max_abs_error(base, same) == 2.0


def test_judge_accepts_within_tolerance_and_names_the_gap():
    base = [np.array([[1.0, 0.0]])]
    near = [np.array([[1.0, 0.1]])]
    assert judge("cosine", 0.99, base, near).accepted
    verdict = judge("cosine", 0.999, base, near)
    assert not verdict.accepted and "mean 0.9950 below the guard 0.999" in verdict.reason
    verdict = judge("max-abs-error", 0.05, base, near)
    assert not verdict.accepted and "above the limit" in verdict.reason
    nan = judge("cosine", 0.9, base, [np.array([[np.nan, 0.0]])])
    assert not nan.accepted and "not finite" in nan.reason


def test_profile_uses_the_budget_and_reports_percentiles():
    ticks = iter(np.arange(0, 1000, 0.001))
    calls = []
    result = profile(
        lambda: calls.append(1),
        8,
        Budget(warmup=2, min_iterations=10, seconds=0.0),
        peak_memory=lambda: 7,
        clock=lambda: float(next(ticks)),
    )
    assert result.iterations == 10 and len(calls) == 12
    assert result.p50_ms == pytest.approx(1.0) and result.throughput_rps == pytest.approx(8000)
    assert result.peak_memory_bytes == 7


def test_config_pbtxt_names_the_device_kind_and_batching():
    tensors = [Tensor(name="x", dtype="fp32", shape=[-1, 4])]
    text = render(
        model_config(
            "m",
            tensors,
            [Tensor(name="y", dtype="fp16", shape=[2])],
            "cuda",
            "onnxruntime",
            "model.onnx",
            [8, 1, 8],
            32,
        )
    )
    assert "kind: KIND_GPU" in text and "max_batch_size: 32" in text
    config = parse(text)
    assert list(config.dynamic_batching.preferred_batch_size) == [1, 8]
    (x,) = config.input
    assert (x.name, x.data_type, list(x.dims)) == ("x", TYPE_FP32, [-1, 4])
    (y,) = config.output
    assert (y.name, y.data_type, list(y.dims)) == ("y", TYPE_FP32, [2])  # served as fp32
    assert "KIND_CPU" in render(
        model_config("m", tensors, tensors, "cpu", "torchscript", "model.pt", [1], 1)
    )


def test_preferred_batch_sizes_are_those_that_pay():
    profiles = [
        {"batchSize": 1, "throughputRps": 100},
        {"batchSize": 8, "throughputRps": 300},
        {"batchSize": 32, "throughputRps": 301},
    ]
    assert _preferred(profiles) == [1, 8]


def test_request_of_an_unknown_version_is_refused():
    with pytest.raises(ValueError, match="requestVersion"):
        BuildRequest.model_validate(
            {
                "requestVersion": 2,
                "modelName": "m",
                "pool": "p",
                "device": "cpu",
                "repository": "/r",
                "model": {"uri": "pvc://a/b", "format": "onnx", "inputs": [], "outputs": []},
            }
        )


def test_summary_table_lists_every_variant():
    table = summary_table(
        {
            "variants": [
                {
                    "name": "fp32",
                    "status": "accepted",
                    "accuracy": 1.0,
                    "profiles": [{"batchSize": 1, "p95Ms": 2.5, "throughputRps": 400.0}],
                },
                {"name": "fp16", "status": "skipped", "reason": "needs a GPU"},
            ]
        }
    )
    assert "fp32" in table and "2.50" in table and "needs a GPU" in table


def test_padding_positions_do_not_count_in_the_guard():
    from lepton_builder.accuracy import mask_padding

    mask = np.array([[1, 1, 0]])
    base = [np.ones((1, 3, 2))]
    noisy = [np.array([[[1.0, 1.0], [1.0, 1.0], [-5.0, 9.0]]])]
    assert min_cosine(base, noisy) < 0.5
    assert min_cosine(mask_padding(base, mask), mask_padding(noisy, mask)) == pytest.approx(1.0)
    logits = [np.ones((1, 10))]
    assert mask_padding(logits, mask)[0] is logits[0]  # other shapes untouched
