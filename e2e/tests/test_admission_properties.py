"""Hostile input, property-based, on the real cluster: generated LeptonModel specs through
the real apiserver's admission and the running operator.

The documents come from ``lepton_e2e.spec_strategies`` (read off the CRD's schema):
valid ones, and valid ones with one targeted mutation that carries the path of the field
it broke. The unit twin (``tests/unit/operator/test_spec_properties.py``) runs many more
of them through pydantic and the reconcile pass; here each goes to the apiserver.

Examples, fixed (``derandomize=True``: the seed is a hash of the test, no example
database): 20 valid documents and 5 for each of the 13 kinds of mutation, 85 in all.

- Admission (server-side dry-run create, strict field validation, as ``kubectl`` does):
  the apiserver's verdict is pydantic's (the operator validates every spec again with
  the models the CRD is generated from), every rejection names the broken field, and
  what is admitted, with the apiserver's defaults filled in, parses too.
- The objects the operator would make from an admitted spec (a build Job and a Triton
  Deployment per pool) are accepted by the apiserver in turn (server-side dry-run): a
  spec admitted but unbuildable would leave the operator retrying a refused write.
- With the operator installed (its Helm chart, fixture builder), 10 of the admitted
  documents are applied: each gets a status (a phase and a ``Valid`` condition with a
  reason) within a minute, no reconcile of them raises, the operator's pods do not
  restart, and a model applied afterwards still gets its status.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from lepton_e2e import spec_strategies
from lepton_e2e.fixtures import (
    FIXTURE_BUILDER,
    OPERATOR_NAMESPACE,
    SIMULATED_TRITON,
    Kube,
    installed_operator,
    model_namespace,
    wait_for,
)
from lepton_e2e.lanes import Lane
from lepton_e2e.spec_strategies import Case
from lepton_operator.api import GROUP, PLURAL, VERSION, parse_spec
from lepton_operator.config import OperatorConfig
from lepton_operator.kube import Kube as OperatorKube
from lepton_operator.resources import build as build_objects
from lepton_operator.resources import names, serving

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {"valid": 20, **dict.fromkeys(spec_strategies.KINDS, 5)}
APPLIED = 10
SETTINGS: dict[str, Any] = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": list(HealthCheck),
    "phases": [Phase.explicit, Phase.generate],  # each example is a request: no shrinking
}
VALUES = yaml.safe_load((REPO / "charts" / "lepton-operator" / "values.yaml").read_text())
# A name a PersistentVolumeClaim can have (DNS-1123 subdomain).
CLAIM_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")

# Valid documents the apiserver admitted, handed from the admission test to the
# operator test (which draws its own when run alone).
ADMITTED: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def crd(kube: Kube) -> None:
    kube.install_crds()


@pytest.fixture(scope="module")
def scratch(kube: Kube, crd: None) -> Iterator[str]:
    """A namespace for dry runs (nothing is stored in it)."""
    name = f"hostile-{secrets.token_hex(3)}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _admit(kube: Kube, namespace: str, spec: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the object as the apiserver would store it, "") or (None, its refusal)."""
    document = spec_strategies.document(copy.deepcopy(spec), "hostile")
    try:
        stored: dict[str, Any] = client.CustomObjectsApi(kube.api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, document, dry_run="All", field_validation="Strict"
        )
    except ApiException as error:
        assert error.status in (400, 422), f"not a refusal: {error.status} {error.body}"
        message = json.loads(error.body).get("message", "") if error.body else ""
        return None, str(message or error.body)
    return stored, ""


def _pydantic(spec: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The ``loc`` of each error pydantic finds (none: valid)."""
    try:
        parse_spec(copy.deepcopy(spec))
    except ValidationError as error:
        return [tuple(e["loc"]) for e in error.errors()]
    return []


def _names(message: str, field: str) -> bool:
    return re.search(re.escape(field) + r"(?![A-Za-z0-9_])", message) is not None


def _operator_objects(kube: Kube, namespace: str, spec_doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The build Jobs and Triton Deployments the operator would create for this spec,
    built by its own functions; none while it would wait for a source claim."""
    spec = parse_spec(copy.deepcopy(spec_doc))
    config = OperatorConfig.model_validate({**VALUES["config"], **IMAGES})
    for claim in build_objects.source_claims(spec):
        # The operator asks for the claim; one whose name no PVC can have, it only
        # finds if its GET answers something else (that would be a bug to see here).
        if not CLAIM_NAME.fullmatch(claim) and (
            OperatorKube(kube.api).get("v1", "PersistentVolumeClaim", claim, namespace) is None
        ):
            return []
    pools = spec.pools or config.pools
    image = config.images.builder
    build = names.build_hash(spec, pools, image)
    s3 = spec.repository.s3 if spec.repository else None
    replicas = spec.replicas if spec.replicas is not None else spec.scaling.max_replicas
    objects = [build_objects.job("hostile", namespace, spec, pool, build, image) for pool in pools]
    objects += [
        serving.deployment(
            "hostile", namespace, pool, replicas, config.images.triton, build, "hostile", "fp32", s3
        )
        for pool in pools
    ]
    return objects


IMAGES = {"images": {"builder": FIXTURE_BUILDER, "triton": SIMULATED_TRITON}}


def _dry_run_object(kube: Kube, namespace: str, obj: dict[str, Any]) -> str:
    """The apiserver's refusal of the object, or "" if it would accept it."""
    try:
        if obj["kind"] == "Job":
            client.BatchV1Api(kube.api).create_namespaced_job(namespace, obj, dry_run="All")
        else:
            client.AppsV1Api(kube.api).create_namespaced_deployment(namespace, obj, dry_run="All")
    except ApiException as error:
        return f"{obj['kind']} {obj['metadata']['name']}: {error.status} {error.body}"
    return ""


def _check(kube: Kube, namespace: str, case: Case) -> dict[str, Any] | None:
    """One document through admission and pydantic; returns it when admitted."""
    stored, refusal = _admit(kube, namespace, case.spec)
    locs = _pydantic(case.spec)
    if case.mutation is None:
        assert stored is not None, f"a valid spec was refused: {refusal}\n{case.spec}"
        assert not locs, f"pydantic refused a valid spec at {locs}\n{case.spec}"
        # What the operator reads is the stored object, defaults filled in.
        assert not _pydantic(stored["spec"]), stored["spec"]
        refused = [
            r
            for r in (
                _dry_run_object(kube, namespace, o)
                for o in _operator_objects(kube, namespace, stored["spec"])
            )
            if r
        ]
        assert not refused, f"admitted, but the operator's objects are refused: {refused}"
        return stored
    field = case.mutation.field
    assert stored is None, f"admitted: {case.mutation}\n{case.spec}"
    assert _names(refusal, field), f"the refusal does not name {field}: {refusal}"
    path = case.mutation.path
    assert any(loc[: len(path)] == path for loc in locs), (case.mutation, locs)
    return None


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_admission_and_pydantic_agree_and_name_the_field(
    kube: Kube, scratch: str, kind: str
) -> None:
    @settings(max_examples=EXAMPLES[kind], **SETTINGS)
    @given(case=spec_strategies.cases(kind))
    def agree(case: Case) -> None:
        stored = _check(kube, scratch, case)
        if stored is not None:
            ADMITTED.append(stored["spec"])

    agree()


@pytest.fixture(scope="module")
def operator(kube: Kube, crd: None, lane: Lane) -> Iterator[None]:
    with installed_operator(
        kube, FIXTURE_BUILDER, f"config.images.triton={SIMULATED_TRITON}", lane=lane
    ):
        yield


@pytest.fixture
def models(kube: Kube, namespace: str, operator: None) -> str:
    return model_namespace(kube, namespace)


def _on_the_models_claim(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with its pvc:// URIs on the namespace's ``models`` claim (paths kept), so
    the operator goes on to build instead of waiting for a claim nobody made."""
    spec = copy.deepcopy(spec)
    for section, key in (("model", "uri"), ("optimization", "calibrationUri")):
        uri = (spec.get(section) or {}).get(key)
        if uri and uri.startswith("pvc://"):
            path = uri.removeprefix("pvc://").partition("/")[2]
            spec[section][key] = f"pvc://models/{path}"
    return spec


def _admitted_sample(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    if len(ADMITTED) < APPLIED:
        test_admission_and_pydantic_agree_and_name_the_field(kube, namespace, "valid")
    # The last ones: Hypothesis starts from the simplest documents.
    return [_on_the_models_claim(spec) for spec in ADMITTED[-APPLIED:]]


def _operator_pods(kube: Kube) -> dict[str, int]:
    pods = kube.list("pods", OPERATOR_NAMESPACE, "app.kubernetes.io/name=lepton-operator")
    return {
        p["metadata"]["uid"]: sum(
            c.get("restartCount", 0) for c in (p.get("status") or {}).get("containerStatuses", [])
        )
        for p in pods
    }


def _has_status(kube: Kube, name: str, namespace: str) -> dict[str, Any] | None:
    status: dict[str, Any] = kube.get("lm", name, namespace).get("status") or {}
    valid = next((c for c in status.get("conditions") or [] if c["type"] == "Valid"), None)
    return status if status.get("phase") and valid and valid.get("reason") else None


def _reconcile_errors(kube: Kube, namespace: str) -> dict[str, float]:
    """lepton_reconcile_errors_total per model of ``namespace``, summed over replicas."""
    errors: dict[str, float] = {}
    for pod in kube.list("pods", OPERATOR_NAMESPACE, "app.kubernetes.io/name=lepton-operator"):
        url = f"http://{pod['status']['podIP']}:8080/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for labels, value in re.findall(
            r"^lepton_reconcile_errors_total\{([^}]*)\} (\S+)$", text, re.M
        ):
            label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            if label.get("namespace") == namespace:
                errors[label["model"]] = errors.get(label["model"], 0.0) + float(value)
    return errors


def test_the_operator_gives_admitted_specs_a_status_and_keeps_acting(
    kube: Kube, scratch: str, models: str
) -> None:
    specs = _admitted_sample(kube, scratch)
    assert len(specs) == APPLIED
    before = _operator_pods(kube)
    names_ = [f"gen-{i}" for i in range(len(specs))]
    # As JSON, so the documents arrive exactly as generated (no YAML round trip).
    items = [spec_strategies.document(spec, name) for spec, name in zip(specs, names_, strict=True)]
    kube.kubectl(
        "apply",
        "-n",
        models,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
    )
    statuses = {
        name: wait_for(
            lambda name=name: _has_status(kube, name, models),  # type: ignore[misc]
            timeout=60,
            what=f"a status on {name}",
        )
        for name in names_
    }
    kube.apply(yaml.safe_load((REPO / "examples" / "minilm.yaml").read_text()), namespace=models)
    wait_for(lambda: _has_status(kube, "minilm", models), timeout=60, what="a status on minilm")
    for name, status in statuses.items():  # shown with -s, and on a failure
        reasons = {c["type"]: c["reason"] for c in status["conditions"]}
        print(f"{name}: {status['phase']} {reasons}")
    assert _operator_pods(kube) == before, "an operator pod restarted or was replaced"
    errors = {m: n for m, n in _reconcile_errors(kube, models).items() if n}
    assert not errors, f"reconciles raised: {errors}; statuses: {statuses}"
