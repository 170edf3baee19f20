"""Real models for the builder's tests (see lepton_e2e.models): made here, never downloaded."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lepton_builder.cli import main as build_main
from lepton_e2e import models
from lepton_operator.report import BuildReport, parse_report

# Real sentences for MiniLM's tests: enough that a trained or calibrated variant is
# judged on the guard's minimum (16 held out), few enough for 2 cores.
MINILM_SENTENCES = 64


@dataclass
class SourceModel:
    sources_root: Path
    uri: str
    calibration_uri: str | None
    extra: Any


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> SourceModel:
    root = tmp_path_factory.mktemp("digits-sources")
    trained = models.train_digits(root / "models")
    return SourceModel(
        root, "pvc://models/digits.pt", "pvc://models/digits-calibration.npz", trained
    )


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> SourceModel:
    root = tmp_path_factory.mktemp("minilm-sources")
    models.copy_minilm(root / "models", sentences=MINILM_SENTENCES)
    return SourceModel(root, "pvc://models/minilm", "pvc://models/minilm-calibration.npz", None)


BuildDigits = Callable[..., BuildReport]


@pytest.fixture(scope="session")
def build_digits(digits: SourceModel) -> BuildDigits:
    """The real builder on the digits model, as a function of the variants, the
    repository folder and an optional upload target."""

    def build(
        work: Path,
        variants: list[str],
        repository: Path,
        upload: dict[str, str] | None = None,
        **fields: Any,
    ) -> BuildReport:
        """Run the real builder on the digits model, profiling briefly (the tests that use
        it serve the repository; they do not judge speed), and return its parsed report.
        ``fields``: the request's other fields (``modelName``, ``buildCache``, ...)."""
        request: dict[str, Any] = {
            "requestVersion": 1,
            "modelName": "digits",
            "pool": "cpu-standard",
            "device": "cpu",
            "model": {
                "uri": digits.uri,
                "format": "torchscript",
                "inputs": models.DIGITS_INPUTS,
                "outputs": models.DIGITS_OUTPUTS,
            },
            "optimization": {
                "variants": variants,
                "batchSizes": [1, 4],
                "calibrationUri": digits.calibration_uri,
                "accuracy": {"metric": "top1-agreement", "tolerance": 0.98},
            },
            "repository": str(repository),
        }
        if upload is not None:
            request["upload"] = upload
        request.update(fields)
        report_file = work / "report.json"
        argv = ["--request", json.dumps(request), "--report-file", str(report_file)]
        fast = ["--profile-seconds", "0.2", "--min-iterations", "3", "--threads", "2"]
        assert build_main([*argv, "--sources-root", str(digits.sources_root), *fast]) == 0
        return parse_report(report_file.read_text())

    return build
