"""One idempotent pass over a LeptonModel: build -> read reports -> decide -> serve.

Run it twice, or after a crash at any line, and it yields the same objects: names are
derived from the spec, writes are server-side applies, and objects that must not be
overwritten once made (a Job, a report ConfigMap) are created only when absent. The
pass returns the status it observed and the events worth telling; the kopf handler
writes the status only when it differs, so a quiet cluster sees no update storm.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from lepton_operator import activation, advisory, constants, preflight
from lepton_operator.api.spec import (
    GPU_ONLY_VARIANTS,
    LeptonModelSpec,
    Mode,
    PoolSpec,
    S3Repository,
    parse_spec,
)
from lepton_operator.api.status import ConditionType, Phase, VariantStatus
from lepton_operator.canary.check import Canaries, CanaryResult, waiting_jobs
from lepton_operator.conditions import condition_reason, set_condition
from lepton_operator.config import OperatorConfig
from lepton_operator.decide import decide
from lepton_operator.kube import Kube, Rejected
from lepton_operator.live.sample import LiveSample, MetricsUnavailable
from lepton_operator.observation import (
    REFRESH_SECONDS,
    cold_starts,
    hourly_spend,
    ready_replicas,
    refresh_due,
    replicas_by_pool,
    rounded,
    serving_configs,
)
from lepton_operator.planning import NoPlan, Plan, variant_rows
from lepton_operator.planning.backoff import Avoidance, PoolBackoff, pools_to_avoid
from lepton_operator.report import (
    REPORT_KEY,
    BuildReport,
    CanaryReference,
    Profile,
    ReportError,
    parse_report,
)
from lepton_operator.resources import activator as activator_objects
from lepton_operator.resources import build as build_objects
from lepton_operator.resources import names, serving
from lepton_operator.sourcecheck import source_verdict
from lepton_operator.timestamps import format_time, parse_time


def _cold_start(
    pools: list[PoolSpec],
    accepted: list[VariantStatus],
    status: dict[str, Any],
    decision: dict[str, Any],
) -> float | None:
    """The cold start a request at zero would wait: that of the option serving now,
    else the shortest any accepted option offers; None with no accepted option."""
    provisioning = {p.name: float(p.provisioning_seconds) for p in pools}
    observed = status.get("coldStarts") or []

    def of(row: VariantStatus) -> float:
        seen = [
            float(c["seconds"])
            for c in observed
            if (c.get("pool"), c.get("variant")) == (row.pool, row.variant)
        ]
        return activation.cold_start_s(provisioning.get(row.pool, 0.0), row.load_seconds, seen)

    serving = [
        r
        for r in accepted
        if (r.pool, r.variant) == (decision.get("pool"), decision.get("variant"))
    ]
    return of(serving[0]) if serving else min((of(r) for r in accepted), default=None)


def _with_floor(spec: LeptonModelSpec, floor: int) -> LeptonModelSpec:
    """``spec`` planned with at least ``floor`` replicas (demand at the activator)."""
    if floor <= spec.scaling.min_replicas:
        return spec
    scaling = spec.scaling.model_copy(
        update={"min_replicas": floor, "max_replicas": max(spec.scaling.max_replicas, floor)}
    )
    return spec.model_copy(update={"scaling": scaling})


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Outcome:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)


def _spec_errors(error: ValidationError) -> str:
    return "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
    )


def _job_state(
    job: dict[str, Any] | None, pods: list[dict[str, Any]] | None = None
) -> tuple[str, str]:
    """(Running|Succeeded|Failed, message) from a Job's conditions; ``pods`` are the
    Job's pods, read only once it failed, for the builder's own words."""
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition["type"] == "Complete":
            return "Succeeded", ""
        if condition["type"] == "Failed":
            return "Failed", _failure(job or {}, condition, pods or [])
    return "Running", ""


FAILURE_MESSAGE_CHARS = 1000


def _failure(job: dict[str, Any], condition: dict[str, Any], pods: list[dict[str, Any]]) -> str:
    """Why a build Job failed, in words a person can act on.

    Past its deadline the Job controller killed the builder, so its words say nothing:
    the deadline is the reason. Otherwise the builder's termination message (it writes
    the reason there, or Kubernetes falls back to its log's tail) of its last failed
    attempt, then the Job controller's own message (e.g. a pod that never started).
    """
    reason = condition.get("reason") or ""
    if reason == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return (
            f"DeadlineExceeded: the build ran past its deadline of {deadline} s "
            "(config builds.deadlineSeconds) and was stopped"
        )
    attempts: list[tuple[str, int, str]] = []
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            ended = (container.get("state") or {}).get("terminated") or {}
            if ended.get("exitCode") and str(ended.get("message") or "").strip():
                finished = str(ended.get("finishedAt") or "")
                attempts.append((finished, int(ended["exitCode"]), ended["message"].strip()))
    if attempts:
        _, code, words = max(attempts)
        return f"{words[:FAILURE_MESSAGE_CHARS]} (builder exited {code})"
    message = condition.get("message") or reason or "failed"
    return f"{reason}: {message}" if reason and reason not in message else str(message)


def _job_seconds(job: dict[str, Any] | None) -> int | None:
    """Wall time of a finished Job, from the times the Job controller recorded."""
    status = (job or {}).get("status") or {}
    start, end = status.get("startTime"), status.get("completionTime")
    if not end:
        end = next(
            (
                c.get("lastTransitionTime")
                for c in status.get("conditions") or []
                if c.get("type") == "Failed" and c.get("status") == "True"
            ),
            None,
        )
    if not start or not end:
        return None
    return int((parse_time(end) - parse_time(start)).total_seconds())


def _still_building(running: list[dict[str, Any]]) -> str:
    """Which pools still build, and why, for the Built condition."""
    return "; ".join(
        f"{b['pool']} still builds" + (f" ({b['message']})" if b.get("message") else "")
        for b in running
    )


def _slo_message(plan: Plan, slo_ms: float) -> str:
    """SLOMet's message: what serves and the verdict, never the figures (they move with
    every sample and live in status.decision.reason)."""
    serving = f"{plan.variant} on {plan.pool} x{plan.replicas}"
    if plan.slo_met:
        return f"{serving} is predicted within p95 {slo_ms:g} ms (status.decision.reason)"
    cause = (
        "no option within the budget meets it"
        if not plan.within_budget
        else ("no option meets it at this load")
    )
    return f"{serving} is predicted over p95 {slo_ms:g} ms: {cause} (status.decision.reason)"


def _waiting_for_node(pods: list[dict[str, Any]]) -> str:
    """Why a running build Job's pod has not started: the scheduler's words when it
    found no node (a pool with no node yet, or a full one); '' otherwise."""
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Pending":
            continue
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                since = cond.get("lastTransitionTime") or pod["metadata"].get("creationTimestamp")
                why = cond.get("message") or "no node fits"
                return f"its pod waits for a node since {since}: {why}"
    return ""


def _epoch(stamp: str) -> float:
    return parse_time(stamp).timestamp()


def _forget_backoff(status: dict[str, Any], pool: str) -> None:
    """Serving Ready on a pool ends its back-off at once (the next failure there starts
    again from the pool's timeout)."""
    kept = [b for b in status.get("poolBackoff") or [] if b["pool"] != pool]
    if kept:
        status["poolBackoff"] = kept
    else:
        status.pop("poolBackoff", None)


def _unschedulable_pools(
    pods: list[dict[str, Any]], limits: dict[str, float], now: str
) -> set[str]:
    """Pools whose serving pods have waited for a node longer than the pool takes to
    provision one (at least a minute): the planner falls back to another."""
    waiting: set[str] = set()
    for pod in pods:
        pool = (pod["metadata"].get("labels") or {}).get(constants.POOL_LABEL, "")
        created = pod["metadata"].get("creationTimestamp")
        if (pod.get("status") or {}).get("phase") != "Pending" or pool not in limits:
            continue
        if (pod.get("spec") or {}).get("nodeName") or not created:
            continue
        if _epoch(now) - parse_time(created).timestamp() > limits[pool]:
            waiting.add(pool)
    return waiting


def _pool_timeouts(pools: list[PoolSpec]) -> dict[str, float]:
    """How long serving pods may wait for a node: twice the pool's provisioning time,
    at least a minute (a node that comes at all comes by then)."""
    return {p.name: max(2.0 * p.provisioning_seconds, 60.0) for p in pools}


class LazyReferences(Mapping[tuple[str, str], "CanaryReference | None"]):
    """The canary references of a finished build, read from its reports only when a
    pod waits at the canary gate: they are the bulk of a report (a sample and the
    artifact's answer, per variant), and a settled pass never needs them."""

    def __init__(self, load: Callable[[], dict[tuple[str, str], CanaryReference | None]]) -> None:
        self._load = load
        self._loaded: dict[tuple[str, str], CanaryReference | None] | None = None

    def _all(self) -> dict[tuple[str, str], CanaryReference | None]:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def __getitem__(self, key: tuple[str, str]) -> CanaryReference | None:
        return self._all()[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


@dataclass(frozen=True)
class FinishedBuild:
    build: str
    fetched: list[FetchedBuild]
    reader: Callable[[], list[FetchedBuild]]

    def read(self, spec: LeptonModelSpec, pools: list[PoolSpec]) -> BuildsRead:
        """Assembled from the kept reports against the spec of this pass; the canary
        references are read again only if a pod waits at the gate."""
        read = _assemble(self.fetched, spec, pools)
        read.references = LazyReferences(
            lambda: dict(_assemble(self.reader(), spec, pools).references)
        )
        return read


class FinishedBuilds:
    """What each model's finished build said, by model uid, for this process's life.

    A finished build's Jobs and reports never change, yet every pass re-read them and
    re-applied the build's objects: 14 of the 19 API requests of a settled pass. Kept
    here, a settled pass reads only what moves (pods, the serving Deployment). The
    rows are assembled again each pass from the spec as it is (an SLO or price change
    does not rebuild, but changes the table). The canary references are dropped from
    the kept reports (``LazyReferences``), so an entry is a few KB; at most ``LIMIT``
    entries, the oldest dropped (a deleted model's among them). A restart starts empty:
    the first pass of each model reads everything again."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._by_uid: OrderedDict[str, FinishedBuild] = OrderedDict()

    def get(self, uid: str) -> FinishedBuild | None:
        found = self._by_uid.get(uid)
        if found is not None:
            self._by_uid.move_to_end(uid)
        return found

    def remember(
        self,
        uid: str,
        build: str,
        fetched: list[FetchedBuild],
        reader: Callable[[], list[FetchedBuild]],
    ) -> None:
        light = [FetchedBuild(f.entry, _without_canaries(f.report)) for f in fetched]
        self._by_uid[uid] = FinishedBuild(build, light, reader)
        self._by_uid.move_to_end(uid)
        while len(self._by_uid) > self.LIMIT:
            self._by_uid.popitem(last=False)


def _without_canaries(report: BuildReport | None) -> BuildReport | None:
    if report is None:
        return None
    variants = [v.model_copy(update={"canary": None}) for v in report.variants]
    return report.model_copy(update={"variants": variants})


@dataclass(frozen=True)
class FetchedBuild:
    """One pool's build as the cluster has it: the status entry, and the parsed
    report once the Job succeeded."""

    entry: dict[str, Any]
    report: BuildReport | None


def _assemble(
    fetched: list[FetchedBuild], spec: LeptonModelSpec, pools: list[PoolSpec]
) -> BuildsRead:
    """The status table and what planning needs, from the fetched builds and the spec
    as it is now: the best batch size depends on the SLO and the cost on the pool's
    price, and neither changes the build."""
    by_name = {p.name: p for p in pools}
    read = BuildsRead(builds=[dict(f.entry) for f in fetched])
    references: dict[tuple[str, str], CanaryReference | None] = {}
    for f in fetched:
        pool = by_name.get(f.entry["pool"])
        if f.report is None or pool is None:
            continue
        read.rows += variant_rows(f.report, pool, spec.slo.p95_latency_ms)
        for variant in f.report.variants:
            key = (pool.name, variant.name)
            read.triton_models[key] = variant.triton_model or variant.name
            references[key] = variant.canary
            read.profiles[key] = variant.capacity_profiles
        read.source_commit = read.source_commit or f.report.source_commit
    read.references = references
    return read


@dataclass
class BuildsRead:
    """What the finished builds say, per (pool, variant)."""

    builds: list[dict[str, Any]] = field(default_factory=list)
    rows: list[VariantStatus] = field(default_factory=list)
    triton_models: dict[tuple[str, str], str] = field(default_factory=dict)
    references: Mapping[tuple[str, str], CanaryReference | None] = field(default_factory=dict)
    profiles: dict[tuple[str, str], list[Profile]] = field(default_factory=dict)
    source_commit: str | None = None  # the Hub commit an hf:// model was fetched at


JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on a Job's pods by the Job controller
SERVING_KINDS = frozenset({"Deployment", "Service", "ServiceMonitor"})


class LiveSource(Protocol):
    """Where live figures come from: Prometheus in the operator, a fake in unit tests."""

    def sample(self, namespace: str, model: str) -> LiveSample: ...


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
    ) -> None:
        """``activator``: where the activator runs; None (no activator installed): a
        model at zero has no request path, as before. ``nodes``: the cluster's nodes
        (``preflight.slim_node``), from a watch; None: not checked."""
        self.kube = kube
        self.config = config
        self.clock = clock
        self.canaries = canaries
        self.live = live
        self.refresh_seconds = refresh_seconds
        self.activator = activator
        self.nodes = nodes
        self._finished = FinishedBuilds()
        # The timestamp of the figures each model last planned with (by uid): a pass
        # between two fleet samples has nothing new, and must not count one twice.
        self._planned_with: dict[str, float] = {}

    # ---- the pass ------------------------------------------------------------------
    def reconcile(self, body: dict[str, Any]) -> Outcome:
        try:
            return self._reconcile(body)
        except Rejected as error:
            return self._rejected(body, error)

    def _rejected(self, body: dict[str, Any], error: Rejected) -> Outcome:
        """An object the pass made was refused by the apiserver (invalid, or denied by a
        policy): the condition of the step says which object and the apiserver's words;
        what serves keeps serving (Degraded), and the next pass tries again, so lifting
        a policy heals the model without a spec change."""
        status = copy.deepcopy(body.get("status") or {})
        before = list(status.get("conditions") or [])
        generation = int(body["metadata"].get("generation", 0))
        step = ConditionType.DEPLOYED if error.kind in SERVING_KINDS else ConditionType.BUILT
        status["conditions"] = set_condition(
            status.get("conditions") or [],
            step.value,
            False,
            "RejectedByAPIServer",
            f"the apiserver refused {error.kind} {error.name} (HTTP {error.code}): {error.message}",
            generation,
            self.clock(),
        )
        status["observedGeneration"] = generation
        serving = int(status.get("replicas") or 0) > 0
        return self._finish(status, before, Phase.DEGRADED if serving else Phase.FAILED)

    def _reconcile(self, body: dict[str, Any]) -> Outcome:
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        status = copy.deepcopy(body.get("status") or {})
        before = list(status.get("conditions") or [])
        now = self.clock()

        def condition(kind: ConditionType, ok: bool | None, reason: str, message: str) -> None:
            status["conditions"] = set_condition(
                status.get("conditions") or [], kind.value, ok, reason, message, generation, now
            )

        status["observedGeneration"] = generation
        try:
            spec = parse_spec(body.get("spec") or {})
        except ValidationError as error:
            condition(ConditionType.VALID, False, "InvalidSpec", _spec_errors(error))
            return self._finish(status, before, Phase.FAILED)
        pools = spec.pools or self.config.pools
        problem = self._unservable(spec, pools)
        if problem:
            condition(ConditionType.VALID, False, problem[0], problem[1])
            return self._finish(status, before, Phase.FAILED)
        condition(
            ConditionType.VALID, True, "SpecAccepted", f"pools: {', '.join(p.name for p in pools)}"
        )
        self._check_nodes(pools, status, condition)
        verdict = source_verdict(spec.model)
        if verdict is not None:  # a remote model: is it checked? (a Warning Event if not)
            condition(
                ConditionType.SOURCE_VERIFIED, verdict.verified, verdict.reason, verdict.message
            )

        missing = [
            claim
            for claim in build_objects.source_claims(spec)
            if self.kube.get("v1", "PersistentVolumeClaim", claim, meta["namespace"]) is None
        ]
        if missing:
            condition(
                ConditionType.BUILT,
                False,
                "SourceClaimMissing",
                f"PersistentVolumeClaim {', '.join(missing)} named by a pvc:// URI does "
                f"not exist in {meta['namespace']}; the build waits for it",
            )
            return self._finish(status, before, Phase.PENDING)
        build = names.build_hash(spec, pools, self.config.images.builder)
        events: list[Event] = []
        if status.get("buildHash") != build:
            events.append(
                Event(
                    "Normal",
                    "BuildStarted",
                    f"building variants for {', '.join(p.name for p in pools)} (build {build})",
                )
            )
            status["buildHash"] = build
        finished = self._finished.get(meta["uid"])
        fetched: list[FetchedBuild] = []
        if finished is not None and finished.build == build:
            read = finished.read(spec, pools)
        else:
            self._ensure_build_objects(body, spec, pools, build)
            fetched = self._fetch_builds(body, pools, build)
            read = _assemble(fetched, spec, pools)
        builds, rows, triton_models, references = (
            read.builds,
            read.rows,
            read.triton_models,
            read.references,
        )
        status["builds"] = builds
        status["variants"] = [
            r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in rows
        ]
        if read.source_commit:
            status["sourceCommit"] = read.source_commit
        else:
            status.pop("sourceCommit", None)
        running = [b for b in builds if b["phase"] == "Running"]
        succeeded = [b for b in builds if b["phase"] == "Succeeded"]
        if running and not succeeded:
            condition(
                ConditionType.BUILT,
                False,
                "Building",
                f"{len(running)} of {len(builds)} build Job(s) running",
            )
            return self._finish(status, before, Phase.BUILDING, events)
        if not succeeded:
            condition(
                ConditionType.BUILT,
                False,
                "BuildFailed",
                "; ".join(f"{b['pool']}: {b['message']}" for b in builds),
            )
            return self._finish(status, before, Phase.FAILED, events)
        accepted = [r for r in rows if r.accepted]
        # While another pool still builds, the model serves from the pools that
        # finished; Built and the phase say it is not done (Ready means settled).
        condition(
            ConditionType.BUILT,
            not running,
            "PartiallyBuilt" if running else "BuildSucceeded",
            f"{len(accepted)} of {len(rows)} variant(s) accepted on "
            f"{len(succeeded)} of {len(builds)} pool(s)"
            + (f"; serving from those while {_still_building(running)}" if running else ""),
        )
        if running:
            pass  # the other pools' builds re-plan when they finish; nothing kept yet
        elif finished is None or finished.build != build:
            self._delete_stale_builds(body, build)
            self._finished.remember(
                meta["uid"], build, fetched, lambda: self._fetch_builds(body, pools, build)
            )

        failed = self._check_canaries(body, build, references, status, events, now, condition)
        accepted = [r for r in accepted if (r.pool, r.variant) not in failed]
        previous = status.get("decision") or {}
        sample = self._sample(body, status, now, condition)
        pods = self._serving_pods(body)
        avoidance = self._pools_to_avoid(pools, status, now, pods)
        waiting = (
            activation.demand(
                meta.get("annotations") or {}, spec.scaling.scale_down_stabilization_seconds
            )
            if spec.scaling.scale_to_zero
            else None
        )
        cold = _cold_start(pools, accepted, status, previous)
        limit = spec.scaling.max_cold_start_seconds
        too_cold = activation.too_cold(cold, limit)
        floor = activation.floor_replicas(
            spec.scaling.min_replicas, spec.scaling.scale_to_zero, waiting, _epoch(now), too_cold
        )
        decided = decide(
            _with_floor(spec, floor),
            pools,
            accepted,
            read.profiles,
            status,
            sample,
            _epoch(now),
            avoidance.avoid,
            avoidance.retry_at,
            serving_configs(pods),
        )
        plan = decided.plan
        if floor > spec.scaling.min_replicas and isinstance(plan, Plan):
            if too_cold and cold is not None and limit is not None:
                why = activation.warm_reason(cold, limit)
            else:
                why = activation.demand_reason(waiting) if waiting else ""
            plan = dataclasses.replace(plan, reason=plan.reason + why)
        if decided.planner is not None:
            status["planner"] = decided.planner.model_dump(by_alias=True, exclude_none=True)
        else:
            status.pop("planner", None)
        if spec.mode == Mode.ADVISORY:
            pinned = self._advise(spec, pools, accepted, plan, status, now, events)
            if pinned is None:
                condition(
                    ConditionType.DEPLOYED,
                    None,
                    "Advisory",
                    "advisory mode without spec.pinned: the operator creates, changes and "
                    "deletes no serving object; status.recommendation says what it would serve",
                )
                return self._finish(status, before, Phase.ADVISORY, events)
            if isinstance(pinned, str):
                condition(ConditionType.DEPLOYED, False, "PinnedUnavailable", pinned)
                return self._finish(status, before, Phase.DEGRADED, events)
            plan = pinned
        else:
            status.pop("recommendation", None)
            status["conditions"] = [
                c for c in status.get("conditions") or [] if c["type"] != ConditionType.RECOMMENDED
            ]
        if isinstance(plan, NoPlan):
            condition(ConditionType.DEPLOYED, False, "NoPlan", plan.reason)
            if spec.budget:
                condition(ConditionType.WITHIN_BUDGET, False, "OverBudget", plan.reason)
            return self._finish(status, before, Phase.DEGRADED, events)
        if (previous.get("pool"), previous.get("variant")) in failed and (
            previous.get("pool"),
            previous.get("variant"),
        ) != (plan.pool, plan.variant):
            events.append(
                Event(
                    "Warning",
                    "RolledBack",
                    f"{previous.get('variant')} on {previous.get('pool')} failed its canary; "
                    f"serving {plan.variant} on {plan.pool} instead",
                )
            )
        self._record_decision(status, plan, now, events)
        ready, deployments = self._serve(
            body,
            pools,
            plan,
            build,
            triton_models[(plan.pool, plan.variant)],
            status,
            spec.repository.s3 if spec.repository else None,
            spec.serving.response_cache_mb * 2**20 if spec.serving.response_cache else None,
        )
        self._route(body, spec, ready, status, waiting)
        self._record_live(pools, deployments, status, now, sample)
        if ready >= plan.replicas:
            _forget_backoff(status, plan.pool)
        condition(
            ConditionType.DEPLOYED,
            True,
            "DeploymentApplied",
            f"{names.serving_deployment(meta['name'], plan.pool)} with {plan.replicas} "
            f"replica(s) of {plan.variant}",
        )
        condition(
            ConditionType.READY,
            ready >= plan.replicas,
            "Available" if ready >= plan.replicas else "RollingOut",
            f"{ready}/{plan.replicas} replica(s) ready",
        )
        condition(
            ConditionType.SLO_MET,
            plan.slo_met,
            "PredictedWithinSLO" if plan.slo_met else "PredictedOverSLO",
            _slo_message(plan, spec.slo.p95_latency_ms),
        )
        if spec.budget:
            condition(
                ConditionType.WITHIN_BUDGET,
                plan.within_budget,
                "WithinBudget" if plan.within_budget else "OverBudget",
                f"planned ${plan.hourly_cost_usd:.2f}/h of ${spec.budget.max_hourly_usd:.2f}/h",
            )
        phase = Phase.READY if ready >= plan.replicas else Phase.DEPLOYING
        if running:
            phase = Phase.BUILDING
        return self._finish(status, before, phase, events)

    # ---- steps ---------------------------------------------------------------------
    @staticmethod
    def _unservable(spec: LeptonModelSpec, pools: list[PoolSpec]) -> tuple[str, str] | None:
        gpu_only = sorted(set(spec.optimization.variants or []) & set(GPU_ONLY_VARIANTS))
        if gpu_only and not any(p.accelerator for p in pools):
            return (
                "NoGPUPool",
                f"variants {', '.join(gpu_only)} need a GPU pool, and none "
                f"of {', '.join(p.name for p in pools)} has an accelerator",
            )
        return None

    def _ensure_build_objects(
        self, body: dict[str, Any], spec: LeptonModelSpec, pools: list[PoolSpec], build: str
    ) -> None:
        meta = body["metadata"]
        model, namespace = meta["name"], meta["namespace"]
        repo = self.config.model_repository
        if not (spec.repository and spec.repository.s3):  # S3: the bucket replaces the PVC
            self.kube.apply(
                build_objects.model_volume_claim(
                    model, namespace, repo.size, repo.storage_class_name
                ),
                body,
            )
        jobs = [names.build_job(model, pool.name, build) for pool in pools]
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
                    ),
                    body,
                )

    def _fetch_builds(
        self, body: dict[str, Any], pools: list[PoolSpec], build: str
    ) -> list[FetchedBuild]:
        """Each pool's build Job state and, once it succeeded, its parsed report."""
        meta = body["metadata"]
        fetched = []
        for pool in pools:
            job_name = names.build_job(meta["name"], pool.name, build)
            job = self.kube.get("batch/v1", "Job", job_name, meta["namespace"])
            phase, message = _job_state(job)
            # A running build's pods are read only while none is ready: then one may
            # wait for a node, which the status should name.
            started = int(((job or {}).get("status") or {}).get("ready") or 0) > 0
            if job is not None and (phase == "Failed" or (phase == "Running" and not started)):
                pods = self.kube.list_labelled(
                    "v1", "Pod", meta["namespace"], f"{JOB_NAME_LABEL}={job_name}"
                )
                if phase == "Failed":
                    phase, message = _job_state(job, pods)
                else:
                    message = _waiting_for_node(pods)
            report = None
            report_cm: dict[str, Any] = {}
            if phase == "Running" and job is not None:
                # The builder writes its report as its last act: the report says the
                # build is done before the Job controller does (seconds later).
                report_cm = self._report_configmap(job_name, meta["namespace"])
                if (report_cm.get("data") or {}).get(REPORT_KEY):
                    phase = "Succeeded"
            if phase == "Succeeded":
                report_cm = report_cm or self._report_configmap(job_name, meta["namespace"])
                try:
                    report = parse_report((report_cm.get("data") or {}).get(REPORT_KEY))
                except ReportError as error:
                    phase, message = "Failed", str(error)
            entry: dict[str, Any] = {
                "pool": pool.name,
                "job": job_name,
                "phase": phase,
                "message": message,
            }
            seconds = _job_seconds(job)
            if seconds is not None and phase != "Running":
                entry["durationSeconds"] = seconds
            fetched.append(FetchedBuild(entry, report))
        return fetched

    def _check_nodes(
        self,
        pools: list[PoolSpec],
        status: dict[str, Any],
        condition: Callable[[ConditionType, bool | None, str, str], None],
    ) -> None:
        """``status.poolNodes`` and the NodesAvailable condition, when nodes are watched."""
        if self.nodes is None:
            return
        found = preflight.pool_nodes(pools, self.nodes())
        status["poolNodes"] = [
            {k: v for k, v in dataclasses.asdict(p).items() if v is not None} for p in found
        ]
        condition(ConditionType.NODES, *preflight.nodes_verdict(found))

    def _report_configmap(self, job_name: str, namespace: str) -> dict[str, Any]:
        found = self.kube.get("v1", "ConfigMap", names.report_configmap(job_name), namespace)
        return found or {}

    def _check_canaries(
        self,
        body: dict[str, Any],
        build: str,
        references: Mapping[tuple[str, str], CanaryReference | None],
        status: dict[str, Any],
        events: list[Event],
        now: str,
        condition: Callable[[ConditionType, bool | None, str, str], None],
    ) -> set[tuple[str, str]]:
        """Judge the pods waiting at the canary gate; returns the (pool, variant) pairs
        that failed one for this build, which the plan must not choose again."""
        meta = body["metadata"]
        failures = [f for f in status.get("canaryFailures") or [] if f.get("buildHash") == build]
        results: list[CanaryResult] = []
        if self.canaries is not None:
            selector = f"{constants.MODEL_LABEL}={meta['name']},{constants.COMPONENT_LABEL}=triton"
            pods = self.kube.list_labelled("v1", "Pod", meta["namespace"], selector)
            self.canaries.submit(waiting_jobs(pods, meta["namespace"], meta["name"], references))
            # Verdicts reached since the last pass (the inline checker: those just made).
            results = self.canaries.take((meta["namespace"], meta["name"]))
        known = {(f["pool"], f["variant"]) for f in failures}
        for result in results:
            message = f"pod {result.pod}: {result.message}"
            events.append(Event("Normal" if result.passed else "Warning", result.reason, message))
            condition(ConditionType.CANARY, result.passed, result.reason, result.message)
            if result.passed:
                continue
            if (result.pool, result.variant) not in known:
                known.add((result.pool, result.variant))
                failures.append(
                    {
                        "variant": result.variant,
                        "pool": result.pool,
                        "buildHash": build,
                        "message": result.message,
                        "time": now,
                    }
                )
        if failures or status.get("canaryFailures"):
            status["canaryFailures"] = failures
        return known

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

    @staticmethod
    def _advise(
        spec: LeptonModelSpec,
        pools: list[PoolSpec],
        accepted: list[VariantStatus],
        plan: Plan | NoPlan,
        status: dict[str, Any],
        now: str,
        events: list[Event],
    ) -> Plan | str | None:
        """Advisory mode: the planner's plan into ``status.recommendation`` (an Event when
        it changes); returns what serves instead: the pinned plan, why the pin cannot
        serve, or None when nothing is pinned."""
        pinned = advisory.pinned_plan(spec.pinned, spec, pools, accepted) if spec.pinned else None
        if isinstance(pinned, Plan):
            serving_cost: float | None = pinned.hourly_cost_usd
        elif pinned is None and status.get("decision"):
            # No pin, but what an earlier active mode served still serves, untouched.
            serving_cost = float(status["decision"]["hourlyCostUSD"])
        else:
            serving_cost = None
        previous = status.get("recommendation")
        generation = int(status.get("observedGeneration") or 0)
        if isinstance(plan, NoPlan):
            status.pop("recommendation", None)
            if condition_reason(status.get("conditions") or [], "Recommended") != (
                "False",
                "NoPlan",
            ):
                events.append(Event("Warning", "NoRecommendation", plan.reason))
            status["conditions"] = set_condition(
                status.get("conditions") or [],
                ConditionType.RECOMMENDED.value,
                False,
                "NoPlan",
                plan.reason,
                generation,
                now,
            )
            return pinned
        current = advisory.recommendation(plan, serving_cost, previous, now)
        status["recommendation"] = current
        message = advisory.recommendation_message(current)
        if advisory.recommendation_changed(previous, current):
            events.append(Event("Normal", "Recommendation", message))
        status["conditions"] = set_condition(
            status.get("conditions") or [],
            ConditionType.RECOMMENDED.value,
            True,
            "Recommended",
            message,
            generation,
            now,
        )
        return pinned

    @staticmethod
    def _record_decision(status: dict[str, Any], plan: Plan, now: str, events: list[Event]) -> None:
        previous = status.get("decision") or {}
        chosen = (plan.variant, plan.pool, plan.replicas)
        if (previous.get("variant"), previous.get("pool"), previous.get("replicas")) != chosen:
            events.append(Event("Normal", "Decision", plan.reason))
            previous = {"time": now}
        status["decision"] = {
            "variant": plan.variant,
            "pool": plan.pool,
            "replicas": plan.replicas,
            "predictedP95Ms": round(plan.predicted_p95_ms, 3),
            "hourlyCostUSD": round(plan.hourly_cost_usd, 4),
            "reason": plan.reason,
            "time": previous.get("time", now),
        }
        status["p95Ms"] = round(plan.predicted_p95_ms, 3)
        status["hourlyCostUSD"] = round(plan.hourly_cost_usd, 4)

    def _serve(
        self,
        body: dict[str, Any],
        pools: list[PoolSpec],
        plan: Plan,
        build: str,
        triton_model: str,
        status: dict[str, Any],
        s3: S3Repository | None,
        response_cache_bytes: int | None,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Apply the chosen Deployment and the Service; returns its ready replicas and
        the serving Deployments left (the chosen one, and others until it is ready).

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
                build,
                triton_model,
                plan.variant,
                s3,
                response_cache_bytes,
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
        status["replicas"] = ready
        status["selector"] = serving.selector_string(model, plan.pool)
        status["endpoint"] = {
            "service": names.service(model),
            "http": f"{names.service(model)}.{namespace}.svc:{constants.HTTP_PORT}",
            "grpc": f"{names.service(model)}.{namespace}.svc:{constants.GRPC_PORT}",
        }
        return ready, deployments

    def _route(
        self,
        body: dict[str, Any],
        spec: LeptonModelSpec,
        ready: int,
        status: dict[str, Any],
        waiting: activation.Demand | None,
    ) -> None:
        """Point the Service at the activator while no replica is Ready (its own
        EndpointSlice), and straight at the replicas otherwise (the slice deleted)."""
        if not spec.scaling.scale_to_zero and "activation" not in status:
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
        if spec.scaling.scale_to_zero:
            status["activation"] = activation.activation_status(
                routed, waiting, meta.get("annotations") or {}
            ).model_dump(by_alias=True, exclude_none=True)
        else:
            status.pop("activation", None)

    def _sample(
        self,
        body: dict[str, Any],
        status: dict[str, Any],
        now: str,
        condition: Callable[[ConditionType, bool | None, str, str], None],
    ) -> LiveSample | None:
        """A fresh read of the model's Triton figures when one is due, else None.
        Prometheus failing costs a condition, never serving or the pass."""
        if self.live is None or not refresh_due(status.get("live"), now, self.refresh_seconds):
            return None
        meta = body["metadata"]
        try:
            sample = self.live.sample(meta["namespace"], meta["name"])
            if sample.timestamp and self._planned_with.get(meta["uid"]) == sample.timestamp:
                return None  # the snapshot this model already planned with
            self._planned_with.pop(meta["uid"], None)
            self._planned_with[meta["uid"]] = sample.timestamp
            if len(self._planned_with) > FinishedBuilds.LIMIT:  # deleted models' go first
                self._planned_with.pop(next(iter(self._planned_with)))
        except MetricsUnavailable as error:
            condition(ConditionType.METRICS, False, error.reason, error.message)
            status["live"] = {"time": now}  # latency unknown; spend is filled in below
            return None
        p95 = rounded(sample.p95_ms, 2)
        # No figures in the message: they are in status.live, and a condition rewritten
        # on every sample would be a status write per sample for nothing.
        condition(
            ConditionType.METRICS,
            True,
            "Observed",
            f"read from {self.config.prometheus.url} (status.live)"
            + ("" if p95 is not None else "; p95 unknown: no requests in the rate window"),
        )
        status["live"] = {
            key: value
            for key, value in {
                "p95Ms": p95,
                "p99Ms": rounded(sample.p99_ms, 2),
                "meanMs": rounded(sample.mean_ms, 2),
                "queueP95Ms": rounded(sample.queue_p95_ms, 2),
                "requestRate": rounded(sample.request_rate_rps),
                "failureRate": rounded(sample.failure_rate_rps),
                "gpuUtilization": rounded(sample.gpu_utilization),
                "cacheHitRate": rounded(sample.cache_hit_rate),
                "time": now,
            }.items()
            if value is not None
        }
        return sample

    @staticmethod
    def _record_live(
        pools: list[PoolSpec],
        deployments: list[dict[str, Any]],
        status: dict[str, Any],
        now: str,
        sample: LiveSample | None,
    ) -> None:
        """Spend and replicas from Kubernetes (known even when Prometheus is not); the
        P95 and $/H columns show observed figures once there are any."""
        by_pool = replicas_by_pool(deployments)
        spend = round(hourly_spend(by_pool, {p.name: p.hourly_price_usd for p in pools}), 4)
        if any(by_pool.values()):
            status["hourlyCostUSD"] = spend  # observed; the planned figure until then
        live = status.get("live")
        if live is not None and (sample is not None or live.get("time") == now):
            live.update({"hourlyCostUSD": spend, "replicasByPool": by_pool})
        if (live or {}).get("p95Ms") is not None:
            status["p95Ms"] = live["p95Ms"]  # type: ignore[index]

    def _serving_pods(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        meta = body["metadata"]
        selector = f"{constants.MODEL_LABEL}={meta['name']},{constants.COMPONENT_LABEL}=triton"
        return self.kube.list_labelled("v1", "Pod", meta["namespace"], selector)

    @staticmethod
    def _pools_to_avoid(
        pools: list[PoolSpec], status: dict[str, Any], now: str, pods: list[dict[str, Any]]
    ) -> Avoidance:
        """Pools whose serving pods wait for a node past the timeout, and those still
        backing off from an earlier wait; ``status.poolBackoff`` carries the back-off
        from pass to pass."""
        limits = _pool_timeouts(pools)
        previous = [
            PoolBackoff(b["pool"], int(b["failures"]), parse_time(b["retryAt"]).timestamp())
            for b in status.get("poolBackoff") or []
        ]
        seen = cold_starts(pods, status.get("coldStarts") or [])
        if seen:
            status["coldStarts"] = seen
        waiting = _unschedulable_pools(pods, limits, now)
        avoidance = pools_to_avoid(waiting, previous, limits, _epoch(now))
        status["poolBackoff"] = [
            {"pool": b.pool, "failures": b.failures, "retryAt": format_time(b.retry_at_s)}
            for b in avoidance.backoffs
        ]
        if not status["poolBackoff"]:
            del status["poolBackoff"]
        return avoidance

    # ---- closing -------------------------------------------------------------------
    @staticmethod
    def _finish(
        status: dict[str, Any],
        before: list[dict[str, Any]],
        phase: Phase,
        events: list[Event] | None = None,
    ) -> Outcome:
        status["phase"] = phase.value
        events = list(events or [])
        for cond in status.get("conditions") or []:
            if cond["type"] in (ConditionType.CANARY, ConditionType.RECOMMENDED):
                continue  # every verdict and recommendation has its own Event
            # A change of status, or of reason (Building -> BuildFailed stays False, and
            # a failure nobody was told about is the silent kind).
            if condition_reason(before, cond["type"]) != (cond["status"], cond["reason"]):
                kind = "Normal" if cond["status"] == "True" else "Warning"
                if cond["type"] == ConditionType.BUILT and cond["reason"] in (
                    "Building",
                    "PartiallyBuilt",
                ):
                    kind = "Normal"
                events.append(Event(kind, cond["reason"], f"{cond['type']}: {cond['message']}"))
        return Outcome(status=status, events=events)
