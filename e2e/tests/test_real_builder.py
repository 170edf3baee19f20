"""The operator's build Job runs the real builder (lepton-build) as a process pod.

A digits CNN is trained here, put on a PVC of the model's namespace, and referenced as
``pvc://models/digits.pt``; the Job mounts that claim read-only at /sources/models,
builds and profiles every CPU variant, writes the Triton model repository onto the
model volume and hands its report back through the report ConfigMap. The figures in
status are measured, not fixed. With ``servingSearch`` on, the same Job also serves the
variant on a real tritonserver under each configuration it tries, and the planner sizes
from what Triton served.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import text_format  # type: ignore[import-untyped]  # no stubs shipped
from tritonclient.grpc import model_config_pb2

from lepton_builder.selection import DEFAULT_VARIANTS
from lepton_e2e import models
from lepton_e2e.cluster import state_root
from lepton_e2e.fixtures import Kube, installed_operator, models_claim, wait_for
from lepton_e2e.lanes import Lane

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUILDER = "ghcr.io/lepton-ai/lepton-builder:0.1.0"


# The search's capacity is the busiest level within the SLO. 50 ms read 0 req/s for the
# default configuration on a busy hour (the lanes and the integration tests beside it on
# two cores: even a lone request queued past it); the test is about the search, not speed.
SEARCH_SLO_MS = 250


@pytest.fixture(scope="module")
def operator(kube: Kube, lane: Lane) -> Iterator[None]:
    # The serving search measures each load level 1 s instead of 3: the test checks what
    # the search does with its figures, not their precision (issue 27: test timings from
    # the operator's own configuration).
    with installed_operator(kube, BUILDER, "config.builds.searchSecondsPerLevel=1", lane=lane):
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


def _built(kube: Kube, namespace: str, doc: dict[str, Any], timeout: float) -> dict[str, Any]:
    """A digits CNN trained onto the namespace's models claim, ``doc`` applied, and its
    status once Ready."""
    claim = models_claim(kube, namespace)
    trained = models.train_digits(claim)
    assert trained.test_accuracy > 0.9
    kube.apply(doc, namespace=namespace)

    def ready() -> dict[str, Any] | None:
        status: dict[str, Any] = kube.get("lm", "digits", namespace).get("status") or {}
        assert status.get("phase") != "Failed", status
        return status if status.get("phase") == "Ready" else None

    ready_status: dict[str, Any] = wait_for(ready, timeout=timeout, interval=2, what="digits Ready")
    return ready_status


def test_real_builder_job_builds_profiles_and_reports_every_variant(
    kube: Kube, namespace: str, operator: None
) -> None:
    status = _built(kube, namespace, _digits_model(), timeout=300)
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


def test_the_build_job_searches_serving_configurations_and_the_planner_sizes_from_them(
    kube: Kube, namespace: str, operator: None
) -> None:
    """``servingSearch`` on: the build Job's pod serves each accepted variant (the one
    asked for and the fp32 baseline) under each configuration it tries on a real
    tritonserver (the nvidia-pytriton wheel's, found as in the builder image, with no
    tritonserver on PATH); the report carries the table, status its summary, the model
    repository holds the chosen configuration, and the planner's figures come from what
    Triton served: the status row shows the busiest level within the SLO under the
    chosen configuration, and before any traffic the plan (the live planner given no
    traffic) predicts what a lone client saw on Triton, not the in-process profile."""
    doc = _digits_model()
    doc["spec"]["optimization"].update(variants=["onnx"], servingSearch=True)
    doc["spec"]["slo"] = {"p95LatencyMs": SEARCH_SLO_MS}
    status = _built(kube, namespace, doc, timeout=600)

    (report_cm,) = kube.list(
        "configmap", namespace, "lepton.ai/model=digits,lepton.ai/component=build-report"
    )
    report = json.loads(report_cm["data"]["report.json"])
    accepted = {v["name"]: v for v in report["variants"] if v["status"] == "accepted"}
    assert "onnx" in accepted, report["variants"]
    rows = {r["variant"]: r for r in status["variants"]}
    for name, variant in accepted.items():
        search = variant["servingSearch"]
        assert "skipped" not in search, (name, search)
        assert len(search["trials"]) >= 2
        for trial in search["trials"]:
            assert [level["batchSize"] for level in trial["levels"]] == [1, 4, 8]
            assert all(lv["requests"] > 0 and lv["failed"] == 0 for lv in trial["levels"])
        assert search["chosen"]["capacityRps"] >= search["default"]["capacityRps"] > 0
        summary = rows[name]["servingConfig"]
        pattern = rf"req/s within {SEARCH_SLO_MS} ms p95 \(default [0-9.]+\)$"
        assert re.search(pattern, summary), summary

    decision = status["decision"]
    served = accepted[decision["variant"]]
    chosen = served["servingSearch"]["chosen"]
    repository = state_root() / "pvcs" / namespace / "digits-models" / status["buildHash"]
    written = (repository / "cpu-standard" / served["name"] / "digits" / "config.pbtxt").read_text()
    config = text_format.Parse(written, model_config_pb2.ModelConfig())  # Triton's own schema
    (group,) = config.instance_group
    assert (group.count, group.kind) == (
        chosen["config"]["instances"],
        model_config_pb2.ModelInstanceGroup.KIND_CPU,
    )
    delay = config.dynamic_batching.max_queue_delay_microseconds
    assert delay == chosen["config"]["maxQueueDelayUs"]

    # The status row: the busiest load level within the SLO that Triton served under the
    # chosen configuration. No traffic yet: the plan's p95 is a lone client's on Triton.
    within = [lv for lv in chosen["levels"] if lv["p95Ms"] <= SEARCH_SLO_MS]
    on_triton = max(within, key=lambda lv: lv["throughputRps"])
    lone = min(chosen["levels"], key=lambda lv: lv["batchSize"])
    in_process = [p["p95Ms"] for p in served["profiles"]]
    assert rows[served["name"]]["p95Ms"] == pytest.approx(on_triton["p95Ms"], abs=0.001)
    assert decision["predictedP95Ms"] == pytest.approx(lone["p95Ms"], abs=0.001), decision
    for figure in (on_triton["p95Ms"], lone["p95Ms"]):
        assert all(abs(figure - p95) > 0.001 for p95 in in_process), in_process
    print(decision["reason"], {n: rows[n]["servingConfig"] for n in accepted})
