"""The operator's build Job runs the real builder (lepton-build) as a process pod.

A digits CNN is trained here, put on a PVC of the model's namespace, and referenced as
``pvc://models/digits.pt``; the Job mounts that claim read-only at /sources/models,
builds and profiles every CPU variant, writes the Triton model repository onto the
model volume and hands its report back through the report ConfigMap. The figures in
status are measured, not fixed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_builder.selection import DEFAULT_VARIANTS
from lepton_e2e import models
from lepton_e2e.cluster import state_root
from lepton_e2e.fixtures import Kube, installed_operator, model_namespace, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUILDER = "ghcr.io/lepton-ai/lepton-builder:0.1.0"


@pytest.fixture(scope="module")
def operator(kube: Kube) -> Iterator[None]:
    with installed_operator(kube, BUILDER):
        yield


def _digits_model() -> dict[str, Any]:
    doc = copy.deepcopy(yaml.safe_load((REPO / "examples" / "minilm.yaml").read_text()))
    doc["metadata"]["name"] = "digits"
    doc["spec"]["model"] = {
        "uri": "pvc://models/digits.pt",
        "format": "torchscript",
        "inputs": models.DIGITS_INPUTS,
        "outputs": models.DIGITS_OUTPUTS,
    }
    doc["spec"]["optimization"] = {
        "batchSizes": [1, 16],
        "calibrationUri": "pvc://models/digits-calibration.npz",
        "accuracy": {"metric": "top1-agreement", "tolerance": 0.98},
    }
    doc["spec"]["pools"] = [
        {
            "name": "cpu-standard",
            "nodeSelector": {"lepton.ai/pool": "cpu-standard"},
            "hourlyPriceUSD": 0.34,
            "resources": {"cpu": "2", "memory": "4Gi"},
        }
    ]
    return doc


def test_real_builder_job_builds_profiles_and_reports_every_variant(
    kube: Kube, namespace: str, operator: None
) -> None:
    model_namespace(kube, namespace)
    wait_for(
        lambda: kube.get("pvc", "models", namespace)["status"].get("phase") == "Bound",
        what="the models claim bound",
    )
    trained = models.train_digits(state_root() / "pvcs" / namespace / "models")
    assert trained.test_accuracy > 0.9

    kube.apply(_digits_model(), namespace=namespace)

    def ready() -> dict[str, Any] | None:
        status: dict[str, Any] = kube.get("lm", "digits", namespace).get("status") or {}
        assert status.get("phase") != "Failed", status
        return status if status.get("phase") == "Ready" else None

    status = wait_for(ready, timeout=300, interval=2, what="digits Ready")
    rows = {row["variant"]: row for row in status["variants"]}
    assert set(rows) == set(DEFAULT_VARIANTS)  # every default variant: built, or why not
    for name in ("fp32", "onnx", "torchscript"):
        row = rows[name]
        assert row["accepted"] and row["accuracy"] == 1.0, row
        assert 0 < row["p50Ms"] <= row["p95Ms"] and row["throughputRps"] > 0
        assert row["costPer1kUSD"] > 0
    assert "eager torch model" in rows["int8-dynamic"]["reason"]
    assert rows["fp16"]["reason"].startswith("needs a GPU")

    decision = status["decision"]
    assert rows[decision["variant"]]["accepted"] and decision["pool"] == "cpu-standard"
    # The repository the build wrote is on the model volume, and Triton is told to load it.
    build = status["buildHash"]
    variant = decision["variant"]
    repository = state_root() / "pvcs" / namespace / "digits-models" / build / "cpu-standard"
    assert (repository / variant / "digits" / "config.pbtxt").exists()
    args = kube.get("deployment", "digits-cpu-standard", namespace)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    # The variant's own folder; the model under the LeptonModel's name, whatever variant.
    assert "--load-model=digits" in args
    assert f"--model-repository=/models/{build}/cpu-standard/{variant}" in args
