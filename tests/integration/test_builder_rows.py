"""Honest rows on the real digits model: a calibration set too small to keep a quarter
out fails the trained variants with that reason while the others are judged, and a
tensorrt request is a skipped row saying why; the Job itself finishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_builder.cli import main
from lepton_e2e import models

pytestmark = pytest.mark.integration


def test_three_calibration_samples_fail_only_the_trained_variants(digits, tmp_path: Path):
    calibration = np.load(digits.sources_root / "models" / "digits-calibration.npz")
    np.savez(digits.sources_root / "models" / "three.npz", pixels=calibration["pixels"][:3])
    request: dict[str, Any] = {
        "requestVersion": 1,
        "modelName": "digits",
        "pool": "cpu",
        "device": "cpu",
        "model": {
            "uri": digits.uri,
            "format": "torchscript",
            "inputs": models.DIGITS_INPUTS,
            "outputs": models.DIGITS_OUTPUTS,
        },
        "optimization": {
            "variants": ["onnx", "pruned-10", "distilled", "tensorrt"],
            "batchSizes": [1],
            "calibrationUri": "pvc://models/three.npz",
            "accuracy": {"metric": "top1-agreement", "tolerance": 0.98, "minSamples": 1},
            "trainingSeconds": 1,
        },
        "repository": str(tmp_path / "repository"),
    }
    report_file = tmp_path / "report.json"
    argv = ["--request", json.dumps(request), "--report-file", str(report_file)]
    fast = ["--profile-seconds", "0.1", "--min-iterations", "3", "--threads", "2"]
    assert main([*argv, "--sources-root", str(digits.sources_root), *fast]) == 0
    rows = {row["name"]: row for row in json.loads(report_file.read_text())["variants"]}
    assert rows["onnx"]["status"] == "accepted"
    for trained in ("pruned-10", "distilled"):
        assert rows[trained]["status"] == "failed"
        assert "at least 4 calibration samples" in rows[trained]["reason"], trained
    assert rows["tensorrt"]["status"] == "skipped" and rows["tensorrt"]["reason"]
