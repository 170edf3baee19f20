"""The pass's view of the cluster: watched reads, and applies only when something changed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lepton_operator.constants import COMPONENT_LABEL, MODEL_LABEL, POOL_LABEL
from lepton_operator.kube import Kube
from lepton_operator.kubecache import (
    CachedKube,
    ends_wait,
    event_view,
    slim_deployment,
    slim_pod,
)
from lepton_operator.resources import names

OWNER = {
    "apiVersion": "lepton.ai/v1alpha1",
    "kind": "LeptonModel",
    "metadata": {"name": "minilm", "namespace": "ml", "uid": "u1"},
}
LABELS = names.labels("minilm", "triton", **{POOL_LABEL: "cpu"})


def _deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "minilm-cpu", "namespace": "ml", "labels": dict(LABELS)},
        "spec": {"replicas": replicas},
    }


class Watched(dict):  # type: ignore[type-arg]
    """kopf's index shape: (namespace, model) -> the slim objects under it."""


@pytest.fixture
def cached(monkeypatch: pytest.MonkeyPatch) -> tuple[CachedKube, list[str], Watched]:
    """A CachedKube whose API calls are recorded, and the Deployments' index."""
    calls: list[str] = []
    deployments = Watched()
    generation = [0]

    def apply(self: Kube, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        calls.append(f"apply {obj['kind']}")
        generation[0] += 1
        live = copy.deepcopy(obj)
        live["metadata"].update(generation=generation[0], uid="d1")
        live["metadata"]["ownerReferences"] = [{"uid": owner["metadata"]["uid"]}]
        live["status"] = {"readyReplicas": 0, "availableReplicas": 0}
        return live

    def listed(self: Kube, *args: Any) -> list[dict[str, Any]]:
        calls.append(f"list {args[1]}")
        return []

    monkeypatch.setattr(Kube, "apply", apply)
    monkeypatch.setattr(Kube, "list_labelled", listed)
    kube = object.__new__(CachedKube)
    kube._init_cache()
    kube.bind(pods=Watched(), deployments=deployments, services=Watched())
    return kube, calls, deployments


def test_an_unchanged_deployment_is_not_applied_again(cached) -> None:
    kube, calls, watched = cached
    live = kube.apply(_deployment(2), OWNER)
    watched[("ml", "minilm")] = [slim_deployment({**live, "status": {"readyReplicas": 2}})]
    again = kube.apply(_deployment(2), OWNER)
    assert calls == ["apply Deployment"]
    assert again["status"]["readyReplicas"] == 2  # the watched status stands for the answer
    kube.apply(_deployment(3), OWNER)  # the plan changed
    assert calls == ["apply Deployment"] * 2


def test_a_deployment_changed_or_deleted_by_someone_else_is_applied_again(cached) -> None:
    kube, calls, watched = cached
    live = kube.apply(_deployment(2), OWNER)
    drifted = slim_deployment(live)
    drifted["metadata"]["generation"] = 7  # kubectl scale, an edit
    watched[("ml", "minilm")] = [drifted]
    kube.apply(_deployment(2), OWNER)
    assert calls == ["apply Deployment"] * 2
    watched[("ml", "minilm")] = []  # deleted
    kube.apply(_deployment(2), OWNER)
    assert calls == ["apply Deployment"] * 3


def test_other_kinds_are_always_applied(cached) -> None:
    kube, calls, _ = cached
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "m"}}
    kube.apply(claim, OWNER)
    kube.apply(claim, OWNER)
    assert calls == ["apply PersistentVolumeClaim"] * 2


def test_a_models_pods_are_read_from_the_watch_and_others_from_the_api(cached) -> None:
    kube, calls, _ = cached
    pod = {
        "metadata": {"name": "p1", "namespace": "ml", "labels": dict(LABELS)},
        "spec": {"nodeName": "n1", "containers": [{"name": "triton"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": []},
    }
    kube._indices[("v1", "Pod")][("ml", "minilm")] = [slim_pod(pod)]
    selector = f"{MODEL_LABEL}=minilm,{COMPONENT_LABEL}=triton"
    (found,) = kube.list_labelled("v1", "Pod", "ml", selector)
    assert found["status"]["podIP"] == "10.0.0.5" and "containers" not in found["spec"]
    assert kube.list_labelled("v1", "Pod", "ml", f"{MODEL_LABEL}=other") == []
    assert calls == []
    kube.list_labelled("v1", "Pod", "ml", "batch.kubernetes.io/job-name=minilm-b-1")
    assert calls == ["list Pod"]  # a build's pods: not watched, read from the API


def test_slim_copies_keep_only_what_a_pass_reads() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "labels": {"a": "b"},
            "annotations": {"lepton.ai/variant": "onnx", "kubectl.kubernetes.io/x": "big"},
            "managedFields": [{"huge": True}],
        },
        "spec": {"containers": [{"args": ["..."]}], "nodeName": "n"},
        "status": {"phase": "Running", "containerStatuses": [{"restartCount": 2, "state": {}}]},
    }
    slim = slim_pod(pod)
    assert slim["metadata"]["annotations"] == {"lepton.ai/variant": "onnx"}
    assert "managedFields" not in slim["metadata"]
    assert slim["status"]["containerStatuses"] == [{"restartCount": 2}]


def _build_pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "b", "labels": {MODEL_LABEL: "minilm", COMPONENT_LABEL: "builder"}},
        "status": status,
    }


def test_event_views_change_only_with_what_a_pass_reads() -> None:
    """The owned-event predicate: a build's pod scheduled, running and done, or a Job's
    pod counts, say nothing a pass reads (the Job's conditions and the report say it);
    a pod that cannot be scheduled, a Job complete or failed, a report written do."""
    # None: nothing a pass reads yet, so a first sight of it starts no pass either.
    assert event_view("pods", _build_pod(phase="Pending")) is None
    scheduled = _build_pod(phase="Running", conditions=[{"type": "PodScheduled", "status": "True"}])
    assert event_view("pods", scheduled) is None
    stuck = _build_pod(
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
    )
    assert event_view("pods", stuck) is not None

    job = {"metadata": {"name": "j"}, "spec": {"activeDeadlineSeconds": 60}, "status": {}}
    assert event_view("jobs", job) is None
    counting = copy.deepcopy(job)
    counting["status"] = {"active": 1, "ready": 1, "startTime": "2026-12-05T10:00:00Z"}
    assert event_view("jobs", counting) is None
    announced = copy.deepcopy(counting)  # the Job controller's interim condition
    announced["status"]["conditions"] = [{"type": "SuccessCriteriaMet", "status": "True"}]
    assert event_view("jobs", announced) is None
    done = copy.deepcopy(announced)
    done["status"]["conditions"].append({"type": "Complete", "status": "True"})
    failed = copy.deepcopy(counting)
    failed["status"]["conditions"] = [{"type": "Failed", "status": "True"}]
    assert None is not event_view("jobs", done) != event_view("jobs", failed) is not None
    going = copy.deepcopy(job)
    going["metadata"]["deletionTimestamp"] = "2026-12-05T10:00:00Z"
    assert event_view("jobs", going) is not None

    report = {"metadata": {"name": "r"}, "data": {}}
    assert event_view("configmaps", report) is None
    written = {"metadata": {"name": "r"}, "data": {"report.json": "{}"}}
    rewritten = {"metadata": {"name": "r"}, "data": {"report.json": "{ }"}}
    assert None is not event_view("configmaps", written) != event_view("configmaps", rewritten)

    # A Deployment the pass just made says nothing until its controller has seen it.
    made = _deployment(1)
    assert event_view("deployments", made) is None
    seen = {**made, "status": {"observedGeneration": 1}}
    ready_now = {**made, "status": {"observedGeneration": 1, "readyReplicas": 1}}
    assert None is not event_view("deployments", seen) != event_view("deployments", ready_now)
    service = {"metadata": {"name": "s", "labels": dict(LABELS)}}
    assert event_view("services", service) is None


def test_only_a_written_report_or_an_ended_job_ends_a_wait() -> None:
    """The URGENT lane: what a model waits on, not a build's progress."""
    job = {"metadata": {"name": "j"}, "status": {"active": 1}}
    assert not ends_wait("jobs", job)
    job["status"]["conditions"] = [{"type": "SuccessCriteriaMet", "status": "True"}]
    assert not ends_wait("jobs", job)
    job["status"]["conditions"].append({"type": "Complete", "status": "True"})
    assert ends_wait("jobs", job)
    assert not ends_wait("configmaps", {"metadata": {"name": "r"}, "data": {}})
    assert ends_wait("configmaps", {"metadata": {"name": "r"}, "data": {"report.json": "{}"}})
    stuck = _build_pod(
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
    )
    assert not ends_wait("pods", stuck)
    going = {"metadata": {"name": "r", "deletionTimestamp": "t"}, "data": {"report.json": "{}"}}
    assert not ends_wait("configmaps", going)

    # A Triton pod's view is its slim copy: readiness counts, bookkeeping does not.
    triton = {"metadata": {"name": "t", "labels": dict(LABELS)}, "status": {"phase": "Running"}}
    noisy = copy.deepcopy(triton)
    noisy["metadata"]["resourceVersion"] = "77"
    noisy["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    assert event_view("pods", noisy) == event_view("pods", triton)
    ready = copy.deepcopy(triton)
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert event_view("pods", ready) != event_view("pods", triton)
