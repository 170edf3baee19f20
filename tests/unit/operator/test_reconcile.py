"""The reconcile pass against an in-memory stand-in for the Kubernetes adapter.

This pins down the orchestration (what is created when, idempotence, what a spec
change rebuilds); the e2e lifecycle test proves the same pass against the real
apiserver, controllers and pod runner.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from lepton_builder.canary import encode_tensor
from lepton_operator.api.status import LeptonModelStatus, read_status
from lepton_operator.canary.check import InlineCanaries
from lepton_operator.canary.client import CanaryRefused, CanaryUnreachable
from lepton_operator.constants import POOL_LABEL
from lepton_operator.kube import Rejected, is_owned_by, owner_reference
from lepton_operator.live.sample import LiveSample, MetricsUnavailable
from lepton_operator.live.wake import Seen, to_wake
from lepton_operator.reconcile import Reconciler
from lepton_operator.report import REPORT_KEY
from lepton_operator.revisit import figures_wanted_at
from lepton_operator.timestamps import parse_time


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes = 0

    @staticmethod
    def key(kind: str, name: str, namespace: str) -> tuple[str, str, str]:
        return (kind, namespace, name)

    def apply(self, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = self.key(obj["kind"], meta["name"], meta["namespace"])
        body = copy.deepcopy(obj)
        body["metadata"]["ownerReferences"] = [owner_reference(owner)]
        body["metadata"]["uid"] = f"uid-{meta['name']}"
        current = self.objects.get(key)
        if current is not None and "status" in current:
            body["status"] = current["status"]
        if current is not None and "creationTimestamp" in current["metadata"]:
            body["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"]
        if current != body:
            self.writes += 1
        self.objects[key] = body
        return copy.deepcopy(body)

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        obj = self.objects.get(self.key(kind, name, namespace))
        return copy.deepcopy(obj) if obj else None

    def list_owned(
        self, api_version: str, kind: str, namespace: str, selector: str, owner_uid: str
    ) -> list[dict[str, Any]]:
        wanted = dict(part.split("=") for part in selector.split(","))
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if k == kind
            and ns == namespace
            and is_owned_by(o, owner_uid)
            and all(o["metadata"]["labels"].get(a) == b for a, b in wanted.items())
        ]

    def delete_owned(self, obj: dict[str, Any], owner_uid: str) -> bool:
        if not is_owned_by(obj, owner_uid):
            return False
        meta = obj["metadata"]
        return (
            self.objects.pop(self.key(obj["kind"], meta["name"], meta["namespace"]), None)
            is not None
        )

    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        wanted = dict(part.split("=") for part in selector.split(","))
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if k == kind
            and ns == namespace
            and all(o["metadata"]["labels"].get(a) == b for a, b in wanted.items())
        ]

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> None:
        status = self.objects[self.key(kind, name, namespace)].setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        for new in patch["status"]["conditions"]:
            conditions[:] = [c for c in conditions if c["type"] != new["type"]] + [new]
        self.writes += 1

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for (k, _, _), o in self.objects.items() if k == kind]


def _with_source_claim(kube: FakeKube, name: str = "models") -> FakeKube:
    kube.objects[("PersistentVolumeClaim", "ml", name)] = {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "ml", "labels": {}},
    }
    return kube


def _body(
    spec: dict[str, Any], status: dict[str, Any] | None = None, generation: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "lepton.ai/v1alpha1",
        "kind": "LeptonModel",
        "metadata": {
            "name": "minilm",
            "namespace": "ml",
            "uid": "lm-uid",
            "generation": generation,
        },
        "spec": spec,
        "status": status or {},
    }


def _complete_builds(
    kube: FakeKube,
    reports: dict[str, list[dict[str, Any]]],
    job_complete: bool = True,
    commit: str | None = None,
    reused: dict[str, Any] | None = None,
) -> None:
    """Each build's report written; ``job_complete``: the Job controller has marked the
    Job complete too (else the builder has written its report and not yet exited);
    ``reused``: the builder found the build in the namespace's build cache."""
    for job in kube.of_kind("Job"):
        pool = job["metadata"]["labels"]["lepton.ai/pool"]
        if pool not in reports:
            continue  # still building
        if job_complete:
            job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        request = json.loads(job["spec"]["template"]["spec"]["containers"][0]["args"][1])
        report = {
            "schemaVersion": 1,
            "pool": pool,
            "device": request["device"],
            "accuracyMetric": "cosine",
            "repository": request["repository"],
            "variants": reports[pool],
        }
        if commit:
            report["sourceCommit"] = commit  # an hf:// model's, as the builder writes it
        if reused:
            report["reused"] = reused
        cm = kube.objects[("ConfigMap", "ml", request["reportConfigMap"])]
        cm["data"] = {REPORT_KEY: json.dumps(report)}


def test_a_written_report_is_used_before_the_job_is_marked_complete(spec, config):
    """The builder writes its report as its last act; the Job controller marks the Job
    complete seconds later. The report's own event starts the pass that plans from it
    (issue 23: a build report to the decision that uses it within 2 s at 1,000 models),
    so the pass must not wait for the Job's condition."""
    kube = _with_source_claim(FakeKube())
    reconciler = Reconciler(kube, config, clock=Clock())  # type: ignore[arg-type]
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS, job_complete=False)
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["decision"]["variant"], status
    assert {b["phase"] for b in status["builds"]} == {"Succeeded"}, status["builds"]


def test_a_remote_model_without_a_checksum_is_served_with_a_warning(spec, config):
    """Issue 26: nothing checks an https:// or s3:// file but spec.model.sha256. Without
    it the model builds and serves, and says so: SourceVerified=False, NoChecksum, and a
    Warning Event once (not on every pass)."""
    spec["model"].update(uri="https://models.example.com/team/minilm.onnx", format="onnx")
    kube = FakeKube()
    reconciler = Reconciler(kube, config, clock=Clock())  # type: ignore[arg-type]
    first = reconciler.reconcile(_body(spec))
    verified = _condition(first.wire(), "SourceVerified")
    assert (verified["status"], verified["reason"]) == ("False", "NoChecksum")
    assert "spec.model.sha256" in verified["message"]
    assert [e.reason for e in first.events if e.type == "Warning"] == ["NoChecksum"]
    again = reconciler.reconcile(_body(spec, first.wire()))
    assert not [e for e in again.events if e.reason == "NoChecksum"]

    spec["model"]["sha256"] = "a" * 64
    pinned = reconciler.reconcile(_body(spec, again.wire(), generation=2)).wire()
    verified = _condition(pinned, "SourceVerified")
    assert (verified["status"], verified["reason"]) == ("True", "ChecksumPinned")


def test_a_hub_model_records_the_commit_its_revision_resolved_to(spec, config):
    spec["model"]["uri"] = "hf://team/minilm@main"
    kube = FakeKube()
    reconciler = Reconciler(kube, config, clock=Clock())  # type: ignore[arg-type]
    status = reconciler.reconcile(_body(spec)).wire()
    assert _condition(status, "SourceVerified")["reason"] == "HubChecksums"
    commit = "c0ffee" + "0" * 34
    _complete_builds(kube, REPORTS, commit=commit)
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["sourceCommit"] == commit
    LeptonModelStatus.model_validate(status)


def test_a_model_on_a_volume_has_no_source_condition(spec, config):
    kube = _with_source_claim(FakeKube())
    status = _reconciler(kube, config).reconcile(_body(spec)).wire()
    assert all(c["type"] != "SourceVerified" for c in status["conditions"])


def test_the_serving_search_measures_as_long_as_the_configuration_says(spec, config):
    """builds.searchSecondsPerLevel reaches each build Job as the builder's
    --search-seconds: a cluster wanting steadier figures, or the e2e tests shorter
    builds, set it once for every model."""
    config.builds.search_seconds_per_level = 1.5
    kube = _with_source_claim(FakeKube())
    _reconciler(kube, config).reconcile(_body(spec))
    for job in kube.of_kind("Job"):
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[2:4] == ["--search-seconds", "1.5"], args


def test_each_build_job_profiles_with_its_pools_cpu_request_in_threads(spec, config):
    """A replica's runtime gets the threads its pool requests in CPUs, not the node's
    cores (resources.threads): the Job says so to the builder."""
    kube = _with_source_claim(FakeKube())
    _reconciler(kube, config).reconcile(_body(spec))
    pools = {pool.name: pool for pool in config.pools}
    checked = 0
    for job in kube.of_kind("Job"):
        pool = pools[job["metadata"]["labels"][POOL_LABEL]]
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        if "cpu" not in pool.resources:
            assert "--threads" not in args, (pool.name, args)
            continue
        expected = int(float(pool.resources["cpu"]))
        assert args[args.index("--threads") + 1] == str(expected), (pool.name, args)
        checked += 1
    assert checked


def test_the_pass_tells_each_build_the_serving_images_native_backends(spec, config):
    """config.images.tritonNativeBackends reaches every build request (each config.pbtxt
    names its backend), and a python-only server ([]) builds under another hash."""
    builds = {}
    for backends in (["onnxruntime", "pytorch"], []):
        config.images.triton_native_backends = backends
        kube = _with_source_claim(FakeKube())
        status = _reconciler(kube, config).reconcile(_body(spec)).wire()
        builds[tuple(backends)] = status["buildHash"]
        for job in kube.of_kind("Job"):
            request = json.loads(job["spec"]["template"]["spec"]["containers"][0]["args"][1])
            assert request.get("servingBackends", []) == backends, request
    assert builds[("onnxruntime", "pytorch")] != builds[()]


def test_pools_that_match_no_node_are_named_in_status(spec, config):
    """The chart's default pools on a cluster without GPU nodes: the pass says so from
    the watched nodes (NodesAvailable=False naming gpu-l4, with the counts per pool in
    status.poolNodes) and builds all the same; a node joining clears it."""
    nodes = [
        {"name": "c1", "labels": {"lepton.ai/pool": "cpu-standard"}, "taints": [],
         "unschedulable": False, "allocatable": {}},
    ]  # fmt: skip
    kube = _with_source_claim(FakeKube())
    reconciler = Reconciler(kube, config, clock=Clock(), nodes=lambda: nodes)  # type: ignore[arg-type]
    status = reconciler.reconcile(_body(spec)).wire()
    available = _condition(status, "NodesAvailable")
    assert (available["status"], available["reason"]) == ("False", "PoolWithoutNodes")
    assert "gpu-l4" in available["message"] and "cpu-standard" not in available["message"]
    assert status["poolNodes"] == [
        {"pool": "cpu-standard", "nodes": 1, "cordoned": 0},
        {"pool": "gpu-l4", "nodes": 0, "cordoned": 0, "accelerators": 0},
    ]
    assert len(kube.of_kind("Job")) == 2  # a warning, not a refusal
    nodes.append(
        {"name": "g1", "labels": {"lepton.ai/pool": "gpu-l4"},
         "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
         "unschedulable": False, "allocatable": {"nvidia.com/gpu": "1"}}
    )  # fmt: skip
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert _condition(status, "NodesAvailable")["status"] == "True"
    LeptonModelStatus.model_validate(status)


def test_a_build_volume_that_cannot_bind_is_named_in_status(spec, config):
    """No default StorageClass and none configured: StorageAvailable=False says the
    claim binds only to a volume made by hand (the build is made all the same: one may
    come); once the claim is bound, it says so. A model whose repository is a bucket
    has no claim, so no such condition."""
    classes = [{"name": "gp3", "provisioner": "ebs.csi.aws.com", "default": False}]
    kube = _with_source_claim(FakeKube())
    clock = Clock()
    claim = {"kind": "PersistentVolumeClaim", "metadata": {"creationTimestamp": clock()}}
    kube.objects[("PersistentVolumeClaim", "ml", "minilm-models")] = claim
    reconciler = Reconciler(
        kube,  # type: ignore[arg-type]
        config,
        clock=clock,
        storage_classes=lambda: classes,
    )
    status = reconciler.reconcile(_body(spec)).wire()
    # A claim just made may yet bind (a volume made by hand): no word for a while.
    assert "StorageAvailable" not in {c["type"] for c in status["conditions"]}
    clock.seconds = 31
    status = reconciler.reconcile(_body(spec, status)).wire()
    storage = _condition(status, "StorageAvailable")
    assert (storage["status"], storage["reason"]) == ("False", "NoDefaultStorageClass")
    assert "minilm-models" in storage["message"] and len(kube.of_kind("Job")) == 2
    kube.objects[("PersistentVolumeClaim", "ml", "minilm-models")]["status"] = {"phase": "Bound"}
    status = reconciler.reconcile(_body(spec, status)).wire()
    storage = _condition(status, "StorageAvailable")
    assert (storage["status"], storage["reason"]) == ("True", "VolumeBound")
    spec["repository"] = {"s3": {"uri": "s3://10.0.0.5:9000/models", "credentialsSecret": "s3"}}
    status = reconciler.reconcile(_body(spec, status, generation=2)).wire()
    assert "StorageAvailable" not in {c["type"] for c in status["conditions"]}


def _variant(name: str, p95: float, rps: float, status: str = "accepted") -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "accuracy": 0.995,
        "tritonModel": "minilm",  # every variant under the LeptonModel's name
        "reason": "" if status == "accepted" else "cosine 0.94 < 0.99",
        "profiles": [
            {
                "batchSize": 1,
                "p50Ms": p95 / 2,
                "p95Ms": p95,
                "p99Ms": p95 * 1.2,
                "throughputRps": rps,
            }
        ],
    }


KEY = ("ml", "minilm")

REPORTS = {
    "cpu-standard": [
        _variant("fp32", 24, 45),
        _variant("int8-dynamic", 10, 100, "rejected"),
        _variant("onnx-int8", 9, 118),
    ],
    "gpu-l4": [_variant("fp16", 4.9, 1900)],
}


def _reconciler(kube: FakeKube, config) -> Reconciler:
    return Reconciler(kube, config, clock=lambda: "2026-11-24T00:00:00Z")  # type: ignore[arg-type]


def _serves(deployment: dict[str, Any]) -> tuple[str, str]:
    """(variant, Triton model) of a serving Deployment: the variant is the folder its
    ``--model-repository`` points at; the model, what clients call, is the same for all."""
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(a.removeprefix("--").split("=", 1) for a in args if "=" in a)
    return flags["model-repository"].rsplit("/", 1)[1], flags["load-model"]


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_first_pass_starts_one_build_per_pool_and_reports_building(spec, config):
    kube = _with_source_claim(FakeKube())
    outcome = _reconciler(kube, config).reconcile(_body(spec))
    assert outcome.wire()["phase"] == "Building"
    assert sorted(j["metadata"]["labels"]["lepton.ai/pool"] for j in kube.of_kind("Job")) == [
        "cpu-standard",
        "gpu-l4",
    ]
    assert {o["kind"] for o in kube.objects.values()} == {
        "Job",
        "ConfigMap",
        "PersistentVolumeClaim",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    }
    job = kube.of_kind("Job")[0]["spec"]["template"]["spec"]
    assert {
        "name": "source-0",
        "persistentVolumeClaim": {"claimName": "models", "readOnly": True},
    } in job["volumes"]
    assert {"name": "source-0", "readOnly": True, "mountPath": "/sources/models"} in (
        job["containers"][0]["volumeMounts"]
    )
    role = kube.of_kind("Role")[0]
    assert sorted(role["rules"][0]["resourceNames"]) == sorted(
        c["metadata"]["name"] for c in kube.of_kind("ConfigMap")
    )
    assert any(e.reason == "BuildStarted" for e in outcome.events)
    assert all(
        is_owned_by(o, "lm-uid") for o in kube.objects.values() if o["metadata"]["name"] != "models"
    )


def test_reconcile_is_idempotent(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    first = reconciler.reconcile(_body(spec))
    writes = kube.writes
    second = reconciler.reconcile(_body(spec, first.wire()))
    assert kube.writes == writes
    assert second.wire() == first.wire()
    assert second.events == []


def test_reports_lead_to_a_decision_a_deployment_and_ready(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    outcome = reconciler.reconcile(_body(spec, status))
    status = outcome.wire()
    assert status["phase"] == "Deploying"
    assert _condition(status, "Built")["status"] == "True"
    decision = status["decision"]
    assert (decision["variant"], decision["pool"], decision["replicas"]) == (
        "onnx-int8",
        "cpu-standard",
        1,
    )
    rejected = next(v for v in status["variants"] if v["variant"] == "int8-dynamic")
    assert not rejected["accepted"] and "0.94" in rejected["reason"]
    (deployment,) = kube.of_kind("Deployment")
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
        "lepton.ai/pool": "cpu-standard"
    }
    assert _serves(deployment) == ("onnx-int8", "minilm")
    # The Service takes every pool's Ready pods: a pool change shifts traffic pod by pod.
    assert kube.of_kind("Service")[0]["spec"]["selector"] == {
        "lepton.ai/model": "minilm",
        "lepton.ai/component": "triton",
    }
    assert deployment["spec"]["template"]["spec"]["readinessGates"] == [
        {"conditionType": "lepton.ai/canary"}
    ]
    assert any(e.reason == "Decision" for e in outcome.events)

    deployment["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["phase"] == "Ready" and status["replicas"] == 1
    assert _condition(status, "Ready")["status"] == "True"
    assert status["selector"] == (
        "lepton.ai/component=triton,lepton.ai/model=minilm,lepton.ai/pool=cpu-standard"
    )


def test_an_slo_change_does_not_rebuild_but_a_model_change_does(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    jobs = {j["metadata"]["name"] for j in kube.of_kind("Job")}
    spec["slo"]["p95LatencyMs"] = 5
    status = reconciler.reconcile(_body(spec, status, generation=2)).wire()
    assert {j["metadata"]["name"] for j in kube.of_kind("Job")} == jobs
    spec["model"]["uri"] = "pvc://models/minilm-v2"
    reconciler.reconcile(_body(spec, status, generation=3))
    now = {j["metadata"]["name"] for j in kube.of_kind("Job")}
    assert now and now.isdisjoint(jobs)  # a new build; the old one, still running, stopped


def test_a_tight_slo_moves_serving_to_the_gpu_and_drains_cpu_only_when_ready(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    kube.of_kind("Deployment")[0]["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    spec["slo"]["p95LatencyMs"] = 5
    status = reconciler.reconcile(_body(spec, status, generation=2)).wire()
    assert status["decision"]["pool"] == "gpu-l4"
    assert len(kube.of_kind("Deployment")) == 2  # CPU keeps serving until the GPU is ready
    gpu = next(d for d in kube.of_kind("Deployment") if d["metadata"]["name"] == "minilm-gpu-l4")
    assert (
        gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        == "1"
    )
    gpu["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    reconciler.reconcile(_body(spec, status, generation=2))
    assert [d["metadata"]["name"] for d in kube.of_kind("Deployment")] == ["minilm-gpu-l4"]


def test_an_invalid_spec_becomes_a_condition_and_creates_nothing(spec, config):
    kube = _with_source_claim(FakeKube())
    spec["scaling"] = {"minReplicas": "many"}
    outcome = _reconciler(kube, config).reconcile(_body(spec))
    valid = _condition(outcome.wire(), "Valid")
    assert (outcome.wire()["phase"], valid["status"], valid["reason"]) == (
        "Failed",
        "False",
        "InvalidSpec",
    )
    assert "spec.scaling.minReplicas" in valid["message"]
    assert set(kube.objects) == {("PersistentVolumeClaim", "ml", "models")}


def test_gpu_variants_without_a_gpu_pool_in_the_config_is_a_condition(spec, config):
    kube = _with_source_claim(FakeKube())
    config.pools = [p for p in config.pools if not p.accelerator]
    spec["optimization"] = {"variants": ["fp16"]}
    outcome = _reconciler(kube, config).reconcile(_body(spec))
    assert _condition(outcome.wire(), "Valid")["reason"] == "NoGPUPool"
    assert set(kube.objects) == {("PersistentVolumeClaim", "ml", "models")}


def test_a_missing_report_fails_the_build_with_a_reason(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    for job in kube.of_kind("Job"):
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    outcome = reconciler.reconcile(_body(spec, status))
    built = _condition(outcome.wire(), "Built")
    assert (outcome.wire()["phase"], built["reason"]) == ("Failed", "BuildFailed")
    assert "without writing its report" in built["message"]


def test_never_deletes_what_it_does_not_own(config):
    kube = _with_source_claim(FakeKube())
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "theirs", "namespace": "ml", "labels": {}},
    }
    assert kube.delete_owned(foreign, "lm-uid") is False
    assert not is_owned_by(
        {
            "metadata": {
                "labels": {"app.kubernetes.io/managed-by": "lepton-operator"},
                "ownerReferences": [{"uid": "other"}],
            }
        },
        "lm-uid",
    )


def test_builds_use_the_namespaces_source_cache_only_where_it_has_one(spec, config):
    spec["model"]["uri"] = "https://models.example/minilm.onnx"
    spec["model"]["format"] = "onnx"

    def caches(kube: FakeKube, config=config) -> set[tuple[str, str | None]]:
        """(sourceCache, buildCache) of each build request."""
        _reconciler(kube, config).reconcile(_body(spec))
        requests = [
            json.loads(j["spec"]["template"]["spec"]["containers"][0]["args"][1])
            for j in kube.of_kind("Job")
        ]
        return {(r["sourceCache"], r.get("buildCache")) for r in requests}

    # The model's own volume keeps downloads, not a second copy of its build.
    assert caches(FakeKube()) == {("/models/.source-cache", None)}
    shared = _with_source_claim(FakeKube(), config.builds.source_cache_claim)
    assert caches(shared) == {("/source-cache", "/source-cache/builds")}
    # The claim is the user's: read, never made, changed nor owned.
    claim = shared.objects[("PersistentVolumeClaim", "ml", "lepton-source-cache")]
    assert claim == {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "lepton-source-cache", "namespace": "ml", "labels": {}},
    }
    off = config.model_copy(
        update={"builds": config.builds.model_copy(update={"source_cache_claim": ""})}
    )
    assert caches(_with_source_claim(FakeKube(), "lepton-source-cache"), off) == {
        ("/models/.source-cache", None)
    }


def test_a_build_reused_from_the_namespaces_cache_says_so_in_status(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    reused = {"builtAt": "2026-12-07T06:40:00Z", "buildSeconds": 312.4, "key": "k"}
    _complete_builds(kube, REPORTS, reused=reused)
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert {b["pool"]: b.get("reusedFrom") for b in status["builds"]} == {
        "cpu-standard": "2026-12-07T06:40:00Z in 312 s",
        "gpu-l4": "2026-12-07T06:40:00Z in 312 s",
    }
    built = _condition(status, "Built")
    assert built["status"] == "True"
    assert "reused from the namespace's build cache: cpu-standard, gpu-l4" in built["message"]


def test_a_missing_source_claim_waits_with_a_reason_and_builds_nothing(spec, config):
    kube = FakeKube()
    outcome = _reconciler(kube, config).reconcile(_body(spec))
    built = _condition(outcome.wire(), "Built")
    assert (outcome.wire()["phase"], built["reason"]) == ("Pending", "SourceClaimMissing")
    assert "PersistentVolumeClaim models" in built["message"]
    assert kube.objects == {}


# ---- the canary gate -------------------------------------------------------------------
SAMPLE = np.arange(6, dtype=np.float32).reshape(1, 6)
ANSWERS = {
    "onnx-int8": np.array([[0.1, 0.9]], dtype=np.float32),
    "fp32": np.array([[0.2, 0.8]], dtype=np.float32),
}


def _with_canaries(reports: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    reports = copy.deepcopy(reports)
    for row in reports["cpu-standard"]:
        if row["name"] in ANSWERS:
            row["canary"] = {
                "inputs": [encode_tensor("x", SAMPLE)],
                "outputs": [encode_tensor("y", ANSWERS[row["name"]])],
            }
    return reports


def _serving_pod(kube: FakeKube, deployment: dict[str, Any], name: str) -> None:
    template = copy.deepcopy(deployment["spec"]["template"])
    kube.objects[("Pod", "ml", name)] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", **template["metadata"]},
        "spec": template["spec"],
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.9",
            "conditions": [{"type": "ContainersReady", "status": "True"}],
        },
    }


class ScriptedTriton:
    """Answers canary requests like a Triton pod would, from a script."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def __call__(self, address: str, model: str, inputs: Any, outputs: list[str]) -> Any:
        self.calls.append((address, model))
        np.testing.assert_array_equal(inputs["x"], SAMPLE)
        answer = self.answers[model]
        if isinstance(answer, Exception):
            raise answer
        return {"y": answer}


def _deployed(spec, config, triton: ScriptedTriton) -> tuple[FakeKube, Reconciler, dict]:
    kube = _with_source_claim(FakeKube())
    reconciler = Reconciler(
        kube,  # type: ignore[arg-type]
        config,
        clock=lambda: "2026-11-24T00:00:00Z",
        canaries=InlineCanaries(kube, triton, lambda: "2026-11-24T00:00:00Z"),  # type: ignore[arg-type]
    )
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, _with_canaries(REPORTS))
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["decision"]["variant"] == "onnx-int8"
    return kube, reconciler, status


def _gate(kube: FakeKube, pod: str) -> dict[str, Any] | None:
    conditions = kube.objects[("Pod", "ml", pod)]["status"]["conditions"]
    return next((c for c in conditions if c["type"] == "lepton.ai/canary"), None)


def test_a_pod_that_gives_the_recorded_answer_passes_its_canary(spec, config):
    triton = ScriptedTriton({"minilm": ANSWERS["onnx-int8"] + 1e-6})
    kube, reconciler, status = _deployed(spec, config, triton)
    _serving_pod(kube, kube.of_kind("Deployment")[0], "triton-1")
    outcome = reconciler.reconcile(_body(spec, status))
    assert triton.calls == [("10.244.0.9:8000", "minilm")]
    assert _gate(kube, "triton-1")["status"] == "True"
    assert _condition(outcome.wire(), "CanaryPassed")["reason"] == "CanaryPassed"
    # Judged once: the next pass sends nothing.
    reconciler.reconcile(_body(spec, outcome.wire()))
    assert len(triton.calls) == 1


def test_a_wrong_answer_keeps_the_pod_out_and_rolls_back_to_another_variant(spec, config):
    triton = ScriptedTriton({"minilm": np.array([[0.9, 0.1]], dtype=np.float32)})
    kube, reconciler, status = _deployed(spec, config, triton)
    _serving_pod(kube, kube.of_kind("Deployment")[0], "triton-1")
    outcome = reconciler.reconcile(_body(spec, status))
    assert _gate(kube, "triton-1")["status"] == "False"
    canary = _condition(outcome.wire(), "CanaryPassed")
    assert (canary["status"], canary["reason"]) == ("False", "CanaryMismatch")
    assert "relative L2" in canary["message"]
    (failure,) = outcome.wire()["canaryFailures"]
    assert (failure["variant"], failure["pool"]) == ("onnx-int8", "cpu-standard")
    reasons = [e.reason for e in outcome.events]
    assert "CanaryMismatch" in reasons and "RolledBack" in reasons
    assert outcome.wire()["decision"]["variant"] == "fp32"
    (deployment,) = kube.of_kind("Deployment")
    assert _serves(deployment) == ("fp32", "minilm")
    # The failure is remembered: later passes keep the rollback and say nothing new.
    again = reconciler.reconcile(_body(spec, outcome.wire()))
    assert again.wire()["decision"]["variant"] == "fp32"
    assert "CanaryMismatch" not in [e.reason for e in again.events]


def test_an_unreachable_pod_is_tried_again_and_not_judged(spec, config):
    triton = ScriptedTriton({"minilm": CanaryUnreachable("connection refused")})
    kube, reconciler, status = _deployed(spec, config, triton)
    _serving_pod(kube, kube.of_kind("Deployment")[0], "triton-1")
    status = reconciler.reconcile(_body(spec, status)).wire()
    reconciler.reconcile(_body(spec, status))
    assert len(triton.calls) == 2 and _gate(kube, "triton-1") is None


def test_a_refused_request_fails_the_canary(spec, config):
    triton = ScriptedTriton({"minilm": CanaryRefused("unexpected shape for input 'x'")})
    kube, reconciler, status = _deployed(spec, config, triton)
    _serving_pod(kube, kube.of_kind("Deployment")[0], "triton-1")
    outcome = reconciler.reconcile(_body(spec, status))
    assert _gate(kube, "triton-1")["status"] == "False"
    assert "unexpected shape" in outcome.wire()["canaryFailures"][0]["message"]


def test_without_a_reference_the_pod_serves_and_status_says_so(spec, config):
    triton = ScriptedTriton({})
    kube = _with_source_claim(FakeKube())
    reconciler = Reconciler(
        kube,  # type: ignore[arg-type]
        config,
        clock=lambda: "2026-11-24T00:00:00Z",
        canaries=InlineCanaries(kube, triton, lambda: "2026-11-24T00:00:00Z"),  # type: ignore[arg-type]
    )
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)  # no canary entries
    status = reconciler.reconcile(_body(spec, status)).wire()
    _serving_pod(kube, kube.of_kind("Deployment")[0], "triton-1")
    outcome = reconciler.reconcile(_body(spec, status))
    assert triton.calls == []
    assert _gate(kube, "triton-1")["status"] == "True"
    assert _condition(outcome.wire(), "CanaryPassed")["reason"] == "NoReference"


# ---- live figures ----------------------------------------------------------------------
class FakeLive:
    """Stands in for Prometheus: a scripted answer per call."""

    def __init__(self, *answers: LiveSample | MetricsUnavailable) -> None:
        self.answers = list(answers)
        self.calls = 0

    def sample(self, namespace: str, model: str) -> LiveSample:
        assert (namespace, model) == ("ml", "minilm")
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, MetricsUnavailable):
            raise answer
        return answer


def _sample(
    p95: float | None = 12.345, rate: float = 7.5, cache_hits: float | None = None
) -> LiveSample:
    return LiveSample(
        timestamp=0.0,
        request_rate_rps=rate,
        failure_rate_rps=0.0,
        p95_ms=p95,
        p99_ms=None if p95 is None else p95 * 1.5,
        mean_ms=None if p95 is None else p95 / 2,
        queue_mean_ms=0.1,
        queue_p95_ms=0.2,
        gpu_utilization=None,
        cache_hit_rps=cache_hits,
    )


class Clock:
    def __init__(self) -> None:
        self.seconds = 0

    def __call__(self) -> str:
        return f"2026-11-24T00:{self.seconds // 60:02d}:{self.seconds % 60:02d}Z"


def _ready(
    spec, config, live: FakeLive, reports: dict[str, list[dict[str, Any]]] | None = None
) -> tuple[FakeKube, Reconciler, Clock, dict]:
    kube = _with_source_claim(FakeKube())
    clock = Clock()
    reconciler = Reconciler(kube, config, clock=clock, live=live)  # type: ignore[arg-type]
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, reports or REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    kube.of_kind("Deployment")[0]["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    return kube, reconciler, clock, status


def test_live_figures_come_from_prometheus_and_spend_from_ready_replicas(spec, config):
    live = FakeLive(_sample())
    _, reconciler, clock, status = _ready(spec, config, live)
    clock.seconds = 30
    outcome = reconciler.reconcile(_body(spec, status))
    figures = outcome.wire()["live"]
    assert figures["p95Ms"] == 12.35 and figures["requestRate"] == 7.5
    assert figures["replicasByPool"] == {"cpu-standard": 1}
    assert figures["hourlyCostUSD"] == 0.34 and "gpuUtilization" not in figures
    assert outcome.wire()["p95Ms"] == 12.35  # the P95 column shows the observed figure
    assert outcome.wire()["hourlyCostUSD"] == 0.34
    metrics = _condition(outcome.wire(), "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("True", "Observed")
    # Refreshed every REFRESH_SECONDS, not on every pass.
    calls = live.calls
    clock.seconds = 35
    again = reconciler.reconcile(_body(spec, outcome.wire()))
    assert live.calls == calls and again.wire()["live"] == figures


def test_conditions_hold_still_while_only_the_figures_move(spec, config):
    """Live figures live in status.live and the decision's reason; a condition message
    carrying them would rewrite the conditions on every sample."""
    live = FakeLive(_sample(p95=12.0, rate=7.5))
    _, reconciler, clock, status = _ready(spec, config, live)
    clock.seconds = 30
    first = reconciler.reconcile(_body(spec, status)).wire()
    live.answers = [_sample(p95=13.1, rate=8.2)]
    clock.seconds = 60
    second = reconciler.reconcile(_body(spec, first)).wire()
    decided = ("variant", "pool", "replicas")
    assert [second["decision"][k] for k in decided] == [first["decision"][k] for k in decided]
    assert second["decision"]["reason"] != first["decision"]["reason"]  # the figures moved
    assert second["conditions"] == first["conditions"]
    slo = _condition(second, "SLOMet")["message"]
    assert "p95 50 ms" in slo and "req/s" not in slo


def test_prometheus_down_is_a_condition_and_serving_carries_on(spec, config):
    down = MetricsUnavailable("PrometheusUnreachable", "connection refused")
    live = FakeLive(_sample(), _sample(), down, _sample(p95=20.0))  # one per refresh
    _, reconciler, clock, status = _ready(spec, config, live)
    clock.seconds = 20
    status = reconciler.reconcile(_body(spec, status)).wire()
    clock.seconds = 40
    outcome = reconciler.reconcile(_body(spec, status))
    status = outcome.wire()
    metrics = _condition(status, "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "PrometheusUnreachable")
    assert ("Warning", "PrometheusUnreachable") in [(e.type, e.reason) for e in outcome.events]
    assert status["phase"] == "Ready" and status["replicas"] == 1
    assert "p95Ms" not in status["live"] and status["live"]["hourlyCostUSD"] == 0.34
    assert status["p95Ms"] == status["decision"]["predictedP95Ms"]  # predicted, said so
    clock.seconds = 60
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert _condition(status, "MetricsAvailable")["status"] == "True"
    assert status["p95Ms"] == 20.0


def test_no_requests_yet_means_no_observed_p95(spec, config):
    _, reconciler, clock, status = _ready(spec, config, FakeLive(_sample(p95=None, rate=0.0)))
    clock.seconds = 20
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["live"]["requestRate"] == 0.0 and "p95Ms" not in status["live"]
    assert status["p95Ms"] == status["decision"]["predictedP95Ms"]
    assert "no requests" in _condition(status, "MetricsAvailable")["message"]


def test_pods_serving_with_no_series_say_that_triton_is_not_scraped(spec, config):
    """Prometheus answers but holds no Triton series for the model: NoData while its pods
    are new (not scraped yet), TritonNotScraped, naming what to configure, once one has
    been Ready longer than two rate windows and a sample (150 s with the defaults)."""
    no_data = MetricsUnavailable("NoData", "no Triton request series for ml/minilm")
    kube, reconciler, clock, status = _ready(spec, config, FakeLive(no_data))
    (deployment,) = kube.of_kind("Deployment")
    _serving_pod(kube, deployment, "triton-1")
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": clock()}
    kube.objects[("Pod", "ml", "triton-1")]["status"]["conditions"].append(ready)
    clock.seconds = 60
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert _condition(status, "MetricsAvailable")["reason"] == "NoData"
    clock.seconds = 160
    outcome = reconciler.reconcile(_body(spec, status))
    metrics = _condition(outcome.wire(), "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "TritonNotScraped")
    assert "8002" in metrics["message"] and "serviceMonitor" in metrics["message"]
    assert ("Warning", "TritonNotScraped") in [(e.type, e.reason) for e in outcome.events]
    assert outcome.wire()["phase"] == "Ready"  # serving carries on


def test_a_servicemonitor_is_made_only_when_configured(spec, config):
    for enabled in (False, True):
        config.serving.service_monitor = enabled
        config.serving.service_monitor_labels = {"release": "kube-prometheus"}
        kube = _with_source_claim(FakeKube())
        reconciler = _reconciler(kube, config)
        status = reconciler.reconcile(_body(spec)).wire()
        _complete_builds(kube, REPORTS)
        reconciler.reconcile(_body(spec, status))
        monitors = kube.of_kind("ServiceMonitor")
        assert len(monitors) == int(enabled)
    (monitor,) = monitors
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    service = kube.of_kind("Service")[0]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


# ---- the live planner in the pass ------------------------------------------------------
def _passes(reconciler, spec, clock, status, seconds):
    """Run the timer's passes every 5 s for ``seconds``; returns the last status."""
    for _ in range(seconds // 5):
        clock.seconds += 5
        status = reconciler.reconcile(_body(spec, status)).wire()
    return status


def _instant_pools(spec, config):
    """The config's pools with no provisioning delay: no trend extrapolation."""
    spec["pools"] = [
        {**p.model_dump(by_alias=True, exclude_none=True), "provisioningSeconds": 0}
        for p in config.pools
    ]


def test_traffic_scales_replicas_up_at_once_and_down_after_the_window(spec, config):
    spec["scaling"] = {"maxReplicas": 6, "scaleDownStabilizationSeconds": 60}
    _instant_pools(spec, config)
    live = FakeLive(_sample(p95=9.0, rate=1.0))
    kube, reconciler, clock, status = _ready(spec, config, live)
    status = _passes(reconciler, spec, clock, status, 20)
    assert status["decision"]["replicas"] == 1 and "planner" in status

    live.answers = [_sample(p95=20.0, rate=100.0)]
    status = _passes(reconciler, spec, clock, status, 20)
    decision = status["decision"]
    assert (decision["pool"], decision["replicas"]) == ("cpu-standard", 2), decision["reason"]
    (deployment,) = kube.of_kind("Deployment")
    assert deployment["spec"]["replicas"] == 2

    live.answers = [_sample(p95=9.0, rate=1.0)]
    status = _passes(reconciler, spec, clock, status, 30)
    assert status["decision"]["replicas"] == 2  # held by the 60 s window
    # Down once the window holds only low recommendations (plus the 30 s peak floor and
    # a 15 s refresh): within two minutes of the load dropping.
    status = _passes(reconciler, spec, clock, status, 90)
    assert status["decision"]["replicas"] == 1
    assert kube.of_kind("Deployment")[0]["spec"]["replicas"] == 1


def _sampled(spec, reconciler, clock, status, live, woken_with, rate, p95):
    """One fleet sample 15 s on, run as the operator runs it: the model gets a pass
    only when the sampler's rule wakes it (news, traffic, or its plan asking for
    figures). Returns the status and whether a pass ran."""
    clock.seconds += 15
    seen = Seen(_sample(p95=p95, rate=rate), "", float(clock.seconds))
    wanted = figures_wanted_at(read_status(status))
    waiting = {KEY} if wanted is not None and wanted <= parse_time(clock()).timestamp() else set()
    if not to_wake({KEY}, woken_with, {KEY: seen}, waiting):
        return status, False
    woken_with[KEY] = seen
    live.answers = [seen.sample]
    return reconciler.reconcile(_body(spec, status)).wire(), True


def test_a_load_that_stopped_is_scaled_down_though_no_figure_moves_after_it(spec, config):
    """Once a load stops, its rate is zero within a rate window and stays there: no news
    for the sampler, while the peak floor (the highest load over the pool's 60 s cold
    start) still holds the second replica. The plan must go on asking for figures until
    it scales down: CI once waited three minutes for a scale-down that never came."""
    spec["scaling"] = {"maxReplicas": 6, "scaleDownStabilizationSeconds": 30}
    cpu = config.pools[0].model_dump(by_alias=True, exclude_none=True)
    spec["pools"] = [{**cpu, "provisioningSeconds": 60}]
    live = FakeLive(_sample(p95=9.0, rate=1.0))
    cpu_only = {"cpu-standard": REPORTS["cpu-standard"]}
    _, reconciler, clock, status = _ready(spec, config, live, cpu_only)
    woken: dict[tuple[str, str], Seen] = {}
    for rate, p95 in [(1.0, 9.0)] * 4 + [(100.0, 20.0)] * 4:
        status, _ = _sampled(spec, reconciler, clock, status, live, woken, rate, p95)
    assert status["decision"]["replicas"] >= 2, status["decision"]["reason"]
    passes = []
    for rate, p95 in [(50.0, 15.0)] + [(0.0, None)] * 19:
        status, ran = _sampled(spec, reconciler, clock, status, live, woken, rate, p95)
        passes.append(ran)
    assert status["decision"]["replicas"] == 1, status["decision"]["reason"]
    # Settled at zero: the recent load has aged out and nothing asks again until the
    # first rise above it leaves the hour's memory (capacity held for recurring rises
    # may go then), before the burst leaves the burst memory, an hour after it.
    assert not any(passes[-4:]), passes
    burst = status["planner"]["peaks"][0][0]
    first_rise = min(t for t, r in status["planner"]["rates"] if r > 0)
    assert status["planner"]["reviewAt"] == first_rise + 3600 <= burst + 3600


def test_the_burst_memory_is_kept_in_status_and_valid(spec, config):
    spec["scaling"] = {"maxReplicas": 6}
    _instant_pools(spec, config)
    live = FakeLive(_sample(p95=20.0, rate=100.0))
    _, reconciler, clock, status = _ready(spec, config, live)
    status = _passes(reconciler, spec, clock, status, 20)
    live.answers = [_sample(p95=9.0, rate=1.0)]
    status = _passes(reconciler, spec, clock, status, 20)
    peaks = status["planner"]["peaks"]
    assert peaks[0][1] == 100.0 and peaks[-1][1] == 1.0
    assert [r for _, r in peaks] == sorted((r for _, r in peaks), reverse=True)
    # The rise memory: each minute's highest load, both loads among them.
    minutes = status["planner"]["minutes"]
    assert {r for _, r in minutes} <= {100.0, 1.0} and minutes[0][1] == 100.0
    assert all(t % 60 == 0 for t, _ in minutes)
    # The daily pattern's slot observed now holds this pass's samples (both loads).
    opened = status["planner"]["daily"]["open"]
    assert opened[-1] == 1.0 and set(opened[1:]) == {100.0, 1.0}
    LeptonModelStatus.model_validate(status)


def test_a_planner_memory_that_does_not_validate_is_forgotten_not_a_failed_pass(spec, config):
    """status.planner is the typed PlannerMemory in code: one edited by hand (or written
    otherwise) starts the planner learning again."""
    live = FakeLive(_sample(p95=9.0, rate=1.0))
    _, reconciler, clock, status = _ready(spec, config, live)
    status = _passes(reconciler, spec, clock, status, 20)
    status["planner"] = {"rates": "not a list", "history": [{"time": "soon"}]}
    status = _passes(reconciler, spec, clock, status, 20)
    memory = LeptonModelStatus.model_validate(status).planner
    assert memory is not None and memory.rates and memory.rates[-1][1] == 1.0


def test_a_pass_that_cannot_plan_keeps_the_planner_memory(spec, config):
    """Serving something no longer among the accepted pairs (its canary failed, its
    accuracy is no longer enough) sends the pass to a first plan, which uses no figures;
    the burst it remembers must survive that pass for the next ones."""
    spec["scaling"] = {"maxReplicas": 6}
    _instant_pools(spec, config)
    live = FakeLive(_sample(p95=20.0, rate=100.0))
    _, reconciler, clock, status = _ready(spec, config, live)
    status = _passes(reconciler, spec, clock, status, 20)
    remembered = status["planner"]
    assert remembered["peaks"][0][1] == 100.0
    status["decision"] = {**status["decision"], "variant": "retired"}
    clock.seconds += 5
    after = reconciler.reconcile(_body(spec, status)).wire()
    assert after["decision"]["variant"] != "retired"
    assert after["planner"] == remembered


def test_prometheus_down_holds_the_replica_count(spec, config):
    spec["scaling"] = {"maxReplicas": 6, "scaleDownStabilizationSeconds": 0}
    _instant_pools(spec, config)
    live = FakeLive(_sample(p95=20.0, rate=100.0))
    _, reconciler, clock, status = _ready(spec, config, live)
    status = _passes(reconciler, spec, clock, status, 40)
    assert status["decision"]["replicas"] == 2
    live.answers = [MetricsUnavailable("PrometheusUnreachable", "connection refused")]
    status = _passes(reconciler, spec, clock, status, 120)
    assert status["decision"]["replicas"] == 2
    assert _condition(status, "MetricsAvailable")["status"] == "False"
    # Nor up: a remembered load that would need more replicas decides nothing blind...
    status["planner"]["rates"].append([clock.seconds + 1.0, 250.0])
    status = _passes(reconciler, spec, clock, status, 30)
    assert status["decision"]["replicas"] == 2
    # ...but the spec's bounds still apply.
    spec["scaling"] = {"minReplicas": 3, "maxReplicas": 6, "scaleDownStabilizationSeconds": 0}
    status = _passes(reconciler, spec, clock, status, 30)
    assert status["decision"]["replicas"] == 3


def test_response_cache_hits_need_no_replica_and_status_shows_their_share(spec, config):
    """250 req/s of which 150 are cache hits is planned as 100 req/s: the same count as
    100 req/s without a cache, not the count 250 would need."""
    spec["scaling"] = {"maxReplicas": 6, "scaleDownStabilizationSeconds": 0}
    spec["serving"] = {"responseCache": True, "responseCacheMB": 32}
    _instant_pools(spec, config)
    counts = {}
    for label, sample in {
        "uncached 100": _sample(p95=20.0, rate=100.0),
        "uncached 250": _sample(p95=20.0, rate=250.0),
        "cached 250": _sample(p95=20.0, rate=250.0, cache_hits=150.0),
    }.items():
        kube, reconciler, clock, status = _ready(spec, config, FakeLive(sample))
        status = _passes(reconciler, spec, clock, status, 40)
        decision = status["decision"]
        counts[label] = (decision["pool"], decision["variant"], decision["replicas"])
    assert counts["uncached 250"] != counts["uncached 100"] == counts["cached 250"], counts
    assert status["live"]["cacheHitRate"] == 0.6
    assert (
        "150 of 250 req/s answered from Triton's response cache" in (status["decision"]["reason"])
    )
    deployment = next(o for (kind, _, _), o in kube.objects.items() if kind == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--cache-config=local,size={32 * 2**20}" in args
    assert "--model-config-name=cached" in args  # the builder's configs/cached.pbtxt


def _levels(p95s: list[float], rates: list[float]) -> list[dict[str, Any]]:
    return [
        {"batchSize": c, "p50Ms": p / 2, "p95Ms": p, "p99Ms": p, "throughputRps": r}
        for c, p, r in zip((1, 4, 8), p95s, rates, strict=True)
    ]


def test_a_better_serving_configuration_lowers_the_planned_replicas(spec, config):
    """The same variant and load; the serving search found a configuration that serves
    twice as much within the SLO on Triton: the planner sizes from what was served."""
    spec["scaling"] = {"maxReplicas": 10, "scaleDownStabilizationSeconds": 0}
    _instant_pools(spec, config)
    spec["pools"] = [p for p in spec["pools"] if p["name"] == "cpu-standard"]
    default = {"capacityRps": 110.0, "levels": _levels([10, 30, 70], [80, 110, 112])}
    chosen = {"capacityRps": 220.0, "levels": _levels([10, 25, 40], [90, 180, 220])}
    searched = dict(_variant("onnx-int8", 9, 118))
    searched["servingSearch"] = {
        "targetP95Ms": 50.0,
        "summary": "2 instances, max batch 8, preferred any, queue delay 2000 us: "
        "220.0 req/s within 50 ms p95 (default 110.0)",
        "default": default,
        "chosen": chosen,
    }
    plans = {}
    for label, variant in {"default": _variant("onnx-int8", 9, 118), "searched": searched}.items():
        sample = _sample(p95=None, rate=600.0)
        _kube, reconciler, clock, status = _ready(
            spec, config, FakeLive(sample), {"cpu-standard": [variant]}
        )
        status = _passes(reconciler, spec, clock, status, 40)
        plans[label] = status["decision"]["replicas"]
        if label == "searched":
            (row,) = status["variants"]
            assert row["servingConfig"].startswith("2 instances, max batch 8")
    assert plans["searched"] < plans["default"], plans


def test_the_first_plan_before_any_traffic_uses_what_the_search_served(spec, config):
    """Before any traffic the plan comes from the status table; with the search on, the
    table shows what one replica served on Triton (Triton's HTTP path included), not the
    builder's in-process profile, so the first plan and every later one agree."""
    _instant_pools(spec, config)
    spec["pools"] = [p for p in spec["pools"] if p["name"] == "cpu-standard"]
    searched = dict(_variant("onnx-int8", 9, 118))
    chosen = {"capacityRps": 95.0, "levels": _levels([14, 30, 70], [70, 95, 96])}
    searched["servingSearch"] = {"targetP95Ms": 50.0, "summary": "1 instance", "chosen": chosen}
    _kube, _reconciler, _clock, status = _ready(
        spec, config, FakeLive(_sample(p95=None, rate=0.0)), {"cpu-standard": [searched]}
    )
    (row,) = status["variants"]
    # The SLO is 50 ms: 4 clients is the busiest level within it.
    assert (row["batchSize"], row["p95Ms"], row["throughputRps"]) == (4, 30, 95)
    # One planner: before traffic it predicts what a lone client saw on Triton (14 ms),
    # as it would at any load too light to queue.
    assert status["decision"]["predictedP95Ms"] == 14, status["decision"]


def _pending_pod(kube: FakeKube, name: str, pool: str) -> None:
    """A serving pod of the model on ``pool`` waiting for a node since the epoch."""
    kube.objects[("Pod", "ml", name)] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {
                "lepton.ai/model": "minilm",
                "lepton.ai/component": "triton",
                "lepton.ai/pool": pool,
            },
            "creationTimestamp": "2026-11-24T00:00:00Z",
        },
        "spec": {},
        "status": {"phase": "Pending"},
    }


def _served_on_the_gpu(spec, config) -> tuple[FakeKube, Reconciler, Clock, dict]:
    """Built, and planned on gpu-l4 from the profiles alone (no Prometheus)."""
    spec["slo"]["p95LatencyMs"] = 5  # only the GPU's fp16 (4.9 ms) meets it
    kube = _with_source_claim(FakeKube())
    clock = Clock()
    reconciler = Reconciler(kube, config, clock=clock)  # type: ignore[arg-type]
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    return kube, reconciler, clock, status


def test_pods_pending_past_the_timeout_move_the_model_to_another_pool(spec, config):
    live = FakeLive(_sample(p95=9.0, rate=1.0))
    kube, reconciler, clock, status = _ready(spec, config, live)
    _pending_pod(kube, "stuck", "cpu-standard")
    # The timeout: twice the pool's provisioning time (60 s), at least a minute.
    status = _passes(reconciler, spec, clock, status, 100)
    assert status["decision"]["pool"] == "cpu-standard"
    status = _passes(reconciler, spec, clock, status, 30)
    assert status["decision"]["pool"] == "gpu-l4", status["decision"]["reason"]


def _failed_builds(kube: FakeKube, reason: str, message: str) -> None:
    for job in kube.of_kind("Job"):
        job["status"] = {
            "conditions": [
                {"type": "Failed", "status": "True", "reason": reason, "message": message}
            ]
        }


def _builder_pod(kube: FakeKube, job: str, n: int, finished: str, words: str, code: int) -> None:
    kube.objects[("Pod", "ml", f"{job}-{n}")] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-{n}",
            "namespace": "ml",
            "labels": {"batch.kubernetes.io/job-name": job},
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "builder",
                    "state": {
                        "terminated": {"exitCode": code, "message": words, "finishedAt": finished}
                    },
                }
            ],
        },
    }


def test_a_failed_build_says_what_the_builder_said_and_the_old_variant_keeps_serving(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    (deployment,) = kube.of_kind("Deployment")
    deployment["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    status = reconciler.reconcile(_body(spec, status)).wire()
    serving = copy.deepcopy(deployment)
    spec["model"]["uri"] = "pvc://models/minilm-v2"
    status = reconciler.reconcile(_body(spec, status, generation=2)).wire()
    new_jobs = [j for j in kube.of_kind("Job") if "status" not in j]
    assert len(new_jobs) == 2
    _failed_builds(kube, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    cpu_job = next(
        j for j in new_jobs if j["metadata"]["labels"]["lepton.ai/pool"] == "cpu-standard"
    )
    name = cpu_job["metadata"]["name"]
    _builder_pod(kube, name, 1, "2026-11-24T00:00:10Z", "cannot load: first try", 1)
    _builder_pod(kube, name, 2, "2026-11-24T00:00:30Z", "cannot load: safetensors header", 2)
    outcome = reconciler.reconcile(_body(spec, status, generation=2))
    built = _condition(outcome.wire(), "Built")
    assert (outcome.wire()["phase"], built["status"], built["reason"]) == (
        "Failed",
        "False",
        "BuildFailed",
    )
    assert "cpu-standard: cannot load: safetensors header (builder exited 2)" in built["message"]
    # No pod words for gpu-l4: the Job controller's reason and message.
    assert (
        "gpu-l4: BackoffLimitExceeded: Job has reached the specified backoff limit"
        in built["message"]
    )
    assert any(e.type == "Warning" and e.reason == "BuildFailed" for e in outcome.events)
    assert outcome.wire()["decision"] == status["decision"]
    assert kube.of_kind("Deployment") == [serving]


def test_a_build_past_its_deadline_says_so(spec, config):
    config.builds.deadline_seconds = 20
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    assert {j["spec"]["activeDeadlineSeconds"] for j in kube.of_kind("Job")} == {20}
    _failed_builds(kube, "DeadlineExceeded", "Job was active longer than specified deadline")
    for job in kube.of_kind("Job"):  # what the killed builder left says nothing useful
        _builder_pod(kube, job["metadata"]["name"], 1, "2026-11-24T00:00:20Z", "Terminated", 143)
    outcome = reconciler.reconcile(_body(spec, status))
    built = _condition(outcome.wire(), "Built")
    assert built["reason"] == "BuildFailed"
    assert built["message"].count("DeadlineExceeded: the build ran past its deadline of 20 s") == 2


def test_without_traffic_figures_a_pool_that_cannot_schedule_is_left_all_the_same(spec, config):
    """No Prometheus (the first plan from the profiles alone): a GPU plan whose pods wait
    for a node past the timeout falls back to the best CPU plan, and says why. With
    every pool waiting there is no plan, and a budget is not said to be exceeded."""
    spec["budget"] = {"maxHourlyUSD": 50.0}
    kube, reconciler, clock, status = _served_on_the_gpu(spec, config)
    assert status["decision"]["pool"] == "gpu-l4"
    _pending_pod(kube, "waiting", "gpu-l4")
    # The timeout: twice the pool's provisioning time (60 s by default), at least 60 s.
    clock.seconds = 115
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["decision"]["pool"] == "gpu-l4"
    clock.seconds = 125
    outcome = reconciler.reconcile(_body(spec, status))
    decision = outcome.wire()["decision"]
    assert (decision["variant"], decision["pool"]) == ("onnx-int8", "cpu-standard")
    assert "left out gpu-l4: its serving pods waited for a node" in decision["reason"]
    (event,) = [e for e in outcome.events if e.reason == "Decision"]
    assert "left out gpu-l4" in event.message
    # The GPU Deployment keeps its place until the CPU one is ready (never fewer ready).
    assert len(kube.of_kind("Deployment")) == 2
    # Every pool waiting: no plan, and the condition names them.
    kube.objects[("Pod", "ml", "waiting-too")] = copy.deepcopy(
        kube.objects[("Pod", "ml", "waiting")]
    )
    kube.objects[("Pod", "ml", "waiting-too")]["metadata"]["labels"]["lepton.ai/pool"] = (
        "cpu-standard"
    )
    clock.seconds = 130
    outcome = reconciler.reconcile(_body(spec, outcome.wire()))
    deployed = _condition(outcome.wire(), "Deployed")
    assert (deployed["reason"], outcome.wire()["phase"]) == ("NoPlan", "Degraded")
    assert "unschedulable: cpu-standard, gpu-l4" in deployed["message"]
    budget = _condition(outcome.wire(), "WithinBudget")
    assert (budget["status"], budget["reason"]) == ("Unknown", "NoPlan")


def test_a_pool_left_out_is_tried_again_after_its_back_off_and_forgotten_once_it_serves(
    spec, config
):
    """Once the waiting GPU pods are drained, the pool is not planned again at once (it
    would cost another timeout of churn if it still takes nothing): status.poolBackoff
    says until when, the reason says so, and serving Ready there clears it."""
    kube, reconciler, clock, status = _served_on_the_gpu(spec, config)
    _pending_pod(kube, "waiting", "gpu-l4")
    clock.seconds = 125
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["decision"]["pool"] == "cpu-standard"
    assert status["poolBackoff"] == [
        {"pool": "gpu-l4", "failures": 1, "retryAt": "2026-11-24T00:04:05Z"}
    ]
    assert "(tried again: gpu-l4 from 00:04:05Z)" in status["decision"]["reason"]
    # The CPU replica Ready, the GPU Deployment drained with its waiting pod.
    for deployment in kube.of_kind("Deployment"):
        deployment["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    del kube.objects[("Pod", "ml", "waiting")]
    clock.seconds = 130
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert [d["metadata"]["name"] for d in kube.of_kind("Deployment")] == ["minilm-cpu-standard"]
    clock.seconds = 240  # the back-off: the pool's timeout, 120 s
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["decision"]["pool"] == "cpu-standard", "backing off"
    clock.seconds = 246
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["decision"]["pool"] == "gpu-l4", status["decision"]["reason"]
    assert status["poolBackoff"][0]["failures"] == 1  # kept until it serves there
    for deployment in kube.of_kind("Deployment"):
        deployment["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    clock.seconds = 250
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["phase"] == "Ready" and "poolBackoff" not in status


class DenyingKube(FakeKube):
    """An apiserver with a policy denying Deployments on one pool, as Gatekeeper or a
    ValidatingAdmissionPolicy would (HTTP 403 with the policy's words)."""

    def __init__(self, pool: str) -> None:
        super().__init__()
        self.pool = pool

    def apply(self, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        labels = obj["metadata"].get("labels") or {}
        if obj["kind"] == "Deployment" and labels.get("lepton.ai/pool") == self.pool:
            raise Rejected(obj["kind"], obj["metadata"]["name"], 403, "GPU needs approval")
        return super().apply(obj, owner)


def test_an_object_the_apiserver_refuses_is_a_condition_not_a_crash(spec, config):
    spec["slo"]["p95LatencyMs"] = 5  # only the GPU's fp16 (4.9 ms) meets it
    kube = _with_source_claim(DenyingKube("gpu-l4"))
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    outcome = reconciler.reconcile(_body(spec, status))
    deployed = _condition(outcome.wire(), "Deployed")
    assert (outcome.wire()["phase"], deployed["status"], deployed["reason"]) == (
        "Failed",
        "False",
        "RejectedByAPIServer",
    )
    assert deployed["message"] == (
        "the apiserver refused Deployment minilm-gpu-l4 (HTTP 403): GPU needs approval"
    )
    assert any(e.type == "Warning" and e.reason == "RejectedByAPIServer" for e in outcome.events)
    assert kube.of_kind("Deployment") == []
    # The policy lifted, the next pass serves without a spec change.
    kube.pool = "none"
    outcome = reconciler.reconcile(_body(spec, outcome.wire()))
    assert _condition(outcome.wire(), "Deployed")["reason"] == "DeploymentApplied"


class CountingKube(FakeKube):
    """Counts the API requests a pass sends, by verb and kind."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []

    def apply(self, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(("apply", obj["kind"]))
        return super().apply(obj, owner)

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        self.requests.append(("get", kind))
        return super().get(api_version, kind, name, namespace)

    def list_owned(self, api_version: str, kind: str, *args: Any) -> list[dict[str, Any]]:
        self.requests.append(("list", kind))
        return super().list_owned(api_version, kind, *args)

    def list_labelled(self, api_version: str, kind: str, *args: Any) -> list[dict[str, Any]]:
        self.requests.append(("list", kind))
        return super().list_labelled(api_version, kind, *args)


def test_a_settled_pass_reads_only_what_moves(spec, config):
    """A finished build's Jobs and reports never change: once read, a settled pass
    sends no request for them (it sent 14 of its 19 for them before), and re-reads
    the reports only when a pod waits at the canary gate. A new process reads all."""
    kube = _with_source_claim(CountingKube())
    clock = Clock()
    reconciler = Reconciler(kube, config, clock=clock, live=FakeLive(_sample(p95=9.0, rate=1.0)))  # type: ignore[arg-type]
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    for deployment in kube.of_kind("Deployment"):
        deployment["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    kube.requests.clear()
    clock.seconds = 30
    settled = reconciler.reconcile(_body(spec, status)).wire()
    assert settled["phase"] == "Ready"
    assert not [r for r in kube.requests if r[1] in ("Job", "ConfigMap", "Role")], kube.requests
    assert len(kube.requests) <= 6, kube.requests
    # Restarted: the first pass reads the build again, and says the same.
    kube.requests.clear()
    fresh = Reconciler(kube, config, clock=clock, live=FakeLive(_sample(p95=9.0, rate=1.0)))  # type: ignore[arg-type]
    again = fresh.reconcile(_body(spec, settled)).wire()
    assert ("get", "ConfigMap") in kube.requests
    assert again["variants"] == settled["variants"]
    assert [again["decision"][k] for k in ("variant", "pool", "replicas")] == [
        settled["decision"][k] for k in ("variant", "pool", "replicas")
    ]


def test_a_price_change_shows_in_the_table_without_reading_the_build_again(spec, config):
    """A pool's price is not part of the build (changing it rebuilds nothing), but the
    table's cost per 1,000 inferences depends on it: rows are assembled from the kept
    reports against the spec of each pass."""
    kube = _with_source_claim(CountingKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    cost = {(r["pool"], r["variant"]): r.get("costPer1kUSD") for r in status["variants"]}
    spec["pools"] = [
        {**p.model_dump(mode="json", by_alias=True, exclude_none=True)} for p in config.pools
    ]
    for pool in spec["pools"]:
        pool["hourlyPriceUSD"] *= 2
    kube.requests.clear()
    status = reconciler.reconcile(_body(spec, status, generation=2)).wire()
    doubled = {(r["pool"], r["variant"]): r.get("costPer1kUSD") for r in status["variants"]}
    assert doubled[("cpu-standard", "onnx-int8")] == pytest.approx(
        2 * cost[("cpu-standard", "onnx-int8")], rel=1e-3
    )
    assert not [r for r in kube.requests if r[1] in ("Job", "ConfigMap")], kube.requests


# ---- advisory mode ------------------------------------------------------------------


def _advised(spec, config) -> tuple[FakeKube, Reconciler, Any]:
    """A model in advisory mode, its builds done: the second pass plans."""
    spec["mode"] = "advisory"
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    return kube, reconciler, reconciler.reconcile(_body(spec, status))


def test_advisory_mode_without_a_pin_recommends_and_makes_no_serving_object(spec, config):
    kube, reconciler, outcome = _advised(spec, config)
    status = outcome.wire()
    assert status["phase"] == "Advisory"
    recommendation = status["recommendation"]
    assert (recommendation["variant"], recommendation["pool"], recommendation["replicas"]) == (
        "onnx-int8",
        "cpu-standard",
        1,
    )
    assert recommendation["hourlyCostUSD"] == 0.34
    assert "savingUSDPerHour" not in recommendation  # nothing serves: no saving claimed
    assert "decision" not in status
    assert not kube.of_kind("Deployment") and not kube.of_kind("Service")
    deployed = _condition(status, "Deployed")
    assert (deployed["status"], deployed["reason"]) == ("Unknown", "Advisory")
    assert _condition(status, "Recommended")["status"] == "True"
    (event,) = [e for e in outcome.events if e.reason == "Recommendation"]
    assert "onnx-int8 on cpu-standard" in event.message

    writes = kube.writes
    again = reconciler.reconcile(_body(spec, status))
    assert again.wire() == status and again.events == [] and kube.writes == writes


def test_advisory_mode_serves_the_pin_and_says_what_the_plan_would_save(spec, config):
    spec["pinned"] = {"variant": "fp32", "pool": "cpu-standard", "replicas": 2}
    kube, reconciler, outcome = _advised(spec, config)
    status = outcome.wire()
    (deployment,) = kube.of_kind("Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert _serves(deployment) == ("fp32", "minilm")
    decision = status["decision"]
    assert (decision["variant"], decision["replicas"]) == ("fp32", 2)
    assert decision["reason"].startswith("pinned by spec.pinned (advisory mode)")
    recommendation = status["recommendation"]
    assert (recommendation["variant"], recommendation["replicas"]) == ("onnx-int8", 1)
    assert recommendation["savingUSDPerHour"] == pytest.approx(2 * 0.34 - 0.34)
    deployment["status"] = {"readyReplicas": 2, "availableReplicas": 2}
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["phase"] == "Ready"
    served = copy.deepcopy(kube.of_kind("Deployment"))

    # Another pass, the recommendation unchanged: the serving objects are untouched.
    writes = kube.writes
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert kube.of_kind("Deployment") == served and kube.writes == writes

    # Switched to active: the planner's plan, the one recommended, is applied; the
    # recommendation (and its condition) go, as they describe advisory mode only.
    spec["mode"] = "active"
    del spec["pinned"]
    outcome = reconciler.reconcile(_body(spec, status, generation=2))
    status = outcome.wire()
    assert (status["decision"]["variant"], status["decision"]["replicas"]) == ("onnx-int8", 1)
    assert "recommendation" not in status
    assert all(c["type"] != "Recommended" for c in status["conditions"])
    (deployment,) = kube.of_kind("Deployment")  # the same pool: rolled to the new variant
    assert _serves(deployment) == ("onnx-int8", "minilm")


def test_a_pin_on_a_rejected_variant_serves_nothing_and_says_why(spec, config):
    spec["pinned"] = {"variant": "int8-dynamic", "pool": "cpu-standard"}
    kube, _, outcome = _advised(spec, config)
    deployed = _condition(outcome.wire(), "Deployed")
    assert (outcome.wire()["phase"], deployed["reason"]) == ("Degraded", "PinnedUnavailable")
    assert "spec.pinned.variant: int8-dynamic on cpu-standard" in deployed["message"]
    assert not kube.of_kind("Deployment")
    assert outcome.wire()["recommendation"]["variant"] == "onnx-int8"


def test_a_pin_on_a_pool_the_model_does_not_have_is_a_condition(spec, config):
    spec["pinned"] = {"variant": "fp32", "pool": "cpu-large"}
    kube, _, outcome = _advised(spec, config)
    deployed = _condition(outcome.wire(), "Deployed")
    assert deployed["reason"] == "PinnedUnavailable"
    assert "spec.pinned.pool: cpu-large" in deployed["message"]
    assert not kube.of_kind("Deployment")


def test_advisory_mode_leaves_what_active_mode_served_untouched(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    kube.of_kind("Deployment")[0]["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    status = reconciler.reconcile(_body(spec, status)).wire()
    served = copy.deepcopy(kube.of_kind("Deployment"))

    # Advisory, nothing pinned, and an SLO only the GPU meets: it recommends the GPU,
    # and neither scales, moves nor deletes what serves.
    spec["mode"] = "advisory"
    spec["slo"]["p95LatencyMs"] = 5
    status = reconciler.reconcile(_body(spec, status, generation=2)).wire()
    assert status["recommendation"]["pool"] == "gpu-l4"
    assert status["recommendation"]["savingUSDPerHour"] == pytest.approx(0.34 - 0.81)
    assert kube.of_kind("Deployment") == served
    assert status["decision"]["pool"] == "cpu-standard"


def test_a_serving_pods_cold_start_is_recorded(spec, config):
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    (deployment,) = kube.of_kind("Deployment")
    _serving_pod(kube, deployment, "triton-1")
    pod = kube.objects[("Pod", "ml", "triton-1")]
    pod["metadata"]["creationTimestamp"] = "2026-11-23T23:58:00Z"
    pod["status"]["conditions"].append(
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T23:59:15Z"}
    )
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["coldStarts"] == [
        {
            "pool": "cpu-standard",
            "variant": "onnx-int8",
            "seconds": 75.0,
            "time": "2026-11-23T23:59:15Z",
        }
    ]
    LeptonModelStatus.model_validate(status)  # the shape the CRD's status schema takes


def test_at_low_traffic_the_gpu_goes_to_zero_while_the_cpu_serves_and_returns_ready_first(
    spec, config
):
    """Issue 11's GPU release with a CPU floor, in the pass: 400 req/s is cheapest on one
    L4, 5 req/s on one CPU replica. Each move brings the new pool to Ready before the
    old one is drained, so something Ready serves throughout."""
    spec["scaling"] = {"maxReplicas": 6, "scaleDownStabilizationSeconds": 60}
    _instant_pools(spec, config)
    live = FakeLive(_sample(p95=3.0, rate=5.0))
    kube, reconciler, clock, status = _ready(spec, config, live)
    assert status["decision"]["pool"] == "cpu-standard"

    def deployments() -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for d in kube.of_kind("Deployment")}

    # A pool change must be preferred for the scale-down window (60 s) first.
    live.answers = [_sample(p95=30.0, rate=400.0)]
    status = _passes(reconciler, spec, clock, status, 90)
    assert status["decision"]["pool"] == "gpu-l4"
    assert set(deployments()) == {"minilm-cpu-standard", "minilm-gpu-l4"}  # CPU serves on
    deployments()["minilm-gpu-l4"]["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    status = _passes(reconciler, spec, clock, status, 10)
    assert set(deployments()) == {"minilm-gpu-l4"}

    # The load falls: after the scale-down window the CPU floor takes over, and the GPU
    # Deployment goes only once the CPU replica is Ready.
    live.answers = [_sample(p95=3.0, rate=5.0)]
    status = _passes(reconciler, spec, clock, status, 120)
    assert (status["decision"]["pool"], status["decision"]["replicas"]) == ("cpu-standard", 1)
    assert set(deployments()) == {"minilm-cpu-standard", "minilm-gpu-l4"}
    deployments()["minilm-cpu-standard"]["status"] = {"readyReplicas": 1, "availableReplicas": 1}
    status = _passes(reconciler, spec, clock, status, 10)
    assert set(deployments()) == {"minilm-cpu-standard"}  # the GPU pool at zero

    # And back: the GPU is brought up while the CPU replica keeps serving.
    live.answers = [_sample(p95=30.0, rate=400.0)]
    status = _passes(reconciler, spec, clock, status, 90)
    assert status["decision"]["pool"] == "gpu-l4"
    assert set(deployments()) == {"minilm-cpu-standard", "minilm-gpu-l4"}
    assert deployments()["minilm-cpu-standard"]["status"]["readyReplicas"] == 1


def test_the_first_finished_build_serves_while_another_pool_waits_for_a_node(spec, config):
    """A cluster without GPU nodes: the CPU build finishes, the GPU build's pod waits
    for a node. The model serves from the CPU build at once, says why the GPU build is
    not done, and re-plans with the GPU's variants once its build finishes."""
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    jobs = {j["metadata"]["labels"]["lepton.ai/pool"]: j for j in kube.of_kind("Job")}
    gpu_job = jobs["gpu-l4"]
    _complete_builds(kube, {"cpu-standard": REPORTS["cpu-standard"]})
    # The GPU build still runs: its pod found no node.
    kube.objects[("Pod", "ml", "gpu-build-pod")] = {
        "kind": "Pod",
        "metadata": {
            "name": "gpu-build-pod",
            "namespace": "ml",
            "labels": {"batch.kubernetes.io/job-name": gpu_job["metadata"]["name"]},
            "creationTimestamp": "2026-11-24T00:00:00Z",
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                    "lastTransitionTime": "2026-11-24T00:00:01Z",
                }
            ],
        },
    }
    outcome = reconciler.reconcile(_body(spec, status))
    status = outcome.wire()
    # Serving, but not settled: Ready is kept for a model whose every build is done.
    assert status["phase"] == "Building", status["phase"]
    assert status["decision"]["pool"] == "cpu-standard"
    built = _condition(status, "Built")
    assert (built["status"], built["reason"]) == ("False", "PartiallyBuilt")
    assert ("Normal", "PartiallyBuilt") in [(e.type, e.reason) for e in outcome.events]
    assert "gpu-l4 still builds" in built["message"]
    assert "Insufficient nvidia.com/gpu" in built["message"]
    (gpu_entry,) = [b for b in status["builds"] if b["pool"] == "gpu-l4"]
    assert gpu_entry["phase"] == "Running" and "waits for a node" in gpu_entry["message"]
    assert {r["pool"] for r in status["variants"]} == {"cpu-standard"}
    assert [d["metadata"]["labels"]["lepton.ai/pool"] for d in kube.of_kind("Deployment")] == [
        "cpu-standard"
    ]

    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert _condition(status, "Built")["reason"] == "BuildSucceeded"
    assert {r["pool"] for r in status["variants"]} == {"cpu-standard", "gpu-l4"}


def _bursts(spec, config, quiet_s: int) -> dict[str, Any]:
    """A scale-to-zero model on a CPU pool with a 60 s cold start, given three
    one-minute loads ``quiet_s`` apart, then left idle; returns the status."""
    spec["scaling"] = {"minReplicas": 0, "scaleToZero": True, "scaleDownStabilizationSeconds": 30}
    cpu = config.pools[0].model_dump(by_alias=True, exclude_none=True)
    spec["pools"] = [{**cpu, "provisioningSeconds": 60}]
    live = FakeLive(_sample(p95=9.0, rate=2.0))
    cpu_only = {"cpu-standard": REPORTS["cpu-standard"]}
    _, reconciler, clock, status = _ready(spec, config, live, cpu_only)
    for _ in range(3):
        live.answers = [_sample(p95=9.0, rate=2.0)]
        status = _passes(reconciler, spec, clock, status, 60)
        live.answers = [_sample(p95=None, rate=0.0)]
        status = _passes(reconciler, spec, clock, status, quiet_s)
    return status


def test_idle_gaps_too_short_to_repay_a_cold_start_keep_one_warm_replica(spec, config):
    """Zero for 45 s between loads, then a 60 s cold start paid for: zero would cost
    more than a warm replica and make requests wait, so one stays, and the reason and
    status.activation say why."""
    status = _bursts(spec, config, quiet_s=75)
    decision = status["decision"]
    assert decision["replicas"] == 1, decision["reason"]
    assert "too short to repay a cold start" in decision["reason"]
    assert status["activation"]["wakes"] >= 2 and status["activation"]["coldShare"] > 0.5


def test_idle_gaps_long_enough_to_repay_the_cold_start_go_to_zero(spec, config):
    status = _bursts(spec, config, quiet_s=600)
    assert status["decision"]["replicas"] == 0, status["decision"]["reason"]
    assert status["activation"]["wakes"] == 2


def test_a_running_builds_objects_are_made_once_and_again_after_one_goes(spec, config):
    """Each event of a running build starts a pass: once its volume is bound, those
    passes read the Job and the report and apply nothing; an object deleted (its
    watch event calls ``forget_build_objects``) is made again by the next pass."""
    kube = _with_source_claim(CountingKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    kube.requests.clear()
    status = reconciler.reconcile(_body(spec, status)).wire()  # the claim not bound yet
    assert [r for r in kube.requests if r[0] == "apply"] == []
    assert kube.requests.count(("get", "PersistentVolumeClaim")) == 1  # the claim alone
    for claim in kube.of_kind("PersistentVolumeClaim"):
        claim["status"] = {"phase": "Bound"}
    status = reconciler.reconcile(_body(spec, status)).wire()  # reads it bound
    kube.requests.clear()
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["phase"] == "Building"
    assert [r for r in kube.requests if r[0] == "apply"] == []
    assert ("get", "PersistentVolumeClaim") not in kube.requests  # nor the source claim
    assert _condition(status, "StorageAvailable")["status"] == "True"
    job = kube.of_kind("Job")[0]
    kube.delete_owned(job, "lm-uid")
    reconciler.forget_build_objects("ml", "minilm")
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert job["metadata"]["name"] in {j["metadata"]["name"] for j in kube.of_kind("Job")}
    assert status["phase"] == "Building"


def test_a_first_build_ends_without_looking_for_stale_builds_and_a_rebuild_deletes_them(
    spec, config
):
    """The pass that reads a finished build is the one a user waits on: a model's first
    build leaves nothing stale, so that pass lists no old Jobs; a rebuild's does."""
    kube = _with_source_claim(CountingKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS)
    kube.requests.clear()
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["phase"] in ("Deploying", "Ready")
    assert ("list", "Job") not in kube.requests
    old = {j["metadata"]["name"] for j in kube.of_kind("Job")}
    spec["model"]["uri"] = "pvc://models/minilm-v2"
    status = reconciler.reconcile(_body(spec, status, generation=2)).wire()
    assert {j["metadata"]["name"] for j in kube.of_kind("Job")} > old
    _complete_builds(kube, REPORTS)
    reconciler.reconcile(_body(spec, status, generation=2))
    assert not old & {j["metadata"]["name"] for j in kube.of_kind("Job")}


def test_a_new_build_stops_the_older_builds_jobs_still_running_and_keeps_finished_ones(
    spec, config
):
    """Nothing serves from an unfinished build: a spec changed mid-build stops the old
    build's Jobs at once (a GPU build would otherwise run on for hours beside the new
    one), with an Event; a finished build's Jobs stay until the new build ends."""
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, {"cpu-standard": REPORTS["cpu-standard"]})  # the GPU still builds
    status = reconciler.reconcile(_body(spec, status)).wire()
    first = {
        j["metadata"]["labels"]["lepton.ai/pool"]: j["metadata"]["name"]
        for j in kube.of_kind("Job")
    }
    spec["model"]["uri"] = "pvc://models/minilm-v2"
    outcome = reconciler.reconcile(_body(spec, status, generation=2))
    names_now = {j["metadata"]["name"] for j in kube.of_kind("Job")}
    assert first["gpu-l4"] not in names_now  # was running: stopped
    assert first["cpu-standard"] in names_now  # finished: kept for now
    assert len(names_now) == 1 + len(first)  # the new build's Jobs made
    said = [e for e in outcome.events if e.reason == "BuildSuperseded"]
    assert len(said) == 1 and first["gpu-l4"] in said[0].message, outcome.events


def test_a_pool_whose_build_accepted_nothing_while_another_builds_leaves_the_model_building(
    spec, config
):
    """No GPU here: the GPU pool's build ends with nothing accepted while the CPU's runs.
    Nothing is wrong yet, so the model stays Building (make demo printed Degraded and a
    NoPlan Event then) and says what it waits on; the budget is not weighed yet."""
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, {"gpu-l4": [_variant("fp16", 4.9, 1900, "rejected")]})
    outcome = reconciler.reconcile(_body(spec, status))
    status = outcome.wire()
    assert status["phase"] == "Building", status
    deployed = _condition(status, "Deployed")
    assert deployed["reason"] == "WaitingForBuild"
    assert "cpu-standard still builds" in deployed["message"]
    assert not [e for e in outcome.events if e.reason in ("NoPlan", "OverBudget")]
    _complete_builds(kube, REPORTS)
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["phase"] in ("Deploying", "Ready") and status["decision"]["pool"]


def test_a_rebuild_keeps_an_older_build_whose_report_is_written_before_its_job_completes(
    spec, config
):
    """The builder writes its report as its last act and the model may serve from it
    before the Job controller marks the Job complete (the fault suite changed the spec
    in that window): such a build is finished, so the rebuild keeps its Jobs."""
    kube = _with_source_claim(FakeKube())
    reconciler = _reconciler(kube, config)
    status = reconciler.reconcile(_body(spec)).wire()
    _complete_builds(kube, REPORTS, job_complete=False)
    status = reconciler.reconcile(_body(spec, status)).wire()
    assert status["decision"]["variant"], status
    first = {j["metadata"]["name"] for j in kube.of_kind("Job")}
    spec["model"]["uri"] = "pvc://models/minilm-v2"
    outcome = reconciler.reconcile(_body(spec, status, generation=2))
    assert first < {j["metadata"]["name"] for j in kube.of_kind("Job")}
    assert not [e for e in outcome.events if e.reason == "BuildSuperseded"]
