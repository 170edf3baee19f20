"""The operator on the real local cluster, installed by its Helm chart.

The chart's own Deployment runs the operator as real processes (two replicas, one
Lease holder) under the chart's ServiceAccount with RBAC enforced, in a namespace that
enforces the restricted Pod Security profile; models live in another restricted
namespace. The build Jobs run the fixture builder (a real process pod that writes a
fixed report, each variant labelled 'fixture'), hence "fixture_report" in the test
names; Triton pods are simulated by KWOK until real serving lands.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

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

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, Any] = yaml.safe_load((REPO / "examples" / "minilm.yaml").read_text())
# FIXTURE_BUILDER writes a report but no model repository, so Triton pods are left to
# KWOK (SIMULATED_TRITON): these tests are about the operator's lifecycle;
# test_serving.py serves a real build on a real tritonserver.


@pytest.fixture(scope="module")
def operator(kube: Kube, lane: Lane) -> Iterator[None]:
    with installed_operator(
        kube, FIXTURE_BUILDER, f"config.images.triton={SIMULATED_TRITON}", lane=lane
    ):
        yield


@pytest.fixture
def models(kube: Kube, namespace: str, operator: None) -> str:
    """A restricted namespace with the claim the example's pvc://models/... names."""
    return model_namespace(kube, namespace)


def _model(name: str, **spec_changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(EXAMPLE)
    doc["metadata"]["name"] = name
    doc["spec"].update(spec_changes)
    return doc


def _status(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = kube.get("lm", name, namespace).get("status") or {}
    return status


def _phase(kube: Kube, name: str, namespace: str, phase: str) -> dict[str, Any] | None:
    status = _status(kube, name, namespace)
    return status if status.get("phase") == phase else None


def _owned(kube: Kube, namespace: str, name: str) -> dict[str, list[str]]:
    kinds = (
        "jobs,deployments,replicasets,services,configmaps,persistentvolumeclaims,"
        "serviceaccounts,roles,rolebindings,pods"
    )
    out = json.loads(
        kube.kubectl(
            "get", kinds, "-n", namespace, "-l", f"lepton.ai/model={name}", "-o", "json"
        ).stdout
    )
    found: dict[str, list[str]] = {}
    for item in out["items"]:
        found.setdefault(item["kind"], []).append(item["metadata"]["name"])
    return found


_BUILDERS = "lepton.ai/component=builder"


def test_fixture_report_model_goes_from_apply_to_ready_on_the_chosen_pool(
    kube: Kube, models: str
) -> None:
    kube.apply(_model("minilm"), namespace=models)
    status = wait_for(
        lambda: _phase(kube, "minilm", models, "Ready"), timeout=120, what="minilm Ready"
    )
    decision = status["decision"]
    assert (decision["variant"], decision["pool"], decision["replicas"]) == (
        "onnx-int8",
        "cpu-standard",
        1,
    )
    assert {b["pool"]: b["phase"] for b in status["builds"]} == {
        "cpu-standard": "Succeeded",
        "gpu-l4": "Succeeded",
    }
    rejected = next(v for v in status["variants"] if v["variant"] == "int8-dynamic")
    assert rejected["accepted"] is False and "below the guard" in rejected["reason"]
    conditions = {
        c["type"]: (c["status"], c["reason"], c["observedGeneration"]) for c in status["conditions"]
    }
    assert {kind: (state, generation) for kind, (state, _, generation) in conditions.items()} == {
        **{
            kind: ("True", 1)
            for kind in (
                "Valid",
                "Built",
                "Deployed",
                "Ready",
                "SLOMet",
                "WithinBudget",
                "NodesAvailable",  # the harness's KWOK nodes carry both pools' labels
                "StorageAvailable",  # bound by the harness's provisioner (no class)
            )
        },
        # No CanaryPassed: KWOK, which simulates these Triton pods, also sets their
        # readiness-gate conditions itself (test_serving.py has real pods and canaries).
        # The chart's default Prometheus URL names no Service here: reported, not fatal.
        "MetricsAvailable": ("False", 1),
    }
    assert conditions["MetricsAvailable"][1] == "PrometheusUnreachable"

    # The build Jobs ran on their pools, under restricted Pod Security, for real.
    jobs = kube.list("jobs", models, "lepton.ai/model=minilm")
    assert sorted(j["metadata"]["labels"]["lepton.ai/pool"] for j in jobs) == [
        "cpu-standard",
        "gpu-l4",
    ]

    # A written report is used before its pod exits (the report's ConfigMap starts the
    # pass), so the model may be Ready while a builder pod is still finishing.
    def builders_done() -> list[dict[str, Any]] | None:
        pods = kube.list("pods", models, _BUILDERS)
        return pods if {p["status"]["phase"] for p in pods} == {"Succeeded"} else None

    builder_pods = wait_for(builders_done, timeout=60, what="builder pods Succeeded")
    gpu_pod = next(p for p in builder_pods if p["metadata"]["labels"]["lepton.ai/pool"] == "gpu-l4")
    assert gpu_pod["spec"]["nodeName"].startswith("gpu-l4-")

    # Triton on the chosen pool; the Service selects the model's Triton pods on any pool
    # (during a pool change both serve, each pod once it is Ready).
    serving = kube.list("pods", models, "lepton.ai/component=triton")
    assert len(serving) == 1 and serving[0]["spec"]["nodeName"].startswith("cpu-standard-")
    service = kube.get("service", "minilm", models)
    assert service["spec"]["selector"] == {
        "lepton.ai/model": "minilm",
        "lepton.ai/component": "triton",
    }

    # kubectl get lm shows the printer columns filled.
    line = kube.kubectl("get", "lm", "minilm", "-n", models, "--no-headers").stdout.split()
    assert line[:8] == [
        "minilm",
        "Ready",
        "active",
        "onnx-int8",
        "cpu-standard",
        "1",
        "9",
        "0.34",
    ]
    reasons = {
        e["reason"]
        for e in kube.list("events", models)
        if e["involvedObject"]["kind"] == "LeptonModel"
    }
    assert {"BuildStarted", "Decision", "Available"} <= reasons

    # A scaling change re-plans without rebuilding.
    kube.kubectl(
        "patch",
        "lm",
        "minilm",
        "-n",
        models,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"scaling": {"minReplicas": 2, "maxReplicas": 6}}}),
    )
    wait_for(
        lambda: (
            _status(kube, "minilm", models).get("replicas") == 2
            and _phase(kube, "minilm", models, "Ready")
        ),
        timeout=60,
        what="two ready replicas",
    )
    assert sorted(
        j["metadata"]["name"] for j in kube.list("jobs", models, "lepton.ai/model=minilm")
    ) == sorted(j["metadata"]["name"] for j in jobs)


def test_fixture_report_restart_mid_build_creates_no_second_job_and_loses_no_status(
    kube: Kube, models: str
) -> None:
    doc = _model("slow")
    doc["spec"]["model"]["uri"] = "pvc://models/minilm?fixture-build-seconds=20"
    kube.apply(doc, namespace=models)
    building = wait_for(
        lambda: _phase(kube, "slow", models, "Building"), timeout=60, what="slow Building"
    )
    jobs = sorted(j["metadata"]["name"] for j in kube.list("jobs", models, "lepton.ai/model=slow"))
    assert len(jobs) == 2
    kube.kubectl(
        "delete",
        "pod",
        "-n",
        OPERATOR_NAMESPACE,
        "-l",
        "app.kubernetes.io/name=lepton-operator",
        "--wait=true",
    )
    kube.kubectl("rollout", "status", "deployment", "-n", OPERATOR_NAMESPACE, "--timeout=120s")
    ready = wait_for(
        lambda: _phase(kube, "slow", models, "Ready"),
        timeout=120,
        what="slow Ready after the restart",
    )
    assert (
        sorted(j["metadata"]["name"] for j in kube.list("jobs", models, "lepton.ai/model=slow"))
        == jobs
    )
    assert ready["buildHash"] == building["buildHash"]
    assert [b["job"] for b in ready["builds"]] == [b["job"] for b in building["builds"]]
    valid = next(c for c in ready["conditions"] if c["type"] == "Valid")
    before = next(c for c in building["conditions"] if c["type"] == "Valid")
    assert valid["lastTransitionTime"] == before["lastTransitionTime"]


def test_fixture_report_delete_leaves_nothing_behind_and_spares_what_is_not_ours(
    kube: Kube, models: str
) -> None:
    kube.apply(_model("gone"), namespace=models)
    wait_for(lambda: _phase(kube, "gone", models, "Ready"), timeout=120, what="gone Ready")
    # Someone else's ConfigMap that merely carries our label: never ours to delete.
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "not-ours", "labels": {"lepton.ai/model": "gone"}},
            "data": {"keep": "me"},
        },
        namespace=models,
    )
    before = _owned(kube, models, "gone")
    assert {
        "Job",
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    } <= set(before)
    kube.kubectl("delete", "lm", "gone", "-n", models, "--wait=true", "--timeout=60s")
    left = wait_for(
        lambda: (lambda o: o if o == {"ConfigMap": ["not-ours"]} else None)(
            _owned(kube, models, "gone")
        ),
        timeout=90,
        what="everything but not-ours gone",
    )
    assert left == {"ConfigMap": ["not-ours"]}


def test_the_operator_runs_under_its_own_least_privilege_account(
    kube: Kube, operator: None
) -> None:
    pods = kube.list("pods", OPERATOR_NAMESPACE, "app.kubernetes.io/name=lepton-operator")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    account = pods[0]["spec"]["serviceAccountName"]
    subject = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{account}"

    def can(*args: str) -> bool:
        result = kube.kubectl("auth", "can-i", *args, f"--as={subject}", check=False)
        return result.stdout.strip() == "yes"

    assert can("create", "jobs.batch", "-n", "default")
    assert can("patch", "leptonmodels.lepton.ai/status", "-n", "default")
    assert not can("create", "secrets", "-n", "default")
    assert not can("delete", "nodes")
    assert not can("create", "clusterrolebindings")


PERMISSIONS_DOC = REPO / "docs" / "reference" / "permissions.md"
# Every authenticated account's (system:basic-user, system:discovery,
# system:public-info-viewer), as docs/reference/permissions.md says.
EVERYONES_RESOURCES = {
    ("authentication.k8s.io", "selfsubjectreviews", "create"),
    ("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "create"),
}
EVERYONES_URLS = {
    *("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi"),
    # system:service-account-issuer-discovery: every ServiceAccount's.
    *("/.well-known/openid-configuration", "/openid/v1/jwks"),
}


def _documented(section: str) -> set[tuple[str, str, str]]:
    """(group, resource, verb) for every row of one table in permissions.md; rows that
    hold only under a chart option this install leaves off are left out."""
    text = PERMISSIONS_DOC.read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    granted = set()
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("API group", "---") or "only with" in cells[3]:
            continue
        group = "" if cells[0] == "(core)" else cells[0]
        granted |= {(group, cells[1], verb.strip()) for verb in cells[2].split(",")}
    return granted


def _effective(
    kube: Kube, subject: str, namespace: str
) -> tuple[set[tuple[str, str, str]], set[str]]:
    """What the apiserver says ``subject`` may do in ``namespace``: resource triples and
    the non-resource URLs it may get."""
    # What `kubectl auth can-i --list` asks, as JSON: a SelfSubjectRulesReview.
    request = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    review = json.loads(
        kube.kubectl(
            *("create", "--validate=false", "-f", "-", "-o", "json", f"--as={subject}"),
            stdin=json.dumps(request),
        ).stdout
    )["status"]
    assert not review.get("incomplete"), review
    triples = {
        (group, resource, verb)
        for rule in review.get("resourceRules") or []
        for group in rule.get("apiGroups") or [""]
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }
    urls = {
        url.rstrip("*").rstrip("/") or "/"
        for rule in review.get("nonResourceRules") or []
        for url in rule.get("nonResourceURLs") or []
    }
    return triples, urls


def test_the_operators_effective_permissions_are_exactly_the_documented_set(
    kube: Kube, models: str
) -> None:
    (pod, *_) = kube.list("pods", OPERATOR_NAMESPACE, "app.kubernetes.io/name=lepton-operator")
    subject = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{pod['spec']['serviceAccountName']}"
    cluster_wide = _documented("In every namespace (ClusterRole)")
    own_namespace = _documented("In the operator's namespace only (Role)")
    assert ("batch", "jobs", "create") in cluster_wide and own_namespace  # the doc parsed
    for namespace, expected in (
        (models, cluster_wide | EVERYONES_RESOURCES),
        (OPERATOR_NAMESPACE, cluster_wide | own_namespace | EVERYONES_RESOURCES),
    ):
        triples, urls = _effective(kube, subject, namespace)
        assert triples - expected == set(), f"beyond the documented set in {namespace}"
        assert expected - triples == set(), f"documented but not granted in {namespace}"
        assert not any("*" in part for triple in triples for part in triple), triples
        assert urls <= EVERYONES_URLS, urls - EVERYONES_URLS
        assert not {t for t in triples if t[1] == "secrets"}, triples
        assert {t[2] for t in triples if t[1] == "nodes"} <= {"get", "list", "watch"}


def _metrics(pod: dict[str, Any]) -> str:
    url = f"http://{pod['status']['podIP']}:8080/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
    return text


def test_fixture_report_only_one_replica_acts_and_it_exports_the_models_figures(
    kube: Kube, models: str
) -> None:
    kube.apply(_model("watched"), namespace=models)
    wait_for(lambda: _phase(kube, "watched", models, "Ready"), timeout=120, what="watched Ready")
    pods = kube.list("pods", OPERATOR_NAMESPACE, "app.kubernetes.io/name=lepton-operator")
    scraped = [_metrics(p) for p in pods]

    def reconciles(text: str) -> float:
        counts = re.findall(r"^lepton_reconcile_duration_seconds_count\{[^}]*\} (\S+)$", text, re.M)
        return sum(float(c) for c in counts)

    acting = [text for text in scraped if reconciles(text) > 0]
    assert len(pods) == 2 and len(acting) == 1, "leader election: exactly one replica reconciles"
    cost = re.search(
        rf'^lepton_model_hourly_cost_usd\{{model="watched",namespace="{models}"\}}'
        r" (\S+)$",
        acting[0],
        re.M,
    )
    assert cost is not None and float(cost.group(1)) == 0.34
