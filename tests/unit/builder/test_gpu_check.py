"""``make gpu-check``'s two halves: MiniLM travels to the GPU machine with only the
embedding rows its inputs read and comes back exact on those inputs; the report's rows
become gpu.json's with speedups over the same build's fp32 and every unbuilt variant's
reason kept."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "runtimes" / "builder"))

import gpu_check


def test_the_kept_rows_come_back_in_place_and_only_they_travel():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((1000, 8)).astype(np.float32)
    other = rng.standard_normal((4, 8)).astype(np.float32)
    token_ids = np.array([[101, 7, 7, 102], [101, 999, 0, 0]])

    packed = gpu_check.keep_rows(
        {gpu_check.WORD_EMBEDDINGS: table, "encoder.weight": other}, token_ids
    )
    assert packed[gpu_check.WORD_EMBEDDINGS].shape == (5, 8)  # 0, 7, 101, 102, 999

    restored = gpu_check.restore_rows(packed, vocabulary=1000)
    assert gpu_check.USED_ROWS not in restored
    np.testing.assert_array_equal(restored["encoder.weight"], other)
    full = restored[gpu_check.WORD_EMBEDDINGS]
    assert full.shape == table.shape
    # Every row an input reads is the model's own; the others are never read.
    np.testing.assert_array_equal(full[token_ids], table[token_ids])
    assert not full[np.setdiff1d(np.arange(1000), token_ids)].any()


def _profile(batch: int, p50: float) -> dict[str, Any]:
    return {"batchSize": batch, "p50Ms": p50, "p95Ms": p50 * 1.2, "throughputRps": batch / p50}


def _report(variants: list[dict[str, Any]]) -> dict[str, Any]:
    return {"guard": {"metric": "cosine"}, "buildSeconds": 12.0, "variants": variants}


def test_rows_speed_up_over_the_same_builds_fp32_and_keep_the_reasons():
    report = _report(
        [
            {
                "name": "fp32",
                "status": "accepted",
                "profiles": [_profile(1, 4.0), _profile(8, 8.0)],
            },
            {
                "name": "fp16",
                "status": "accepted",
                "accuracy": 0.9999,
                "accuracyTail": 0.9995,
                "profiles": [_profile(1, 2.0), _profile(8, 2.0)],
            },
            {"name": "onnx", "status": "skipped", "reason": "no CUDA provider"},
        ]
    )
    rows = {r["variant"]: r for r in gpu_check.rows(report)}

    assert rows["fp16"]["speedupB1"] == 2.0 and rows["fp16"]["speedupB8"] == 4.0
    assert rows["fp16"]["p95MsB1"] == 2.4 and rows["fp16"]["throughputBest"] == 4.0
    assert rows["fp16"]["accepted"] and rows["fp16"]["mean"] == 0.9999
    assert not rows["onnx"]["accepted"] and rows["onnx"]["reason"] == "no CUDA provider"
    assert rows["onnx"]["speedupB1"] is None


def test_each_build_adds_its_variants_and_fp32_is_kept_once():
    fp32 = {"name": "fp32", "status": "accepted", "profiles": [_profile(1, 4.0)]}
    compiled = {"name": "torch-compile", "status": "skipped", "reason": "profiled only"}
    document: dict[str, Any] = {"models": []}

    gpu_check.merge(document, "digits", _report([fp32]))
    gpu_check.merge(document, "digits", _report([fp32, compiled]))

    (entry,) = document["models"]
    assert [v["variant"] for v in entry["variants"]] == ["fp32", "torch-compile"]
    assert entry["buildSeconds"] == [12.0, 12.0]


def test_the_checks_builds_cover_every_gpu_variant_and_compile_last():
    from lepton_builder.selection import GPU_VARIANTS

    planned = [(m, o["variants"]) for m, o in gpu_check.builds(gpu_check.GPU_PLAN)]
    covered = {v for _, variants in planned for v in variants}
    # pruned-10/40 are the same code as pruned-25 at another ratio: one travels.
    assert covered >= set(GPU_VARIANTS) - {"pruned-10", "pruned-40"}
    assert all(variants == gpu_check.COMPILED for _, variants in planned[-2:])
    assert gpu_check.GPU_PLAN.batch_sizes == [1, 8, 32, 128]


def test_two_parts_cover_the_check_once_and_merge_into_one_document():
    plan = gpu_check.GPU_PLAN
    served, compiled = gpu_check.builds(plan, "served"), gpu_check.builds(plan, "compiled")
    assert served + compiled == gpu_check.builds(plan)
    assert all(o["variants"] == gpu_check.COMPILED for _, o in compiled)

    fp32 = {"name": "fp32", "status": "accepted", "profiles": [_profile(1, 4.0)]}
    compiled_row = {"name": "torch-compile", "status": "skipped", "reason": "profiled only"}
    first: dict[str, Any] = {"models": []}
    gpu_check.merge(first, "digits", _report([fp32]))
    second: dict[str, Any] = {"models": [], "failedBuilds": [{"model": "minilm"}]}
    gpu_check.merge(second, "digits", _report([fp32, compiled_row]))
    gpu_check.merge(second, "minilm", _report([fp32]))

    merged = gpu_check.merge_documents(first, second)
    digits, minilm = merged["models"]
    assert [v["variant"] for v in digits["variants"]] == ["fp32", "torch-compile"]
    assert digits["buildSeconds"] == [12.0, 12.0] and minilm["model"] == "minilm"
    assert merged["failedBuilds"] == [{"model": "minilm"}]
