"""GitOps for real: Argo CD syncs the operator and a LeptonModel from git.

Real Argo CD (application controller and repo-server built from Go modules, Redis from
Debian) syncs two Applications, the shipped ``examples/gitops/`` manifests pointed at a
local git repository (``file://``) holding this checkout's chart and
``examples/digits.yaml``. The operator, installed from the chart by Argo CD, builds the
model with the real builder and serves it on a real tritonserver. The test reads the
model's health only from the Application's ``status`` (Argo CD running our Lua from
``argocd-cm``), then commits a change that makes the operator scale, and checks that
the Application stays ``Synced`` and that syncs with ``prune: true`` delete nothing the
operator made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lepton_e2e import models
from lepton_e2e.argocd import NAMESPACE as ARGOCD_NAMESPACE
from lepton_e2e.argocd import ArgoCD
from lepton_e2e.cluster import Cluster, state_root
from lepton_e2e.fixtures import (
    RESTRICTED,
    Kube,
    models_claim,
    namespace_cache,
    suite_cache,
    wait_for,
)
from lepton_e2e.gitrepo import LocalRepo, example_application
from lepton_e2e.lanes import LANE_A
from lepton_e2e.load import infer, steady_endpoints

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MODELS = "gitops-models"
OPERATOR_NAMESPACE = LANE_A.operator_namespace
MODEL_FILE = "examples/digits.yaml"
# What a prune could wrongly take: the serving objects and the build Jobs.
OWNED_KINDS = "deployments,services,jobs"


@pytest.fixture(scope="module")
def argocd(kube: Kube) -> Iterator[ArgoCD]:
    assert kube.runs_process_pods, "Argo CD runs beside the harness's own cluster"
    server = ArgoCD(Cluster())
    server.up()
    try:
        yield server
    finally:
        server.down()
        kube.kubectl("delete", "namespace", ARGOCD_NAMESPACE, "--wait=false", check=False)


def _app(kube: Kube, name: str) -> dict[str, Any]:
    return kube.get("applications.argoproj.io", name, ARGOCD_NAMESPACE)


def _state(app: dict[str, Any]) -> tuple[str, str, str]:
    status = app.get("status") or {}
    health = status.get("health") or {}
    return (
        (status.get("sync") or {}).get("status", ""),
        health.get("status", ""),
        (status.get("sync") or {}).get("revision", ""),
    )


def _summary(app: dict[str, Any], argocd: ArgoCD) -> str:
    """What to read when an Application does not get there: its conditions, last
    operation, resources' states, and Argo CD's last errors (the cluster's logs go with
    it at teardown)."""
    status = app.get("status") or {}
    operation = status.get("operationState") or {}
    resources = [
        (r.get("kind"), r.get("name"), r.get("status"), (r.get("health") or {}).get("status"))
        for r in status.get("resources") or []
    ]
    errors = [
        line
        for component in ("argocd-application-controller", "argocd-repo-server")
        for line in argocd.log(component).read_text(errors="replace").splitlines()
        if '"level":"error"' in line
    ]
    return (
        f"sync/health/revision {_state(app)}; conditions {status.get('conditions')}; "
        f"operation {operation.get('phase')}: {operation.get('message')}; "
        f"resources {resources}; Argo CD errors (last 5): {errors[-5:]}"
    )


def _wait_app(
    kube: Kube, argocd: ArgoCD, name: str, timeout: float, check: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    pytest.fail(f"{name}: timed out after {timeout:.0f} s; {_summary(_app(kube, name), argocd)}")


def _patch_app(kube: Kube, name: str, patch: dict[str, Any], check: bool = True) -> None:
    kube.kubectl(
        *("patch", "applications.argoproj.io", name, "-n", ARGOCD_NAMESPACE, "--type=merge"),
        *("-p", json.dumps(patch)),
        check=check,
    )


def _refresh(kube: Kube, name: str) -> None:
    """What a git webhook does: ask Argo CD to look at the repository now rather than at
    its next poll (every 3 minutes by default)."""
    kube.kubectl(
        "annotate",
        "applications.argoproj.io",
        name,
        "-n",
        ARGOCD_NAMESPACE,
        "argocd.argoproj.io/refresh=normal",
        "--overwrite",
    )


def _owned(kube: Kube, kinds: str = OWNED_KINDS) -> dict[str, str]:
    """``Kind/name`` -> uid of every object of ``kinds`` the operator made for the model."""
    items = json.loads(
        kube.kubectl(
            "get", kinds, "-n", MODELS, "-l", "lepton.ai/model=digits", "-o", "json"
        ).stdout
    )["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["uid"] for i in items}


@pytest.fixture(scope="module")
def repo() -> LocalRepo:
    repo = LocalRepo(state_root() / "gitops" / "repo").init()
    repo.copy_in(REPO / "charts" / "lepton-operator", "charts/lepton-operator")
    repo.copy_in(REPO / MODEL_FILE, MODEL_FILE)
    repo.commit("the operator's chart and the digits model")
    return repo


@pytest.fixture(scope="module")
def synced(kube: Kube, argocd: ArgoCD, repo: LocalRepo) -> Iterator[list[tuple[str, str, str]]]:
    """Both Applications applied; yields what was seen while the model's Application
    went to Healthy: (the Application's health, Argo CD's health message for the
    LeptonModel, the LeptonModel's phase at that moment), each change once. Both are
    removed afterwards, with what they made."""
    kube.kubectl("create", "namespace", MODELS)
    claim = models_claim(kube, MODELS)
    trained = models.train_digits(claim)
    # The suite's shared namespace cache: the other module that builds the digits
    # example reuses this build, or this one reuses its.
    namespace_cache(kube, MODELS, suite_cache())
    assert trained.test_accuracy > 0.9

    operator = example_application("lepton-operator", repo.url, argocd.server)
    # The namespace Argo CD creates enforces restricted Pod Security, as in the other tests.
    key, value = RESTRICTED.split("=")
    operator["spec"]["syncPolicy"]["managedNamespaceMetadata"] = {"labels": {key: value}}
    # The local Triton is the nvidia-pytriton wheel's: the python backend only.
    values = operator["spec"]["source"]["helm"]["valuesObject"]
    # The operator watches lane A's namespaces, not those of the lane beside it.
    values["config"] = {
        "images": {"tritonNativeBackends": []},
        "watchNamespaces": list(LANE_A.watch),
    }
    model_app = example_application("lepton-models", repo.url, argocd.server)
    model_app["spec"]["source"]["directory"]["include"] = Path(MODEL_FILE).name
    model_app["spec"]["destination"]["namespace"] = MODELS
    try:
        # The operator first: its Application brings the CRD the models need.
        kube.apply(operator)
        _wait_app(
            kube,
            argocd,
            "lepton-operator",
            300,
            lambda: _state(_app(kube, "lepton-operator"))[:2] == ("Synced", "Healthy"),
        )
        kube.apply(model_app)
        seen: list[tuple[str, str, str]] = []

        def healthy() -> bool:
            app = _app(kube, "lepton-models")
            lm = kube.kubectl("get", "lm", "digits", "-n", MODELS, "-o", "json", check=False)
            phase = ""
            if lm.returncode == 0:
                phase = (json.loads(lm.stdout).get("status") or {}).get("phase") or ""
                assert phase not in ("Failed", "Degraded"), lm.stdout
            health = (app.get("status") or {}).get("health") or {}
            entry = (health.get("status", ""), _model_health(app).get("message", ""), phase)
            if not seen or seen[-1] != entry:
                seen.append(entry)
            return _state(app)[:2] == ("Synced", "Healthy")

        _wait_app(kube, argocd, "lepton-models", 420, healthy)
        yield seen
    finally:
        _remove(kube)


def _model_health(app: dict[str, Any]) -> dict[str, Any]:
    """The health Argo CD computed for the LeptonModel itself (status.resources)."""
    for resource in (app.get("status") or {}).get("resources") or []:
        if resource.get("kind") == "LeptonModel":
            health: dict[str, Any] = resource.get("health") or {}
            return health
    return {}


def _remove(kube: Kube) -> None:
    """Delete both Applications with what they made, so later tests find the cluster as
    before: the models first, while the operator still runs (their owner references take
    what the operator made, and the operator lifts kopf's finalizer, which its timers
    need), as examples/gitops/README.md advises; then the operator's Application, given
    the resources finalizer here (the example leaves it off on purpose). A sync still
    retrying would hold up each delete, so it is terminated first. Whatever a failed
    test leaves is cleared, saying so, rather than left to wreck the tests after it.
    Every wait stays under kubectl's 120 s limit in ``Kube.kubectl``."""

    def delete_app(name: str) -> None:
        app = kube.kubectl(
            *("get", "applications.argoproj.io", name, "-n", ARGOCD_NAMESPACE, "-o", "json"),
            check=False,
        )
        if app.returncode != 0:
            return
        if ((json.loads(app.stdout).get("status") or {}).get("operationState") or {}).get(
            "phase"
        ) == "Running":
            _patch_app(kube, name, {"status": {"operationState": {"phase": "Terminating"}}})
        kube.kubectl(
            *("delete", "applications.argoproj.io", name, "-n", ARGOCD_NAMESPACE),
            *("--wait=true", "--timeout=100s"),
            check=False,
        )

    delete_app("lepton-models")
    if _has_crd(kube):
        kube.kubectl(
            *("wait", "--for=delete", "leptonmodels.lepton.ai", "--all", "-n", MODELS),
            "--timeout=100s",
            check=False,
        )
        for name in kube.kubectl(
            "get", "lm", "-n", MODELS, "-o", "name", check=False
        ).stdout.split():
            print(f"teardown: {name} outlived its Application; lifting its finalizers")
            kube.kubectl(
                *("patch", name, "-n", MODELS, "--type=merge"),
                *("-p", '{"metadata":{"finalizers":null}}'),
                check=False,
            )
    _patch_app(
        kube,
        "lepton-operator",
        {"metadata": {"finalizers": ["resources-finalizer.argocd.argoproj.io"]}},
        check=False,
    )
    delete_app("lepton-operator")
    print(f"teardown: the CRD after the operator Application's cascade: {_has_crd(kube)}")
    for namespace in (MODELS, OPERATOR_NAMESPACE):
        kube.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=100s", check=False)
    # Later tests install the chart with Helm, which creates the CRD if it is missing.


def _has_crd(kube: Kube) -> bool:
    result = kube.kubectl("get", "crd", "leptonmodels.lepton.ai", check=False)
    return result.returncode == 0


def test_argocd_reports_the_model_progressing_then_healthy_from_our_lua(
    kube: Kube, synced: list[tuple[str, str, str]]
) -> None:
    # Argo CD has no health of its own for a LeptonModel: without our script the
    # Application would be Healthy as soon as the object exists. With it, Progressing
    # while the operator builds and rolls out, with the script's message, then Healthy.
    building = [
        (health, message)
        for health, message, phase in synced
        if phase in ("Pending", "Building", "Deploying")
    ]
    assert building and all(health == "Progressing" for health, _ in building), synced
    assert all(message for _, message in building), synced
    assert synced[-1][0] == "Healthy" and synced[-1][2] == "Ready", synced
    assert [h for h, _, _ in synced].index("Progressing") < len(synced) - 1, synced
    status = kube.get("lm", "digits", MODELS)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    healthy = _model_health(_app(kube, "lepton-models"))
    assert healthy["status"] == "Healthy"
    says = f"{ready['reason']}: {ready['message']}" if ready.get("message") else ready["reason"]
    assert healthy["message"].startswith(says), healthy

    # And it really serves: a real tritonserver answers through the Service's endpoints.
    (endpoint,) = wait_for(
        steady_endpoints(kube, "digits", MODELS), timeout=120, what="steady endpoints"
    )
    model = "digits"  # whatever variant serves
    pixels = np.zeros((1, 1, 8, 8), dtype=np.float32)
    logits = infer(endpoint, model, {"pixels": pixels})["logits"]
    assert logits.shape == (1, 10)

    # Argo CD tracks only what git holds: the LeptonModel, not what the operator made.
    tracked = {r["kind"] for r in _app(kube, "lepton-models")["status"]["resources"]}
    assert tracked == {"LeptonModel"}


def test_scaling_from_git_keeps_synced_and_prune_deletes_nothing_the_operator_made(
    kube: Kube, repo: LocalRepo, synced: list[tuple[str, str, str]]
) -> None:
    before = _owned(kube)
    assert {"Deployment/digits-cpu-standard", "Service/digits"} <= set(before), before
    assert any(key.startswith("Job/") for key in before), before

    # A commit raises the floor to two replicas; the operator scales its Deployment.
    document = yaml.safe_load((repo.path / MODEL_FILE).read_text())
    document["spec"]["scaling"]["minReplicas"] = 2
    repo.write_yaml(MODEL_FILE, document)
    revision = repo.commit("digits: at least two replicas")
    _refresh(kube, "lepton-models")

    def synced_to_revision() -> dict[str, Any] | None:
        app = _app(kube, "lepton-models")
        operation = (app.get("status") or {}).get("operationState") or {}
        result = operation.get("syncResult") or {}
        done = operation.get("phase") == "Succeeded" and result.get("revision") == revision
        return app if done else None

    app = wait_for(synced_to_revision, timeout=120, interval=1, what=f"a sync of {revision}")
    operation = app["status"]["operationState"]
    assert operation["operation"]["sync"]["prune"] is True  # automated, prune: true

    def scaled() -> bool:
        lm = kube.get("lm", "digits", MODELS)
        deployment = kube.get("deployment", "digits-cpu-standard", MODELS)
        status = lm.get("status") or {}
        return bool(
            lm["spec"]["scaling"]["minReplicas"] == 2
            and status.get("observedGeneration") == lm["metadata"]["generation"]
            and status.get("replicas") == 2
            and deployment["spec"]["replicas"] == 2
            and _state(_app(kube, "lepton-models"))[:2] == ("Synced", "Healthy")
        )

    wait_for(scaled, timeout=240, interval=2, what="two ready replicas, Synced and Healthy")

    # A manual sync with prune, as `argocd app sync --prune` asks for one, after the
    # operator has written status and scaled: it must find nothing to prune.
    _patch_app(
        kube, "lepton-models", {"operation": {"sync": {"revision": revision, "prune": True}}}
    )

    def manual_sync_done() -> dict[str, Any] | None:
        app = _app(kube, "lepton-models")
        operation = (app.get("status") or {}).get("operationState") or {}
        started = operation.get("operation", {}).get("initiatedBy", {})
        if (
            app.get("operation")
            or started.get("automated")
            or operation.get("phase")
            in (
                None,
                "Running",
            )
        ):
            return None
        return operation

    operation = wait_for(manual_sync_done, timeout=120, interval=1, what="the manual sync")
    assert operation["phase"] == "Succeeded", operation
    results = operation["syncResult"].get("resources") or []
    assert [r for r in results if r.get("status") == "Pruned"] == []
    assert {r["kind"] for r in results} == {"LeptonModel"}, results

    # Stays Synced and Healthy while the operator keeps writing status (each sample).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert _state(_app(kube, "lepton-models"))[:2] == ("Synced", "Healthy")
        time.sleep(2)
    after = _owned(kube)
    # Nothing the operator made was deleted or replaced: same objects, same uids.
    assert {key: uid for key, uid in after.items() if key in before} == before
    assert kube.get("deployment", "digits-cpu-standard", MODELS)["spec"]["replicas"] == 2
    assert _model_health(_app(kube, "lepton-models"))["status"] == "Healthy"


def _commit_model(
    kube: Kube, repo: LocalRepo, change: Callable[[dict[str, Any]], None], why: str
) -> str:
    document = yaml.safe_load((repo.path / MODEL_FILE).read_text())
    change(document)
    repo.write_yaml(MODEL_FILE, document)
    revision = repo.commit(why)
    _refresh(kube, "lepton-models")
    return revision


def test_an_slo_commit_changes_the_decision_and_an_invalid_one_stops_at_admission(
    kube: Kube, argocd: ArgoCD, repo: LocalRepo, synced: list[tuple[str, str, str]]
) -> None:
    # A looser SLO in git reaches the operator through Argo CD and into its decision.
    _commit_model(
        kube, repo, lambda d: d["spec"]["slo"].update(p95LatencyMs=50), "digits: p95 50 ms"
    )

    def decided_for_the_new_slo() -> dict[str, Any] | None:
        lm = kube.get("lm", "digits", MODELS)
        status = lm.get("status") or {}
        decision = status.get("decision") or {}
        fresh = status.get("observedGeneration") == lm["metadata"]["generation"]
        return decision if fresh and "p95 50 ms" in decision.get("reason", "") else None

    decision = wait_for(
        decided_for_the_new_slo, timeout=180, interval=2, what="a decision for 50 ms"
    )
    assert lm_spec(kube)["slo"]["p95LatencyMs"] == 50, decision

    # An invalid LeptonModel in git: the apiserver refuses it by field name, the
    # Application stays OutOfSync saying so, and the last good version keeps serving.
    revision = _commit_model(
        kube, repo, lambda d: d["spec"]["slo"].update(p95LatencyMs=-5), "digits: a bad SLO"
    )

    def refused() -> dict[str, Any] | None:
        """OutOfSync at the bad revision, the apiserver's field-named refusal in the sync
        operation's result or in the Application's conditions (where Argo CD puts a
        dry-run failure)."""
        app = _app(kube, "lepton-models")
        status = app.get("status") or {}
        sync = status.get("sync") or {}
        said = json.dumps([status.get("operationState"), status.get("conditions")])
        outofsync = sync.get("status") == "OutOfSync" and sync.get("revision") == revision
        return {"message": said[:2000]} if outofsync and "p95LatencyMs" in said else None

    deadline = time.monotonic() + 180
    operation = refused()
    while operation is None and time.monotonic() < deadline:
        time.sleep(2)
        operation = refused()
    if operation is None:
        pytest.fail(f"the invalid revision: {_summary(_app(kube, 'lepton-models'), argocd)}")
    print(f"Argo CD on the invalid revision: {operation.get('message')}")
    assert lm_spec(kube)["slo"]["p95LatencyMs"] == 50  # the last good version stays
    lm_status = kube.get("lm", "digits", MODELS)["status"]
    assert lm_status["phase"] == "Ready", lm_status
    (endpoint, *_) = wait_for(
        steady_endpoints(kube, "digits", MODELS), timeout=120, what="steady endpoints"
    )
    model = "digits"  # whatever variant serves
    logits = infer(endpoint, model, {"pixels": np.zeros((1, 1, 8, 8), dtype=np.float32)})
    assert logits["logits"].shape == (1, 10)

    # Fixed in git: Synced again.
    _commit_model(
        kube, repo, lambda d: d["spec"]["slo"].update(p95LatencyMs=50), "digits: p95 50 ms again"
    )
    wait_for(
        lambda: _state(_app(kube, "lepton-models"))[:2] == ("Synced", "Healthy"),
        timeout=180,
        interval=2,
        what="Synced and Healthy after the fix",
    )

    # Synced again, yet the automated sync of the invalid revision is still retrying it
    # (Argo CD retries the revision it started with, here up to 10 times over ~30 min);
    # while it runs, Argo CD acts on nothing else, a delete included. What a user does,
    # `argocd app terminate-op lepton-models`, is this status patch.
    operation = _app(kube, "lepton-models")["status"]["operationState"]
    assert operation["phase"] == "Running", operation
    assert operation["operation"]["sync"]["revision"] == revision, operation
    _patch_app(kube, "lepton-models", {"status": {"operationState": {"phase": "Terminating"}}})
    ended = wait_for(
        lambda: (lambda op: op if op.get("phase") not in ("Running", "Terminating") else None)(
            _app(kube, "lepton-models")["status"]["operationState"]
        ),
        timeout=60,
        interval=1,
        what="the retrying sync terminated",
    )
    assert ended["phase"] == "Failed", ended
    assert _state(_app(kube, "lepton-models"))[:2] == ("Synced", "Healthy")


def lm_spec(kube: Kube) -> dict[str, Any]:
    spec: dict[str, Any] = kube.get("lm", "digits", MODELS)["spec"]
    return spec


def test_a_pool_migration_from_git_keeps_synced_and_nothing_is_pruned(
    kube: Kube, argocd: ArgoCD, repo: LocalRepo, synced: list[tuple[str, str, str]]
) -> None:
    # A commit adds a cheaper CPU pool (the same simulated nodes, another price): the
    # operator builds for it, moves serving there and removes the old pool's Deployment
    # itself. Argo CD, which tracks only the LeptonModel, must see no drift in any of it.
    old = "Deployment/digits-cpu-standard"
    assert old in _owned(kube)

    def add_pool(document: dict[str, Any]) -> None:
        standard = document["spec"]["pools"][0]
        document["spec"]["pools"].append({**standard, "name": "cpu-cheap", "hourlyPriceUSD": 0.17})

    revision = _commit_model(kube, repo, add_pool, "digits: a cheaper CPU pool")
    states: list[tuple[str, str]] = []

    def migrated() -> dict[str, Any] | None:
        app = _app(kube, "lepton-models")
        operation = (app.get("status") or {}).get("operationState") or {}
        synced_revision = operation.get("syncResult", {}).get("revision") == revision
        sync, health, compared = _state(app)
        # Argo CD compares again after its sync: until that comparison is with the synced
        # commit, the sync status is the older comparison's (OutOfSync, seen once in a
        # clean run), not drift from what the operator did.
        if synced_revision and operation.get("phase") == "Succeeded" and compared == revision:
            states.append((sync, health))
        lm = kube.get("lm", "digits", MODELS)
        status = lm.get("status") or {}
        owned = _owned(kube)
        done = (
            synced_revision
            and (status.get("decision") or {}).get("pool") == "cpu-cheap"
            and status.get("phase") == "Ready"
            and old not in owned
            and "Deployment/digits-cpu-cheap" in owned
        )
        return status if done else None

    status = wait_for(migrated, timeout=420, interval=2, what="serving moved to cpu-cheap")
    print(f"pool migration under Argo CD: {status['decision']['reason']}")
    # From Argo CD's first Synced comparison with that commit on, every sample: Synced
    # (Healthy or, while the new pool's build and rollout ran, Progressing), never
    # OutOfSync. Right after its sync Argo CD has once compared the commit with the live
    # object from before its own apply (OutOfSync with the model still Healthy, the
    # operator not yet acting: one sample, in one clean run of 2026-12-06): its timing,
    # not drift. Drift the operator made would follow the first Synced and fail here,
    # and a model never Synced leaves no such sample and fails too.
    first = next((i for i, (sync, _) in enumerate(states) if sync == "Synced"), None)
    assert first is not None, states
    assert all(sync == "Synced" for sync, _ in states[first:]), states
    wait_for(
        lambda: _state(_app(kube, "lepton-models"))[:2] == ("Synced", "Healthy"),
        timeout=120,
        interval=2,
        what="Synced and Healthy on the new pool",
    )
    operation = _app(kube, "lepton-models")["status"]["operationState"]
    assert [
        r for r in operation["syncResult"].get("resources") or [] if r.get("status") == "Pruned"
    ] == []
    (endpoint, *_) = wait_for(
        steady_endpoints(kube, "digits", MODELS), timeout=120, what="steady endpoints"
    )
    model = "digits"  # whatever variant serves
    logits = infer(endpoint, model, {"pixels": np.zeros((1, 1, 8, 8), dtype=np.float32)})
    assert logits["logits"].shape == (1, 10)


# Everything the operator can make for a model (test_operator_lifecycle's list): the
# cascade must take all of it, pods included.
EVERYTHING_KINDS = (
    "jobs,deployments,replicasets,services,configmaps,persistentvolumeclaims,"
    "serviceaccounts,roles,rolebindings,pods"
)


def test_deleting_the_application_removes_the_model_and_everything_the_operator_made(
    kube: Kube, argocd: ArgoCD, synced: list[tuple[str, str, str]]
) -> None:
    # Runs last in this module: it takes the model away from the tests above.
    made = _owned(kube, EVERYTHING_KINDS)
    kinds = {key.split("/")[0] for key in made}
    assert {"Deployment", "Service", "Job", "Pod", "ConfigMap"} <= kinds, made
    claim_uid = kube.get("pvc", "models", MODELS)["metadata"]["uid"]  # the user's, not ours

    # A cascading delete, as `argocd app delete --cascade` does: the Application's
    # resources finalizer (examples/gitops/lepton-models.yaml) makes Argo CD delete what
    # it synced, the LeptonModel, before the Application goes; the LeptonModel's owner
    # references take the rest.
    started = time.monotonic()
    kube.kubectl(
        "delete",
        "applications.argoproj.io",
        "lepton-models",
        "-n",
        ARGOCD_NAMESPACE,
        "--wait=false",
    )

    def application_gone() -> bool:
        result = kube.kubectl(
            "get",
            "applications.argoproj.io",
            "lepton-models",
            "-n",
            ARGOCD_NAMESPACE,
            check=False,
        )
        return result.returncode != 0 and "NotFound" in result.stderr

    _wait_app(kube, argocd, "lepton-models", 180, application_gone)
    application_seconds = time.monotonic() - started
    assert kube.kubectl("get", "lm", "digits", "-n", MODELS, check=False).returncode != 0

    def nothing_left() -> bool:
        return not (set(_owned(kube, EVERYTHING_KINDS).values()) & set(made.values()))

    wait_for(nothing_left, timeout=180, interval=2, what="nothing the operator made left")
    print(
        f"cascade delete: Application gone after {application_seconds:.0f} s, "
        f"all {len(made)} objects the operator made gone after "
        f"{time.monotonic() - started:.0f} s"
    )
    # What the user made stays: the claim holding the model, the namespace.
    assert kube.get("pvc", "models", MODELS)["metadata"]["uid"] == claim_uid
    namespace = json.loads(kube.kubectl("get", "namespace", MODELS, "-o", "json").stdout)
    assert namespace["status"]["phase"] == "Active"
