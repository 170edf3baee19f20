"""What a model's build Jobs and their reports say: plain reads of Kubernetes objects.

No I/O here: the pass fetches the Jobs, pods and report ConfigMaps and hands them in;
these functions turn them into ``status.builds`` entries, the profile table and what
planning and the canary need, and keep a finished build's reading for later passes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lepton_operator.api.spec import LeptonModelSpec, PoolSpec
from lepton_operator.api.status import BuildStatus, VariantStatus
from lepton_operator.planning import variant_rows
from lepton_operator.report import BuildReport, CanaryReference, Profile
from lepton_operator.timestamps import parse_time

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on a Job's pods by the Job controller
FAILURE_MESSAGE_CHARS = 1000


def job_state(
    job: Mapping[str, Any] | None, pods: list[dict[str, Any]] | None = None
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


def _failure(
    job: Mapping[str, Any], condition: Mapping[str, Any], pods: list[dict[str, Any]]
) -> str:
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


def job_seconds(job: Mapping[str, Any] | None) -> int | None:
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


def job_started(job: Mapping[str, Any] | None) -> bool:
    """Whether one of the Job's pods is ready (so none waits for a node)."""
    return int(((job or {}).get("status") or {}).get("ready") or 0) > 0


def reused_from(report: BuildReport | None) -> str | None:
    """``status.builds[].reusedFrom``: when the reused build was made, and in how long."""
    if report is None or report.reused is None:
        return None
    made = report.reused.built_at or "an earlier build"
    took = report.reused.build_seconds
    return made + (f" in {took:.0f} s" if took is not None else "")


def reused_note(builds: list[BuildStatus]) -> str:
    """For the Built condition: which pools' builds came from the build cache."""
    reused = [b.pool for b in builds if b.reused_from]
    if not reused:
        return ""
    return f"; reused from the namespace's build cache: {', '.join(reused)}"


def still_building(running: list[BuildStatus]) -> str:
    """Which pools still build, and why, for the Built condition."""
    return "; ".join(
        f"{b.pool} still builds" + (f" ({b.message})" if b.message else "") for b in running
    )


def waiting_for_node(pods: list[dict[str, Any]]) -> str:
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


@dataclass(frozen=True)
class FetchedBuild:
    """One pool's build as the cluster has it: the status entry, and the parsed
    report once the Job succeeded."""

    entry: BuildStatus
    report: BuildReport | None


@dataclass
class BuildsRead:
    """What the finished builds say, per (pool, variant)."""

    builds: list[BuildStatus] = field(default_factory=list)
    rows: list[VariantStatus] = field(default_factory=list)
    triton_models: dict[tuple[str, str], str] = field(default_factory=dict)
    references: Mapping[tuple[str, str], CanaryReference | None] = field(default_factory=dict)
    profiles: dict[tuple[str, str], list[Profile]] = field(default_factory=dict)
    source_commit: str | None = None  # the Hub commit an hf:// model was fetched at

    def in_phase(self, phase: str) -> list[BuildStatus]:
        return [b for b in self.builds if b.phase == phase]


def assemble(
    fetched: list[FetchedBuild], spec: LeptonModelSpec, pools: list[PoolSpec]
) -> BuildsRead:
    """The status table and what planning needs, from the fetched builds and the spec
    as it is now: the best batch size depends on the SLO and the cost on the pool's
    price, and neither changes the build."""
    by_name = {p.name: p for p in pools}
    read = BuildsRead(builds=[f.entry.model_copy() for f in fetched])
    references: dict[tuple[str, str], CanaryReference | None] = {}
    for f in fetched:
        pool = by_name.get(f.entry.pool)
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
        read = assemble(self.fetched, spec, pools)
        read.references = LazyReferences(
            lambda: dict(assemble(self.reader(), spec, pools).references)
        )
        return read


def _without_canaries(report: BuildReport | None) -> BuildReport | None:
    if report is None:
        return None
    variants = [v.model_copy(update={"canary": None}) for v in report.variants]
    return report.model_copy(update={"variants": variants})


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
