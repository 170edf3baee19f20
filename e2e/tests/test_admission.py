"""Bad LeptonModels are refused at admission by the real apiserver, naming the field.

Each case changes one thing in a valid model; `kubectl apply --dry-run=server` must
fail and its message must name the offending field (schema, CEL rule or strict field
validation). The valid model itself must pass, so the cases cannot pass by accident.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_e2e.fixtures import Kube

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
VALID: dict[str, Any] = yaml.safe_load((REPO / "examples" / "minilm.yaml").read_text())
CPU_POOL = {
    "name": "cpu",
    "nodeSelector": {"lepton.ai/pool": "cpu-standard"},
    "hourlyPriceUSD": 0.34,
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()
INPUT = {"name": "input_ids", "dtype": "int64", "shape": [-1]}

# (case id, mutation(s), text the error must contain)
CASES: list[tuple[str, list[Callable[[dict[str, Any]], None]], str]] = [
    ("missing-model", [_set("spec.model", _DELETE)], "spec.model: Required value"),
    ("missing-slo", [_set("spec.slo", _DELETE)], "spec.slo: Required value"),
    ("uri-scheme", [_set("spec.model.uri", "ftp://host/m")], "spec.model.uri"),
    ("format-unknown", [_set("spec.model.format", "pickle")], "spec.model.format"),
    ("sha256-short", [_set("spec.model.sha256", "abc")], "spec.model.sha256"),
    ("no-inputs", [_set("spec.model.inputs", [])], "spec.model.inputs"),
    ("input-dtype", [_set("spec.model.inputs.0.dtype", "float")], "spec.model.inputs[0].dtype"),
    ("input-shape", [_set("spec.model.inputs.0.shape", [-2])], "spec.model.inputs[0].shape[0]"),
    (
        "input-duplicate",
        [_set("spec.model.inputs", [INPUT, INPUT])],
        "spec.model.inputs[1]: Duplicate value",
    ),
    ("input-name", [_set("spec.model.inputs.0.name", "1 bad")], "spec.model.inputs[0].name"),
    ("slo-zero", [_set("spec.slo.p95LatencyMs", 0)], "spec.slo.p95LatencyMs"),
    ("slo-text", [_set("spec.slo.p95LatencyMs", "fast")], "spec.slo.p95LatencyMs"),
    ("budget-negative", [_set("spec.budget.maxHourlyUSD", -1)], "spec.budget.maxHourlyUSD"),
    (
        "min-over-max",
        [_set("spec.scaling.minReplicas", 5), _set("spec.scaling.maxReplicas", 2)],
        "spec.scaling.minReplicas: Invalid value: minReplicas must not exceed",
    ),
    (
        "zero-without-scale-to-zero",
        [_set("spec.scaling.minReplicas", 0)],
        "minReplicas 0 needs scaleToZero: true",
    ),
    ("max-zero", [_set("spec.scaling.maxReplicas", 0)], "spec.scaling.maxReplicas"),
    (
        "variant-unknown",
        [_set("spec.optimization.variants", ["int4"])],
        "spec.optimization.variants[0]",
    ),
    (
        "variant-duplicate",
        [_set("spec.optimization.variants", ["fp32", "fp32"])],
        "spec.optimization.variants[1]: Duplicate value",
    ),
    ("batch-zero", [_set("spec.optimization.batchSizes", [0])], "spec.optimization.batchSizes[0]"),
    (
        "metric-unknown",
        [_set("spec.optimization.accuracy.metric", "f1")],
        "spec.optimization.accuracy.metric",
    ),
    (
        "cosine-over-one",
        [_set("spec.optimization.accuracy.tolerance", 1.5)],
        "spec.optimization.accuracy.tolerance",
    ),
    (
        "gpu-variant-cpu-pool",
        [_set("spec.optimization.variants", ["fp16"]), _set("spec.pools", [CPU_POOL])],
        "spec.optimization.variants: Invalid value: a GPU-only variant",
    ),
    (
        "onnx-with-torch-variant",
        [_set("spec.model.format", "onnx"), _set("spec.optimization.variants", ["torchscript"])],
        "an onnx model can only build",
    ),
    (
        "hf-needs-safetensors",
        [_set("spec.model.uri", "hf://org/model"), _set("spec.model.format", "onnx")],
        "spec.model.format: Invalid value: an hf:// model must have format",
    ),
    (
        "pool-without-price",
        [_set("spec.pools", [{"name": "cpu"}])],
        "spec.pools[0].hourlyPriceUSD: Required value",
    ),
    (
        "pool-duplicate",
        [_set("spec.pools", [CPU_POOL, CPU_POOL])],
        "spec.pools[1]: Duplicate value",
    ),
    ("pool-name", [_set("spec.pools", [{**CPU_POOL, "name": "GPU_Pool"}])], "spec.pools[0].name"),
    (
        "accelerator-count",
        [_set("spec.pools", [{**CPU_POOL, "accelerator": {"type": "nvidia-l4", "count": 0}}])],
        "spec.pools[0].accelerator.count",
    ),
    (
        "replicas-over-max",
        [_set("spec.replicas", 10)],
        "replicas must lie within scaling.minReplicas and scaling.maxReplicas",
    ),
    (
        "calibration-scheme",
        [_set("spec.optimization.calibrationUri", "file:///x")],
        "spec.optimization.calibrationUri",
    ),
    ("unknown-field", [_set("spec.modle", {})], 'unknown field "spec.modle"'),
    ("name-too-long", [_set("metadata.name", "m" * 43)], "metadata.name must be a DNS-1035"),
    (
        "name-starts-with-digit",
        [_set("metadata.name", "1minilm")],
        "metadata.name must be a DNS-1035",
    ),
]


@pytest.fixture(scope="module")
def crd(kube: Kube) -> None:
    kube.install_crds()


def _dry_run(kube: Kube, doc: dict[str, Any], namespace: str) -> Any:
    return kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(doc), check=False
    )


@pytest.mark.parametrize(
    "example", sorted(p.name for p in (REPO / "examples").glob("*.yaml")), ids=str
)
def test_every_example_applies_cleanly(kube: Kube, crd: None, namespace: str, example: str) -> None:
    result = kube.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        str(REPO / "examples" / example),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "(server dry run)" in result.stdout


def test_at_least_25_distinct_mistakes_are_covered() -> None:
    assert len({case for case, _, _ in CASES}) >= 25


@pytest.mark.parametrize(("case", "mutations", "expected"), CASES, ids=[c[0] for c in CASES])
def test_invalid_model_is_rejected_naming_the_field(
    kube: Kube,
    crd: None,
    namespace: str,
    case: str,
    mutations: list[Callable[[dict[str, Any]], None]],
    expected: str,
) -> None:
    doc = copy.deepcopy(VALID)
    for mutate in mutations:
        mutate(doc)
    result = _dry_run(kube, doc, namespace)
    assert result.returncode != 0, f"{case} was admitted"
    assert expected in result.stderr, result.stderr
