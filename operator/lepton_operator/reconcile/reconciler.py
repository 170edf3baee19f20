"""One idempotent pass over a LeptonModel: validate -> build -> canary -> observe ->
plan -> act.

Run it twice, or after a crash at any line, and it yields the same objects: names are
derived from the spec, writes are server-side applies, and objects that must not be
overwritten once made (a Job, a report ConfigMap) are created only when absent. The
pass returns the status it observed (typed) and the events worth telling; the
controller writes the status only where it differs, so a quiet cluster sees no update
storm. Each step is a method with a typed input and output; a step that ends the pass
early returns the ``Outcome``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from lepton_operator import activation, advisory, constants, preflight
from lepton_operator.api.spec import (
    GPU_ONLY_VARIANTS,
    LeptonModelSpec,
    Mode,
    PoolSpec,
    parse_spec,
)
from lepton_operator.api.status import (
    ActivationStatus,
    BuildStatus,
    ConditionType,
    Endpoint,
    LiveFigures,
    Phase,
    PoolNodesStatus,
    VariantStatus,
    read_status,
)
from lepton_operator.canary.check import Canaries, CanaryResult, waiting_jobs
from lepton_operator.conditions import condition_reason
from lepton_operator.config import OperatorConfig
from lepton_operator.decide import decide
from lepton_operator.kube import Kube, Rejected
from lepton_operator.live.sample import LiveSample, MetricsUnavailable
from lepton_operator.metrics import timed_step
from lepton_operator.observation import (
    REFRESH_SECONDS,
    ready_replicas,
    refresh_due,
    serving_configs,
)
from lepton_operator.planning import NoPlan, Plan
from lepton_operator.planning.backoff import Avoidance
from lepton_operator.reconcile import record
from lepton_operator.reconcile.builds import (
    JOB_NAME_LABEL,
    BuildsRead,
    FetchedBuild,
    FinishedBuilds,
    assemble,
    job_seconds,
    job_started,
    job_state,
    reused_from,
    reused_note,
    still_building,
    waiting_for_node,
)
from lepton_operator.reconcile.state import Outcome, PassState
from lepton_operator.report import REPORT_KEY, ReportError, parse_report
from lepton_operator.resources import activator as activator_objects
from lepton_operator.resources import build as build_objects
from lepton_operator.resources import names, serving
from lepton_operator.sourcecheck import source_verdict
from lepton_operator.timestamps import duration_seconds

SERVING_KINDS = frozenset({"Deployment", "Service", "ServiceMonitor"})
# How long a build volume's claim may stay Pending before StorageAvailable says why.
STORAGE_GRACE_S = 30.0


class LiveSource(Protocol):
    """Where live figures come from: Prometheus in the operator, a fake in unit tests."""

    def sample(self, namespace: str, model: str) -> LiveSample: ...


@dataclass(frozen=True)
class Validated:
    """The spec as parsed, and the pools it serves on (its own, else the operator's)."""

    spec: LeptonModelSpec
    pools: list[PoolSpec]


@dataclass(frozen=True)
class Built:
    """At least one pool's build finished: what it says, and what serving may use."""

    build: str  # the build hash
    read: BuildsRead
    running: list[BuildStatus]  # other pools' builds still running
    accepted: list[VariantStatus]  # rows that passed the guard and no canary failed


@dataclass(frozen=True)
class Observed:
    """What the cluster and Prometheus say now, for the planner."""

    sample: LiveSample | None  # fresh figures, when due
    pods: list[dict[str, Any]]  # the serving pods
    avoidance: Avoidance  # pools left out (pods waiting for a node, back-offs)
    waiting: activation.Demand | None  # requests held at the activator
    cold_s: float | None  # the cold start a request at zero would wait
    too_cold: bool  # over spec.scaling.maxColdStartSeconds
    weighed: activation.ZeroWeighed | None  # zero replayed over the remembered load
    floor: int  # replicas planned at least (demand, too cold, or zero costs more)


def _bound(claim: Mapping[str, Any]) -> bool:
    return (claim.get("status") or {}).get("phase") == "Bound"


@dataclass(frozen=True)
class MadeBuildObjects:
    """A build's objects as one pass made them: for which model and build, and the
    build volume's claim as the apiserver last answered (None: no volume); ``first``:
    the model had no build before, so no stale build is left to delete when it ends."""

    uid: str
    build: str
    claim: dict[str, Any] | None
    first: bool = False


@dataclass(frozen=True)
class Served:
    ready: int
    deployments: list[dict[str, Any]]  # the serving Deployments left (the chosen one, ...)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        config: OperatorConfig,
        clock: Callable[[], str],
        canaries: Canaries | None = None,
        live: LiveSource | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        activator: activation.ActivatorRef | None = None,
        nodes: Callable[[], Sequence[Mapping[str, Any]]] | None = None,
        storage_classes: Callable[[], Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        """``activator``: where the activator runs; None (no activator installed): a
        model at zero has no request path, as before. ``nodes``: the cluster's nodes
        (``preflight.slim_node``), from a watch; None: not checked. ``storage_classes``:
        the cluster's StorageClasses (``preflight.slim_storage_class``), from a watch;
        None: only a bound build volume is said to be so."""
        self.kube = kube
        self.config = config
        self.clock = clock
        self.canaries = canaries
        self.live = live
        self.refresh_seconds = refresh_seconds
        self.activator = activator
        self.nodes = nodes
        self.storage_classes = storage_classes
        self._finished = FinishedBuilds()
        # The build objects applied, per model, while its build runs (bounded by the
        # models there are; dropped when the model goes).
        self._build_objects: dict[tuple[str, str], MadeBuildObjects] = {}
        # The timestamp of the figures each model last planned with (by uid): a pass
        # between two fleet samples has nothing new, and must not count one twice.
        self._planned_with: dict[str, float] = {}

    # ---- the pass ------------------------------------------------------------------
    def reconcile(self, body: dict[str, Any]) -> Outcome:
        try:
            return self._reconcile(body, self._start(body))
        except Rejected as error:
            return self._rejected(body, error)

    def _start(self, body: dict[str, Any]) -> PassState:
        """A pass over the status as the apiserver holds it, for the body's generation."""
        generation = int(body["metadata"].get("generation", 0))
        return PassState.start(read_status(body.get("status")), generation, self.clock())

    def _rejected(self, body: dict[str, Any], error: Rejected) -> Outcome:
        """An object the pass made was refused by the apiserver (invalid, or denied by a
        policy): the condition of the step says which object and the apiserver's words;
        what serves keeps serving (Degraded), and the next pass tries again, so lifting
        a policy heals the model without a spec change."""
        state = self._start(body)
        step = ConditionType.DEPLOYED if error.kind in SERVING_KINDS else ConditionType.BUILT
        state.condition(
            step,
            False,
            "RejectedByAPIServer",
            f"the apiserver refused {error.kind} {error.name} (HTTP {error.code}): {error.message}",
        )
        state.status.observed_generation = state.generation
        serving_now = (state.status.replicas or 0) > 0
        return state.finish(Phase.DEGRADED if serving_now else Phase.FAILED)

    def _reconcile(self, body: dict[str, Any], state: PassState) -> Outcome:
        state.status.observed_generation = state.generation
        with timed_step("validate"):
            valid = self._validate(body, state)
        if isinstance(valid, Outcome):
            return valid
        with timed_step("build"):
            built = self._build(body, valid, state)
        if isinstance(built, Outcome):
            return built
        with timed_step("canary"):
            failed = self._canary(body, built, state)
        built = dataclasses.replace(
            built, accepted=[r for r in built.accepted if (r.pool, r.variant) not in failed]
        )
        with timed_step("observe"):
            observed = self._observe(body, valid, built, state)
        with timed_step("plan"):
            plan = self._plan(body, valid, built, observed, failed, state)
        if isinstance(plan, Outcome):
            return plan
        with timed_step("act"):
            return self._act(body, valid, built, observed, plan, state)

    # ---- validate ------------------------------------------------------------------
    def _validate(self, body: dict[str, Any], state: PassState) -> Validated | Outcome:
        """The spec parsed and servable on its pools; the pools' nodes and the model's
        source checked (conditions)."""
        try:
            spec = parse_spec(body.get("spec") or {})
        except ValidationError as error:
            state.condition(ConditionType.VALID, False, "InvalidSpec", _spec_errors(error))
            return state.finish(Phase.FAILED)
        pools = spec.pools or self.config.pools
        problem = _unservable(spec, pools)
        if problem:
            state.condition(ConditionType.VALID, False, *problem)
            return state.finish(Phase.FAILED)
        state.condition(
            ConditionType.VALID, True, "SpecAccepted", f"pools: {', '.join(p.name for p in pools)}"
        )
        self._check_nodes(pools, state)
        verdict = source_verdict(spec.model)
        if verdict is not None:  # a remote model: is it checked? (a Warning Event if not)
            state.condition(
                ConditionType.SOURCE_VERIFIED, verdict.verified, verdict.reason, verdict.message
            )
        return Validated(spec, pools)

    def _check_nodes(self, pools: list[PoolSpec], state: PassState) -> None:
        """``status.poolNodes`` and the NodesAvailable condition, when nodes are watched."""
        if self.nodes is None:
            return
        found = preflight.pool_nodes(pools, self.nodes())
        state.status.pool_nodes = [
            PoolNodesStatus(
                pool=p.pool, nodes=p.nodes, cordoned=p.cordoned, accelerators=p.accelerators
            )
            for p in found
        ]
        state.condition(ConditionType.NODES, *preflight.nodes_verdict(found))

    # ---- build ---------------------------------------------------------------------
    def _build(self, body: dict[str, Any], valid: Validated, state: PassState) -> Built | Outcome:
        """The build's objects made, its Jobs and reports read (a finished build's
        reading is kept); serving goes on once one pool's build has succeeded."""
        meta = body["metadata"]
        spec, pools = valid.spec, valid.pools
        images = self.config.images
        build = names.build_hash(spec, pools, images.builder, images.triton_native_backends)
        first = state.status.build_hash is None  # the model's first build: nothing stale
        if state.status.build_hash != build:
            state.tell(
                "Normal",
                "BuildStarted",
                f"building variants for {', '.join(p.name for p in pools)} (build {build})",
            )
            state.status.build_hash = build
        finished = self._finished.get(meta["uid"])
        fetched: list[FetchedBuild] = []
        if finished is not None and finished.build == build:
            read = finished.read(spec, pools)
        else:
            missing = None if self._made(meta, build) else self._missing_source_claims(body, spec)
            if missing:
                state.condition(ConditionType.BUILT, False, "SourceClaimMissing", missing)
                return state.finish(Phase.PENDING)
            newly = self._made(meta, build) is None
            claim = self._ensure_build_objects(body, spec, pools, build, first)
            if newly and not first:
                self._stop_superseded_builds(body, build, state)
            self._check_storage(body, claim, state)
            fetched = self._fetch_builds(body, pools, build)
            read = assemble(fetched, spec, pools)
        state.status.builds = read.builds
        state.status.variants = read.rows
        state.status.source_commit = read.source_commit
        running, succeeded = read.in_phase("Running"), read.in_phase("Succeeded")
        if running and not succeeded:
            state.condition(
                ConditionType.BUILT,
                False,
                "Building",
                f"{len(running)} of {len(read.builds)} build Job(s) running",
            )
            return state.finish(Phase.BUILDING)
        if not succeeded:
            state.condition(
                ConditionType.BUILT,
                False,
                "BuildFailed",
                "; ".join(f"{b.pool}: {b.message}" for b in read.builds),
            )
            return state.finish(Phase.FAILED)
        accepted = [r for r in read.rows if r.accepted]
        # While another pool still builds, the model serves from the pools that
        # finished; Built and the phase say it is not done (Ready means settled).
        state.condition(
            ConditionType.BUILT,
            not running,
            "PartiallyBuilt" if running else "BuildSucceeded",
            f"{len(accepted)} of {len(read.rows)} variant(s) accepted on "
            f"{len(succeeded)} of {len(read.builds)} pool(s)"
            + (f"; serving from those while {still_building(running)}" if running else "")
            + reused_note(succeeded),
        )
        # The other pools' builds re-plan when they finish; nothing is kept until then.
        if not running and (finished is None or finished.build != build):
            made = self._made(meta, build)
            if made is None or not made.first:
                self._delete_stale_builds(body, build)
            self.forget_build_objects(meta["namespace"], meta["name"])
            self._finished.remember(
                meta["uid"], build, fetched, lambda: self._fetch_builds(body, pools, build)
            )
        return Built(build, read, running, accepted)

    def _missing_source_claims(self, body: dict[str, Any], spec: LeptonModelSpec) -> str | None:
        """Why the build must wait: a PVC named by a pvc:// URI does not exist (read
        only while the model builds: a finished build needs its sources no more)."""
        namespace = body["metadata"]["namespace"]
        missing = [
            claim
            for claim in build_objects.source_claims(spec)
            if self.kube.get("v1", "PersistentVolumeClaim", claim, namespace) is None
        ]
        if not missing:
            return None
        return (
            f"PersistentVolumeClaim {', '.join(missing)} named by a pvc:// URI does "
            f"not exist in {namespace}; the build waits for it"
        )

    def _ensure_build_objects(
        self,
        body: dict[str, Any],
        spec: LeptonModelSpec,
        pools: list[PoolSpec],
        build: str,
        first: bool,
    ) -> dict[str, Any] | None:
        """The build's objects, made where absent; returns the build volume's claim as
        the apiserver has it (None: the model has none, its repository is a bucket).

        Made once per build: later passes of the same build (one follows each event of
        its Job, pod and report) reuse the answer, and re-read only a claim not bound
        yet (a WaitForFirstConsumer class binds it once the build's pod is scheduled).
        ``forget_build_objects`` (one of them deleted) makes the next pass apply them
        all again."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        made = self._made(meta, build)
        if made is not None and made.claim is not None and not _bound(made.claim):
            claim = self.kube.get(
                "v1", "PersistentVolumeClaim", names.model_volume(meta["name"]), meta["namespace"]
            )
            made = dataclasses.replace(made, claim=claim) if claim is not None else None
        if made is None:
            claim = self._apply_build_objects(body, spec, pools, build)
            made = MadeBuildObjects(meta["uid"], build, claim, first)
        self._build_objects[key] = made
        return made.claim

    def _made(self, meta: Mapping[str, Any], build: str) -> MadeBuildObjects | None:
        """This build's objects, when a pass of this model already made them."""
        made = self._build_objects.get((meta["namespace"], meta["name"]))
        if made is not None and made.uid == meta["uid"] and made.build == build:
            return made
        return None

    def forget_build_objects(self, namespace: str, model: str) -> None:
        """A build object went (or the model did): the next pass applies them again."""
        self._build_objects.pop((namespace, model), None)

    def _apply_build_objects(
        self, body: dict[str, Any], spec: LeptonModelSpec, pools: list[PoolSpec], build: str
    ) -> dict[str, Any] | None:
        meta = body["metadata"]
        model, namespace = meta["name"], meta["namespace"]
        repo = self.config.model_repository
        claim = None
        if not (spec.repository and spec.repository.s3):  # S3: the bucket replaces the PVC
            claim = self.kube.apply(
                build_objects.model_volume_claim(
                    model, namespace, repo.size, repo.storage_class_name
                ),
                body,
            )
        jobs = [names.build_job(model, pool.name, build) for pool in pools]
        cache_claim = self._namespace_source_cache(namespace)
        self.kube.apply(build_objects.builder_service_account(model, namespace), body)
        self.kube.apply(
            build_objects.builder_role(
                model, namespace, [names.report_configmap(job) for job in jobs]
            ),
            body,
        )
        self.kube.apply(build_objects.builder_role_binding(model, namespace), body)
        for pool, job in zip(pools, jobs, strict=True):
            # Created once: re-applying would wipe the report the builder wrote into it.
            if self.kube.get("v1", "ConfigMap", names.report_configmap(job), namespace) is None:
                self.kube.apply(build_objects.report_configmap(model, namespace, job, build), body)
            if self.kube.get("batch/v1", "Job", job, namespace) is None:
                self.kube.apply(
                    build_objects.job(
                        model,
                        namespace,
                        spec,
                        pool,
                        build,
                        self.config.images.builder,
                        self.config.builds.deadline_seconds,
                        self.config.builds.search_seconds_per_level,
                        self.config.images.triton_native_backends,
                        cache_claim,
                    ),
                    body,
                )
        return claim

    def _namespace_source_cache(self, namespace: str) -> str | None:
        """The namespace's source cache claim (``builds.sourceCacheClaim``) when the
        namespace has it; read when a build's Job is made, so a claim made later serves
        the next build. Never made nor deleted by the operator: it is the user's, shared
        by every model of the namespace."""
        claim = self.config.builds.source_cache_claim
        if not claim or self.kube.get("v1", "PersistentVolumeClaim", claim, namespace) is None:
            return None
        return claim

    def _check_storage(
        self, body: dict[str, Any], claim: dict[str, Any] | None, state: PassState
    ) -> None:
        """StorageAvailable: whether the build volume can bind (``preflight``). A claim
        is given ``STORAGE_GRACE_S`` to bind before it is said not to (a volume made by
        hand, or by a test harness, binds a claim no class serves)."""
        if claim is None:
            state.drop_condition(ConditionType.STORAGE)
            return
        phase = str((claim.get("status") or {}).get("phase") or "Pending")
        if self.storage_classes is None and phase != "Bound":
            return  # StorageClasses not watched: nothing to say of a claim still Pending
        verdict = preflight.storage_verdict(
            self.config.model_repository.storage_class_name,
            self.storage_classes() if self.storage_classes is not None else [],
            phase,
            names.model_volume(body["metadata"]["name"]),
        )
        created = (claim.get("metadata") or {}).get("creationTimestamp")
        age = record.epoch(state.now) - record.epoch(created) if created else STORAGE_GRACE_S
        if verdict[0] or age >= STORAGE_GRACE_S:
            state.condition(ConditionType.STORAGE, *verdict)

    def _fetch_builds(
        self, body: dict[str, Any], pools: list[PoolSpec], build: str
    ) -> list[FetchedBuild]:
        """Each pool's build Job state and, once it succeeded, its parsed report."""
        return [self._fetch_build(body, pool, build) for pool in pools]

    def _fetch_build(self, body: dict[str, Any], pool: PoolSpec, build: str) -> FetchedBuild:
        meta = body["metadata"]
        job_name = names.build_job(meta["name"], pool.name, build)
        job = self.kube.get("batch/v1", "Job", job_name, meta["namespace"])
        phase, message = job_state(job)
        # A running build's pods are read only while none is ready: then one may wait
        # for a node, which the status should name.
        if job is not None and (phase == "Failed" or (phase == "Running" and not job_started(job))):
            pods = self.kube.list_labelled(
                "v1", "Pod", meta["namespace"], f"{JOB_NAME_LABEL}={job_name}"
            )
            if phase == "Failed":
                phase, message = job_state(job, pods)
            else:
                message = waiting_for_node(pods)
        report = None
        written = None
        if phase == "Running" and job is not None:
            written = self._written_report(job_name, meta["namespace"])
            if written:
                phase = "Succeeded"
        if phase == "Succeeded":
            written = written or self._written_report(job_name, meta["namespace"])
            try:
                report = parse_report(written)
            except ReportError as error:
                phase, message = "Failed", str(error)
        seconds = job_seconds(job)
        entry = BuildStatus(
            pool=pool.name,
            job=job_name,
            phase=phase,
            message=message,
            duration_seconds=seconds if phase != "Running" else None,
            reused_from=reused_from(report),
        )
        return FetchedBuild(entry, report)

    def _written_report(self, job_name: str, namespace: str) -> str | None:
        """The build's report once its builder wrote it, else None.

        The builder writes its report as its last act, seconds before the Job controller
        marks the Job complete: a written report is the one rule for "this build is
        finished", read both to serve from it (``_fetch_build``) and to leave it running
        (``_stop_superseded_builds``)."""
        found = self.kube.get("v1", "ConfigMap", names.report_configmap(job_name), namespace)
        return ((found or {}).get("data") or {}).get(REPORT_KEY) or None

    def _stop_superseded_builds(self, body: dict[str, Any], build: str, state: PassState) -> None:
        """A new build's Jobs are made: older builds' Jobs still running are stopped.

        Nothing serves from an unfinished build, and the new one replaces it: left to
        run, it would only hold its pool (a GPU, for hours) beside the new build. Seen
        in make demo: a spec changed seconds after it was applied built twice at once.
        Finished builds stay until the new one ends (``_delete_stale_builds``): what
        serves may come from them, and their reports are read until then."""
        meta = body["metadata"]
        stopped = [
            job["metadata"]["name"]
            for job in self.kube.list_owned(
                "batch/v1",
                "Job",
                meta["namespace"],
                names.owned_selector(meta["name"], "builder"),
                meta["uid"],
            )
            if (job["metadata"].get("labels") or {}).get(constants.BUILD_HASH_LABEL) != build
            and self._unfinished(job, meta["namespace"])
            and self.kube.delete_owned(job, meta["uid"])
        ]
        if stopped:
            state.tell(
                "Normal",
                "BuildSuperseded",
                f"stopped {', '.join(sorted(stopped))}: build {build} replaces them",
            )

    def _unfinished(self, job: dict[str, Any], namespace: str) -> bool:
        """Neither marked finished by the Job controller nor done by its written report
        (the model may already serve from it)."""
        return job_state(job)[0] == "Running" and not self._written_report(
            job["metadata"]["name"], namespace
        )

    def _delete_stale_builds(self, body: dict[str, Any], build: str) -> None:
        meta = body["metadata"]
        for api_version, kind, component in (
            ("batch/v1", "Job", "builder"),
            ("v1", "ConfigMap", "build-report"),
        ):
            for obj in self.kube.list_owned(
                api_version,
                kind,
                meta["namespace"],
                names.owned_selector(meta["name"], component),
                meta["uid"],
            ):
                if (obj["metadata"].get("labels") or {}).get(constants.BUILD_HASH_LABEL) != build:
                    self.kube.delete_owned(obj, meta["uid"])

    # ---- canary --------------------------------------------------------------------
    def _canary(self, body: dict[str, Any], built: Built, state: PassState) -> set[tuple[str, str]]:
        """Hand the pods waiting at the canary gate to the checker and record the
        verdicts reached since the last pass; returns the (pool, variant) pairs that
        failed one for this build, which the plan must not choose again."""
        meta = body["metadata"]
        results: list[CanaryResult] = []
        if self.canaries is not None:
            pods = self.kube.list_labelled("v1", "Pod", meta["namespace"], _triton_pods(meta))
            self.canaries.submit(
                waiting_jobs(pods, meta["namespace"], meta["name"], built.read.references)
            )
            # Verdicts reached since the last pass (the inline checker: those just made).
            results = self.canaries.take((meta["namespace"], meta["name"]))
        return record.record_canaries(state, built.build, results)

    # ---- observe -------------------------------------------------------------------
    def _observe(
        self, body: dict[str, Any], valid: Validated, built: Built, state: PassState
    ) -> Observed:
        meta = body["metadata"]
        spec, pools = valid.spec, valid.pools
        sample = self._sample(body, state)
        pods = self.kube.list_labelled("v1", "Pod", meta["namespace"], _triton_pods(meta))
        if isinstance(sample, MetricsUnavailable):
            self._check_scraped(sample, pods, state)
            sample = None
        avoidance = record.avoid_pools(
            pools, state.status, state.now, pods, self.config.serving.node_wait_seconds
        )
        waiting = (
            activation.demand(
                meta.get("annotations") or {}, spec.scaling.scale_down_stabilization_seconds
            )
            if spec.scaling.scale_to_zero
            else None
        )
        cold = record.cold_start(
            pools, built.accepted, state.status.cold_starts, state.status.decision
        )
        too_cold = activation.too_cold(cold, spec.scaling.max_cold_start_seconds)
        weighed = None
        if spec.scaling.scale_to_zero and cold is not None:
            memory = state.status.planner
            weighed = activation.weigh_zero(
                memory.rates if memory else [],
                spec.scaling.scale_down_stabilization_seconds,
                cold,
            )
        floor = activation.floor_replicas(
            spec.scaling.min_replicas,
            spec.scaling.scale_to_zero,
            waiting,
            record.epoch(state.now),
            too_cold or (weighed is not None and weighed.costs_more),
        )
        return Observed(sample, pods, avoidance, waiting, cold, too_cold, weighed, floor)

    def _sample(
        self, body: dict[str, Any], state: PassState
    ) -> LiveSample | MetricsUnavailable | None:
        """A fresh read of the model's Triton figures when one is due (None when not);
        why there is none when the read failed. Prometheus failing costs a condition,
        never serving or the pass."""
        if self.live is None or not refresh_due(state.status.live, state.now, self.refresh_seconds):
            return None
        meta = body["metadata"]
        try:
            sample = self.live.sample(meta["namespace"], meta["name"])
        except MetricsUnavailable as error:
            state.condition(ConditionType.METRICS, False, error.reason, error.message)
            state.status.live = LiveFigures(time=state.now)  # spend is filled in later
            return error
        if sample.timestamp and self._planned_with.get(meta["uid"]) == sample.timestamp:
            return None  # the snapshot this model already planned with
        self._planned_with.pop(meta["uid"], None)
        self._planned_with[meta["uid"]] = sample.timestamp
        if len(self._planned_with) > FinishedBuilds.LIMIT:  # deleted models' go first
            self._planned_with.pop(next(iter(self._planned_with)))
        live = record.live_figures(sample, state.now)
        # No figures in the message: they are in status.live, and a condition rewritten
        # on every sample would be a status write per sample for nothing.
        state.condition(
            ConditionType.METRICS,
            True,
            "Observed",
            f"read from {self.config.prometheus.url} (status.live)"
            + ("" if live.p95_ms is not None else "; p95 unknown: no requests in the rate window"),
        )
        state.status.live = live
        return sample

    def _check_scraped(
        self, error: MetricsUnavailable, pods: list[dict[str, Any]], state: PassState
    ) -> None:
        """Prometheus answers but has no series for pods serving for a while: Triton is
        not scraped (a reason of its own, so it reads as a configuration to fix)."""
        if error.reason != "NoData":
            return
        prometheus = self.config.prometheus
        grace = 2 * duration_seconds(prometheus.rate_window) + prometheus.sample_interval_seconds
        why = record.not_scraped(pods, state.now, max(grace, 60.0), prometheus.url)
        if why is not None:
            state.condition(ConditionType.METRICS, False, "TritonNotScraped", why)

    # ---- plan ----------------------------------------------------------------------
    def _plan(
        self,
        body: dict[str, Any],
        valid: Validated,
        built: Built,
        observed: Observed,
        failed: set[tuple[str, str]],
        state: PassState,
    ) -> Plan | Outcome:
        """The planner's plan (advisory mode: the pinned one, the plan recommended),
        recorded in ``status.decision``; the Outcome when nothing is to be served."""
        spec, pools = valid.spec, valid.pools
        previous = state.status.decision
        decided = decide(
            record.with_floor(spec, observed.floor),
            pools,
            built.accepted,
            built.read.profiles,
            state.status,
            observed.sample,
            record.epoch(state.now),
            observed.avoidance.avoid,
            observed.avoidance.retry_at,
            serving_configs(observed.pods),
            duration_seconds(self.config.prometheus.rate_window),
        )
        plan = decided.plan
        if observed.floor > spec.scaling.min_replicas and isinstance(plan, Plan):
            plan = dataclasses.replace(plan, reason=plan.reason + _floor_reason(spec, observed))
        state.status.planner = decided.planner
        if spec.mode == Mode.ADVISORY:
            pinned = _advise(spec, pools, built.accepted, plan, state)
            if pinned is None:
                state.condition(
                    ConditionType.DEPLOYED,
                    None,
                    "Advisory",
                    "advisory mode without spec.pinned: the operator creates, changes and "
                    "deletes no serving object; status.recommendation says what it would serve",
                )
                return state.finish(Phase.ADVISORY)
            if isinstance(pinned, str):
                state.condition(ConditionType.DEPLOYED, False, "PinnedUnavailable", pinned)
                return state.finish(Phase.DEGRADED)
            plan = pinned
        else:
            state.status.recommendation = None
            state.drop_condition(ConditionType.RECOMMENDED)
        if isinstance(plan, NoPlan) and built.running and not built.accepted:
            # One pool's build ended with nothing accepted (no GPU here, say) while
            # another still builds: nothing is wrong yet, so the model is Building, not
            # Degraded, and the budget is not yet weighed.
            state.condition(
                ConditionType.DEPLOYED,
                False,
                "WaitingForBuild",
                f"no variant accepted yet; {still_building(built.running)}",
            )
            return state.finish(Phase.BUILDING)
        if isinstance(plan, NoPlan):
            state.condition(ConditionType.DEPLOYED, False, "NoPlan", plan.reason)
            if spec.budget and plan.over_budget:
                state.condition(ConditionType.WITHIN_BUDGET, False, "OverBudget", plan.reason)
            elif spec.budget:
                state.condition(
                    ConditionType.WITHIN_BUDGET,
                    None,
                    "NoPlan",
                    f"no plan to weigh against the budget: {plan.reason}",
                )
            return state.finish(Phase.DEGRADED)
        was = (previous.pool, previous.variant) if previous else None
        if was in failed and was != (plan.pool, plan.variant) and previous is not None:
            state.tell(
                "Warning",
                "RolledBack",
                f"{previous.variant} on {previous.pool} failed its canary; "
                f"serving {plan.variant} on {plan.pool} instead",
            )
        record.record_decision(state, plan)
        return plan

    # ---- act -----------------------------------------------------------------------
    def _act(
        self,
        body: dict[str, Any],
        valid: Validated,
        built: Built,
        observed: Observed,
        plan: Plan,
        state: PassState,
    ) -> Outcome:
        """Serve the plan, route the Service (activator at zero), and say how far it got."""
        spec, pools = valid.spec, valid.pools
        served = self._serve(body, pools, plan, built, spec, state)
        self._route(body, spec, served.ready, observed.waiting, state, observed.weighed)
        record.record_live(
            pools, served.deployments, state.status, state.now, observed.sample is not None
        )
        ready = served.ready >= plan.replicas
        if ready:
            record.forget_backoff(state.status, plan.pool)
        state.condition(
            ConditionType.DEPLOYED,
            True,
            "DeploymentApplied",
            f"{names.serving_deployment(body['metadata']['name'], plan.pool)} with "
            f"{plan.replicas} replica(s) of {plan.variant}",
        )
        state.condition(
            ConditionType.READY,
            ready,
            "Available" if ready else "RollingOut",
            f"{served.ready}/{plan.replicas} replica(s) ready",
        )
        state.condition(
            ConditionType.SLO_MET,
            plan.slo_met,
            "PredictedWithinSLO" if plan.slo_met else "PredictedOverSLO",
            record.slo_message(plan, spec.slo.p95_latency_ms),
        )
        if spec.budget:
            state.condition(
                ConditionType.WITHIN_BUDGET,
                plan.within_budget,
                "WithinBudget" if plan.within_budget else "OverBudget",
                f"planned ${plan.hourly_cost_usd:.2f}/h of ${spec.budget.max_hourly_usd:.2f}/h",
            )
        if built.running:
            return state.finish(Phase.BUILDING)
        return state.finish(Phase.READY if ready else Phase.DEPLOYING)

    def _serve(
        self,
        body: dict[str, Any],
        pools: list[PoolSpec],
        plan: Plan,
        built: Built,
        spec: LeptonModelSpec,
        state: PassState,
    ) -> Served:
        """Apply the chosen Deployment and the Service; the ready replicas and the
        serving Deployments left (the chosen one, and others until it is ready).

        Deployments on other pools are drained only once the chosen one is fully ready,
        so a pool change never leaves fewer ready replicas than before.
        """
        meta = body["metadata"]
        model, namespace = meta["name"], meta["namespace"]
        pool = next(p for p in pools if p.name == plan.pool)
        live = self.kube.apply(
            serving.deployment(
                model,
                namespace,
                pool,
                plan.replicas,
                self.config.images.triton,
                built.build,
                built.read.triton_models[(plan.pool, plan.variant)],
                plan.variant,
                spec.repository.s3 if spec.repository else None,
                spec.serving.response_cache_mb * 2**20 if spec.serving.response_cache else None,
            ),
            body,
        )
        ready = ready_replicas(live)
        self.kube.apply(serving.service(model, namespace), body)
        if self.config.serving.service_monitor:
            self.kube.apply(
                serving.service_monitor(
                    model, namespace, self.config.serving.service_monitor_labels
                ),
                body,
            )
        deployments = self.kube.list_owned(
            "apps/v1",
            "Deployment",
            namespace,
            names.owned_selector(model, "triton"),
            meta["uid"],
        )
        if ready >= plan.replicas:
            chosen = names.serving_deployment(model, plan.pool)
            for other in deployments:
                if other["metadata"]["name"] != chosen:
                    self.kube.delete_owned(other, meta["uid"])
            deployments = [d for d in deployments if d["metadata"]["name"] == chosen]
        service = names.service(model)
        state.status.replicas = ready
        state.status.selector = serving.selector_string(model, plan.pool)
        state.status.endpoint = Endpoint(
            service=service,
            http=f"{service}.{namespace}.svc:{constants.HTTP_PORT}",
            grpc=f"{service}.{namespace}.svc:{constants.GRPC_PORT}",
        )
        return Served(ready, deployments)

    def _route(
        self,
        body: dict[str, Any],
        spec: LeptonModelSpec,
        ready: int,
        waiting: activation.Demand | None,
        state: PassState,
        weighed: activation.ZeroWeighed | None = None,
    ) -> None:
        """Point the Service at the activator while no replica is Ready (its own
        EndpointSlice), and straight at the replicas otherwise (the slice deleted)."""
        if not spec.scaling.scale_to_zero and state.status.activation is None:
            return
        meta = body["metadata"]
        model, namespace = meta["name"], meta["namespace"]
        addresses: list[str] = []
        if self.activator is not None and spec.scaling.scale_to_zero:
            addresses = activator_objects.ready_addresses(
                self.kube.list_labelled(
                    "discovery.k8s.io/v1",
                    "EndpointSlice",
                    self.activator.namespace,
                    f"{activator_objects.SERVICE_NAME_LABEL}={self.activator.service}",
                )
            )
        routed = activation.routes_to_activator(spec.scaling.scale_to_zero, ready, addresses)
        if routed and self.activator is not None:
            self.kube.apply(
                activator_objects.activator_slice(model, namespace, addresses, self.activator.port),
                body,
            )
        else:
            current = self.kube.get(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                activator_objects.slice_name(model),
                namespace,
            )
            if current is not None:
                self.kube.delete_owned(
                    {**current, "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"},
                    meta["uid"],
                )
        activated: ActivationStatus | None = None
        if spec.scaling.scale_to_zero:
            activated = activation.activation_status(
                routed, waiting, meta.get("annotations") or {}, weighed
            )
        state.status.activation = activated


def _spec_errors(error: ValidationError) -> str:
    return "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
    )


def _unservable(spec: LeptonModelSpec, pools: list[PoolSpec]) -> tuple[str, str] | None:
    gpu_only = sorted(set(spec.optimization.variants or []) & set(GPU_ONLY_VARIANTS))
    if gpu_only and not any(p.accelerator for p in pools):
        return (
            "NoGPUPool",
            f"variants {', '.join(gpu_only)} need a GPU pool, and none "
            f"of {', '.join(p.name for p in pools)} has an accelerator",
        )
    return None


def _triton_pods(meta: Mapping[str, Any]) -> str:
    """The label selector of the model's serving pods."""
    return f"{constants.MODEL_LABEL}={meta['name']},{constants.COMPONENT_LABEL}=triton"


def _floor_reason(spec: LeptonModelSpec, observed: Observed) -> str:
    """Why the plan keeps replicas the planner alone would not: too cold to reach zero,
    or requests waiting at the activator."""
    limit = spec.scaling.max_cold_start_seconds
    if observed.too_cold and observed.cold_s is not None and limit is not None:
        return activation.warm_reason(observed.cold_s, limit)
    if observed.weighed is not None and observed.weighed.costs_more and observed.cold_s:
        return activation.zero_reason(observed.weighed, observed.cold_s)
    return activation.demand_reason(observed.waiting) if observed.waiting else ""


def _advise(
    spec: LeptonModelSpec,
    pools: list[PoolSpec],
    accepted: list[VariantStatus],
    plan: Plan | NoPlan,
    state: PassState,
) -> Plan | str | None:
    """Advisory mode: the planner's plan into ``status.recommendation`` (an Event when
    it changes); returns what serves instead: the pinned plan, why the pin cannot
    serve, or None when nothing is pinned."""
    status = state.status
    pinned = advisory.pinned_plan(spec.pinned, spec, pools, accepted) if spec.pinned else None
    if isinstance(pinned, Plan):
        serving_cost: float | None = pinned.hourly_cost_usd
    elif pinned is None and status.decision is not None:
        # No pin, but what an earlier active mode served still serves, untouched.
        serving_cost = status.decision.hourly_cost_usd
    else:
        serving_cost = None
    if isinstance(plan, NoPlan):
        status.recommendation = None
        if condition_reason(status.conditions, ConditionType.RECOMMENDED) != ("False", "NoPlan"):
            state.tell("Warning", "NoRecommendation", plan.reason)
        state.condition(ConditionType.RECOMMENDED, False, "NoPlan", plan.reason)
        return pinned
    previous = status.recommendation
    current = advisory.recommendation(plan, serving_cost, previous, state.now)
    status.recommendation = current
    message = advisory.recommendation_message(current)
    if advisory.recommendation_changed(previous, current):
        state.tell("Normal", "Recommendation", message)
    state.condition(ConditionType.RECOMMENDED, True, "Recommended", message)
    return pinned
