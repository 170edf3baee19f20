"""Hostile input, property-based: generated LeptonModel specs through pydantic and the
operator's own reconcile pass (``Reconciler.reconcile``, against an in-memory Kubernetes).

The documents come from ``lepton_e2e.spec_strategies``, which reads the spec's schema
off the generated CRD: valid ones, and valid ones with one targeted mutation that
carries the path of the field it broke. The e2e twin
(``e2e/tests/test_admission_properties.py``) sends the same kinds of documents to the
real apiserver and the running operator.

Examples, fixed (``derandomize=True``: the seed is a hash of the test, no example
database), so every run and every machine tests the same documents:

- 300 valid documents: ``parse_spec`` accepts each, and the reconcile pass never raises
  on it, through a first pass (builds), a second (build reports in, a decision), a third
  (serving Ready, live figures in) and a fourth (between two Prometheus reads). Every status
  it writes is JSON (no NaN or infinity, which the apiserver refuses, leaving the
  operator retrying a patch forever), fits the status schema, and every condition
  carries a reason.
- 25 mutated documents for each of the 13 kinds of mutation (325 in all): pydantic
  rejects each with an error whose ``loc`` is the broken field (or inside it), and the
  reconcile pass turns it into ``Valid=False`` naming that field, creating nothing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from pydantic import ValidationError

from lepton_e2e import spec_strategies
from lepton_e2e.spec_strategies import Case
from lepton_operator.api import LeptonModelStatus, parse_spec
from lepton_operator.config import OperatorConfig
from lepton_operator.kube import is_owned_by, owner_reference
from lepton_operator.live.sample import LiveSample
from lepton_operator.reconcile import Outcome, Reconciler
from lepton_operator.report import REPORT_KEY

VALID_EXAMPLES = 300
EXAMPLES_PER_KIND = 25
SETTINGS: dict[str, Any] = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    # No shrinking: a failure is reported as generated, at once (shrinking a document
    # through four reconcile passes can take Hypothesis's full five minutes).
    "phases": [Phase.explicit, Phase.generate],
}

CONFIG: dict[str, Any] = {
    "prometheus": {"url": "http://prometheus:9090"},
    "images": {"builder": "example/builder:1", "triton": "example/triton:1"},
    "pools": [
        {
            "name": "cpu-standard",
            "nodeSelector": {"lepton.ai/pool": "cpu-standard"},
            "hourlyPriceUSD": 0.34,
            "resources": {"cpu": "2", "memory": "4Gi"},
        },
        {
            "name": "gpu-l4",
            "nodeSelector": {"lepton.ai/pool": "gpu-l4"},
            "accelerator": {"type": "nvidia-l4"},
            "hourlyPriceUSD": 0.81,
        },
    ],
}


class MemoryKube:
    """The Kubernetes adapter's surface, in memory (as in test_reconcile.py)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes = 0

    def apply(self, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        body = copy.deepcopy(obj)
        body["metadata"]["ownerReferences"] = [owner_reference(owner)]
        current = self.objects.get(key)
        if current is not None and "status" in current:
            body["status"] = current["status"]
        if current != body:
            self.writes += 1
        self.objects[key] = body
        return copy.deepcopy(body)

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        wanted = dict(part.split("=") for part in selector.split(","))
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if k == kind
            and ns == namespace
            and all((o["metadata"].get("labels") or {}).get(a) == b for a, b in wanted.items())
        ]

    def list_owned(
        self, api_version: str, kind: str, namespace: str, selector: str, owner_uid: str
    ) -> list[dict[str, Any]]:
        return [
            o
            for o in self.list_labelled(api_version, kind, namespace, selector)
            if is_owned_by(o, owner_uid)
        ]

    def delete_owned(self, obj: dict[str, Any], owner_uid: str) -> bool:
        meta = obj["metadata"]
        if not is_owned_by(obj, owner_uid):
            return False
        self.writes += 1
        return self.objects.pop((obj["kind"], meta["namespace"], meta["name"]), None) is not None

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> None:
        status = self.objects[(kind, namespace, name)].setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        for new in patch["status"]["conditions"]:
            conditions[:] = [c for c in conditions if c["type"] != new["type"]] + [new]
        self.writes += 1

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for (k, _, _), o in self.objects.items() if k == kind]


class SteadyLive:
    """Prometheus answering the same figures every time."""

    def sample(self, namespace: str, model: str) -> LiveSample:
        return LiveSample(
            timestamp=0.0,
            request_rate_rps=40.0,
            failure_rate_rps=0.0,
            p95_ms=20.0,
            p99_ms=30.0,
            mean_ms=10.0,
            queue_mean_ms=0.1,
            queue_p95_ms=0.2,
            gpu_utilization=None,
        )


def _body(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "lepton.ai/v1alpha1",
        "kind": "LeptonModel",
        "metadata": {"name": "hostile", "namespace": "ml", "uid": "lm-uid", "generation": 1},
        "spec": copy.deepcopy(spec),
        "status": copy.deepcopy(status or {}),
    }


def _claims(kube: MemoryKube, spec: dict[str, Any]) -> None:
    """Every claim a pvc:// URI names exists, so the pass goes on to build."""
    for uri in (spec["model"]["uri"], spec.get("optimization", {}).get("calibrationUri")):
        if uri and uri.startswith("pvc://"):
            claim = uri.removeprefix("pvc://").split("/", 1)[0]
            kube.objects[("PersistentVolumeClaim", "ml", claim)] = {
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": "ml", "labels": {}},
            }


CPU_VARIANTS = {"fp32": (24.0, 45.0), "onnx-int8": (9.0, 118.0), "int8-dynamic": (10.0, 100.0)}
GPU_VARIANTS = {"fp16": (4.9, 1900.0), "torch-compile": (2.2, 4950.0)}


def _finish_builds(kube: MemoryKube) -> None:
    """Each build Job completes with a report of the variants it was asked for."""
    for job in kube.of_kind("Job"):
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        request = json.loads(job["spec"]["template"]["spec"]["containers"][0]["args"][1])
        figures = GPU_VARIANTS if request["device"] == "cuda" else CPU_VARIANTS
        asked = request["optimization"].get("variants") or list(figures)
        batches = request["optimization"].get("batchSizes") or [1]
        report = {
            "schemaVersion": 1,
            "pool": request["pool"],
            "device": request["device"],
            "accuracyMetric": request["optimization"]["accuracy"]["metric"],
            "repository": request["repository"],
            "variants": [
                {
                    "name": name,
                    "status": "accepted",
                    "accuracy": 0.995,
                    "tritonModel": "m",
                    "profiles": [
                        {
                            "batchSize": batch,
                            "p50Ms": p95 / 2 * batch,
                            "p95Ms": p95 * batch,
                            "p99Ms": p95 * 1.2 * batch,
                            "throughputRps": rps,
                        }
                        for batch in batches
                    ],
                }
                for name, (p95, rps) in figures.items()
                if name in asked
            ],
        }
        kube.objects[("ConfigMap", "ml", request["reportConfigMap"])]["data"] = {
            REPORT_KEY: json.dumps(report)
        }


def _ready_deployments(kube: MemoryKube) -> None:
    for deployment in kube.of_kind("Deployment"):
        replicas = deployment["spec"]["replicas"]
        deployment["status"] = {"readyReplicas": replicas, "availableReplicas": replicas}


def _check_status(outcome: Outcome, context: str) -> dict[str, Any]:
    status = outcome.wire()
    text = json.dumps(status, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text) == status, context
    LeptonModelStatus.model_validate(status)
    assert status.get("phase"), context
    for condition in status.get("conditions") or []:
        assert condition["reason"] and condition["message"] is not None, (context, condition)
    assert all(event.reason for event in outcome.events), context
    return status


def _extreme(**changes: Any) -> Case:
    spec: dict[str, Any] = {
        "model": {
            "uri": "pvc://models/m",
            "format": "safetensors",
            "inputs": [{"name": "x", "dtype": "fp32", "shape": [-1]}],
            "outputs": [{"name": "y", "dtype": "fp32", "shape": [-1]}],
        },
        "slo": {"p95LatencyMs": 1},
    }
    spec.update(changes)
    return Case(spec, None)


@settings(max_examples=VALID_EXAMPLES, **SETTINGS)
@given(case=spec_strategies.cases("valid"))
# Found by this test: a price near the float limit made a plan's cost infinite, which no
# JSON status can carry (hourlyPriceUSD is bounded since); the most the bounds allow:
@example(
    case=_extreme(
        pools=[{"name": "dear", "hourlyPriceUSD": 1_000_000}],
        scaling={"minReplicas": 1000, "maxReplicas": 1000},
    )
)
@example(case=_extreme(slo={"p95LatencyMs": 5e-324, "minThroughputRps": 1.7976931348623157e308}))
def test_valid_specs_parse_and_never_break_the_reconcile_pass(case: Case) -> None:
    parse_spec(copy.deepcopy(case.spec))
    config = OperatorConfig.model_validate(copy.deepcopy(CONFIG))
    kube = MemoryKube()
    _claims(kube, case.spec)
    clock = iter(f"2026-11-24T00:00:{s:02d}Z" for s in range(0, 60, 15))
    now = next(clock)
    reconciler = Reconciler(kube, config, clock=lambda: now, live=SteadyLive())  # type: ignore[arg-type]

    status = _check_status(reconciler.reconcile(_body(case.spec)), "first pass")
    assert status["phase"] in ("Building", "Failed", "Pending"), status
    _finish_builds(kube)
    now = next(clock)
    status = _check_status(reconciler.reconcile(_body(case.spec, status)), "builds done")
    _ready_deployments(kube)
    now = next(clock)
    status = _check_status(reconciler.reconcile(_body(case.spec, status)), "serving")
    _check_status(reconciler.reconcile(_body(case.spec, status)), "between two reads")


@pytest.mark.parametrize("kind", spec_strategies.KINDS)
def test_each_mutation_is_refused_naming_the_field(kind: str) -> None:
    @settings(max_examples=EXAMPLES_PER_KIND, **SETTINGS)
    @given(case=spec_strategies.cases(kind))
    def refused(case: Case) -> None:
        assert case.mutation is not None
        path = case.mutation.path
        with pytest.raises(ValidationError) as raised:
            parse_spec(copy.deepcopy(case.spec))
        locs = [tuple(e["loc"]) for e in raised.value.errors()]
        assert any(loc[: len(path)] == path for loc in locs), (case.mutation, locs)

        kube = MemoryKube()
        config = OperatorConfig.model_validate(copy.deepcopy(CONFIG))
        outcome = Reconciler(kube, config, clock=lambda: "2026-11-24T00:00:00Z").reconcile(  # type: ignore[arg-type]
            _body(case.spec)
        )
        valid = next(c for c in outcome.wire()["conditions"] if c["type"] == "Valid")
        dotted = ".".join(["spec", *(str(p) for p in path)])
        assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
        assert dotted in valid["message"], (dotted, valid["message"])
        assert kube.objects == {}

    refused()


def test_the_strategies_know_every_cel_rule_of_the_crd() -> None:
    """A CEL rule added to the models must be taught to the strategies (a repair and a
    violation), or valid documents would break it and invalid ones never would."""
    assert spec_strategies.unknown_cel_rules() == []


def test_an_unmeetable_slo_settles_on_one_pool() -> None:
    """Found by the valid-spec property: with no option meeting the SLO, the planner
    served "the fastest affordable" and alternated between two pools of equal profiles
    every pass (a Decision Event and a Deployment change each time)."""
    case = _extreme(pools=[{"name": "a", "hourlyPriceUSD": 2}, {"name": "b", "hourlyPriceUSD": 1}])
    config = OperatorConfig.model_validate(copy.deepcopy(CONFIG))
    kube = MemoryKube()
    _claims(kube, case.spec)
    now = "2026-11-24T00:00:00Z"
    reconciler = Reconciler(kube, config, clock=lambda: now, live=SteadyLive())  # type: ignore[arg-type]
    status = reconciler.reconcile(_body(case.spec)).wire()
    _finish_builds(kube)
    now = "2026-11-24T00:00:15Z"
    status = reconciler.reconcile(_body(case.spec, status)).wire()
    _ready_deployments(kube)
    now = "2026-11-24T00:00:30Z"
    pools = []
    for _ in range(4):
        status = reconciler.reconcile(_body(case.spec, status)).wire()
        pools.append(status["decision"]["pool"])
    assert len(set(pools[1:])) == 1, f"the decision alternates: {pools}"
