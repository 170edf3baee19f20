"""The ``LeptonModel`` status: what the operator did and why, for people and tools.

Written only by the operator (the status subresource), never into the spec, so
GitOps tools see no drift. Every decision carries a reason a person can read.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError

from lepton_operator.api.kube import list_type
from lepton_operator.api.spec import Spec


class Phase(StrEnum):
    PENDING = "Pending"
    BUILDING = "Building"
    DEPLOYING = "Deploying"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    ADVISORY = "Advisory"  # advisory mode, nothing pinned: it recommends, serves nothing


class ConditionType(StrEnum):
    VALID = "Valid"
    BUILT = "Built"
    DEPLOYED = "Deployed"
    READY = "Ready"
    SLO_MET = "SLOMet"
    WITHIN_BUDGET = "WithinBudget"
    CANARY = "CanaryPassed"
    METRICS = "MetricsAvailable"
    RECOMMENDED = "Recommended"  # advisory mode only
    SOURCE_VERIFIED = "SourceVerified"  # remote models only (lepton_operator.sourcecheck)
    NODES = "NodesAvailable"  # each pool has a node to run on (lepton_operator.preflight)
    STORAGE = "StorageAvailable"  # the build volume can bind (lepton_operator.preflight)


class Condition(Spec):
    """One aspect of the model's state, the Kubernetes way: one per type."""

    type: str = Field(
        max_length=64,
        description="Valid, Built, Deployed, Ready, SLOMet, WithinBudget, CanaryPassed, "
        "MetricsAvailable, NodesAvailable, StorageAvailable (a build volume on a PVC), "
        "Recommended (advisory mode) or SourceVerified (remote models).",
    )
    status: str = Field(pattern=r"^(True|False|Unknown)$", description="True, False or Unknown.")
    reason: str = Field(
        max_length=128,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Why, as one CamelCase word for tools and alerts.",
    )
    message: str = Field(default="", max_length=4096, description="Why, for a person.")
    last_transition_time: str = Field(
        alias="lastTransitionTime", description="When status last changed (RFC 3339)."
    )
    observed_generation: int = Field(
        default=0,
        alias="observedGeneration",
        ge=0,
        description="The spec generation this condition was computed from.",
    )


class PoolNodesStatus(Spec):
    """What the cluster's nodes offer one pool (``lepton_operator.preflight``)."""

    pool: str = Field(max_length=63, description="The pool's name.")
    nodes: int = Field(
        ge=0, description="Nodes its nodeSelector selects and whose taints it tolerates."
    )
    cordoned: int = Field(ge=0, description="Of those, nodes marked unschedulable.")
    accelerators: int | None = Field(
        default=None,
        ge=0,
        description="For a GPU pool: allocatable accelerators of its resource on those "
        "nodes (what they have, not what is free).",
    )


class BuildStatus(Spec):
    """One build Job: per target pool and spec hash."""

    pool: str = Field(description="The pool the Job builds and profiles for.")
    job: str = Field(description="Name of the build Job.")
    phase: str = Field(description="Running, Succeeded or Failed.")
    message: str = Field(
        default="", max_length=4096, description="Why the Job failed; empty otherwise."
    )
    duration_seconds: int | None = Field(
        default=None, alias="durationSeconds", description="Wall time of the finished Job."
    )
    reused_from: str | None = Field(
        default=None,
        alias="reusedFrom",
        max_length=256,
        description="Set when the builder found this build already made in the "
        "namespace's build cache (the same model and calibration bytes, settings, "
        "builder and hardware) and reused it: when and in how long that build was made. "
        "Its profiles are that build's measurements.",
    )


class VariantStatus(Spec):
    """One (variant, pool) row of the profile table from a build report: the builder's
    in-process profile, or with the serving search, what one replica served on Triton
    under the chosen configuration (the figures the planner plans with, either way)."""

    variant: str = Field(description="The optimized variant, e.g. onnx-int8.")
    pool: str = Field(description="The pool it was built and profiled on.")
    batch_size: int = Field(
        alias="batchSize",
        description="Batch size of these figures (with the serving search: concurrent "
        "clients on Triton): the highest-throughput one whose p95 meets the SLO, else the "
        "fastest.",
    )
    p50_ms: float | None = Field(
        default=None, alias="p50Ms", description="Median latency of one batch, in ms."
    )
    p95_ms: float | None = Field(
        default=None, alias="p95Ms", description="95th-percentile latency of one batch, in ms."
    )
    p99_ms: float | None = Field(
        default=None, alias="p99Ms", description="99th-percentile latency of one batch, in ms."
    )
    throughput_rps: float | None = Field(
        default=None,
        alias="throughputRps",
        description="Inferences per second one replica gives at this batch size.",
    )
    accuracy: float | None = Field(
        default=None, description="Measured value of the spec's accuracy metric."
    )
    size_bytes: int | None = Field(
        default=None, alias="sizeBytes", description="Size of the variant's artifact."
    )
    load_seconds: float | None = Field(
        default=None,
        alias="loadSeconds",
        description="Seconds its artifact takes to load (measured by the builder): added "
        "to the pool's provisioningSeconds when the planner decides how early to scale up.",
    )
    cost_per_1k_usd: float | None = Field(
        default=None,
        alias="costPer1kUSD",
        description="Cost of 1,000 inferences at full load on this pool.",
    )
    accepted: bool = Field(
        description="Built, within the accuracy guard and profiled: the planner may choose it."
    )
    reason: str = Field(
        default="",
        max_length=1024,
        description="Why it was rejected or failed; empty when accepted.",
    )
    serving_config: str | None = Field(
        default=None,
        alias="servingConfig",
        max_length=1024,
        description="The Triton configuration the serving search chose and what one "
        "replica served with it within the SLO (optimization.servingSearch); the planner "
        "sizes replicas from those served figures.",
    )


class Decision(Spec):
    """The planner's current choice."""

    variant: str = Field(description="The variant served.")
    pool: str = Field(description="The pool it is served on.")
    replicas: int = Field(ge=0, description="Replicas planned.")
    predicted_p95_ms: float | None = Field(
        default=None,
        alias="predictedP95Ms",
        description="p95 latency the capacity model predicts for this plan, in ms.",
    )
    hourly_cost_usd: float = Field(
        alias="hourlyCostUSD", ge=0, description="Planned spend per hour in USD."
    )
    reason: str = Field(max_length=4096, description="Why this plan, for a person.")
    time: str = Field(description="When variant, pool or replicas last changed (RFC 3339).")


class Recommendation(Spec):
    """What the planner would serve now (advisory mode): the decision it would apply,
    and what it would save against what serves."""

    variant: str = Field(description="The variant it would serve.")
    pool: str = Field(description="The pool it would serve it on.")
    replicas: int = Field(ge=0, description="Replicas it would plan.")
    predicted_p95_ms: float | None = Field(
        default=None, alias="predictedP95Ms", description="Predicted p95 latency in ms."
    )
    hourly_cost_usd: float = Field(
        alias="hourlyCostUSD", ge=0, description="Its predicted spend per hour in USD."
    )
    saving_usd_per_hour: float | None = Field(
        default=None,
        alias="savingUSDPerHour",
        description="What it would save per hour against what serves now (spec.pinned); "
        "negative: it would spend more (to meet the SLO); unset when nothing serves.",
    )
    reason: str = Field(max_length=4096, description="Why this plan, for a person.")
    time: str = Field(description="When variant, pool or replicas last changed (RFC 3339).")


class CanaryFailure(Spec):
    """A (variant, pool) whose served answer differed from the build's reference; the
    planner does not choose it again for this build."""

    variant: str = Field(description="The variant that answered wrongly.")
    pool: str = Field(description="The pool it was served on.")
    build_hash: str = Field(alias="buildHash", description="The build it belongs to.")
    message: str = Field(max_length=4096, description="How the answer differed.")
    time: str = Field(description="When the canary failed (RFC 3339).")


class LiveFigures(Spec):
    """What serving did lately: latency and traffic from Triton's metrics through
    Prometheus (absent while Prometheus cannot say), spend from the Ready replicas."""

    p95_ms: float | None = Field(
        default=None,
        alias="p95Ms",
        description="p95 request latency in ms, of the slowest pod (Triton's summaries).",
    )
    p99_ms: float | None = Field(
        default=None, alias="p99Ms", description="p99 request latency in ms, slowest pod."
    )
    mean_ms: float | None = Field(
        default=None, alias="meanMs", description="Mean request latency in ms, all pods."
    )
    queue_p95_ms: float | None = Field(
        default=None, alias="queueP95Ms", description="p95 of time spent in Triton's queue."
    )
    request_rate: float | None = Field(
        default=None, alias="requestRate", description="Successful requests per second."
    )
    failure_rate: float | None = Field(
        default=None, alias="failureRate", description="Failed requests per second."
    )
    gpu_utilization: float | None = Field(
        default=None, alias="gpuUtilization", description="0..1, GPU pools only."
    )
    cache_hit_rate: float | None = Field(
        default=None,
        alias="cacheHitRate",
        description="0..1: the share of requests Triton's response cache answered "
        "(spec.serving.responseCache); the planner sizes replicas for the rest.",
    )
    hourly_cost_usd: float | None = Field(
        default=None,
        alias="hourlyCostUSD",
        description="Ready replicas per pool times the pool's price.",
    )
    replicas_by_pool: dict[str, int] | None = Field(
        default=None,
        alias="replicasByPool",
        description="Ready replicas per pool; unset until a pass has counted them.",
    )
    time: str = Field(description="When these figures were read (RFC 3339).")


class PlannerRecommendation(Spec):
    """One past recommendation of the live planner (for its stabilization windows)."""

    time: float = Field(description="Unix seconds.")
    variant: str = Field(description="Variant recommended.")
    pool: str = Field(description="Pool recommended.")
    replicas: int = Field(ge=0, description="Replicas recommended.")


class DailyLoadStatus(Spec):
    """The load per time of day on recent days (planning/seasonal.py): a rise that
    recurs every day is planned for one cold start before it begins."""

    slots: list[list[float]] = Field(
        default_factory=list,
        max_length=288,
        description="[slot of the UTC day (5 minutes each, 0-287), median req/s on the "
        "latest day it was seen, median the day before] rows.",
    )
    open: list[float] = Field(
        default_factory=list,
        max_length=61,
        description="[Unix seconds // 300, req/s samples so far...] of the slot observed now.",
    )


class ThroughputScale(Spec):
    """What a pool's replicas serve against what their profiles said, learned from the
    p95 observed while they queued (planning/correction.py)."""

    pool: str = Field(max_length=63, description="The pool.")
    scale: float = Field(
        default=1.0,
        description="Multiplies the profiled most req/s of each of the pool's replicas.",
    )
    variance: float = Field(
        default=0.0,
        ge=0,
        description="Of the scale's log: how well it is known (the filter's state).",
    )
    covariance: float = Field(
        default=0.0,
        description="Of the scale's log with the latency correction's (the filter's state).",
    )
    proven: float = Field(
        default=0.0,
        ge=0,
        description="The most a replica of the pool was seen to serve within the SLO, as a "
        "multiple of what its profile serves there: a scale above 1 is credited only up to "
        "a quarter beyond it.",
    )


class PlannerMemory(Spec):
    """What the live planner remembers between evaluations: its model corrections
    (latency and, per pool, throughput), its recent recommendations (stabilization windows)
    and recent request rates (trend and peak, the burst memory's sliding maximum, and
    each minute's peak over the six hours of the rise memory).
    Small and bounded by the windows."""

    correction: float = Field(
        default=1.0,
        description="Observed over predicted p95 of what serves, smoothed: scales the "
        "capacity model's predictions on that pool.",
    )
    correction_variance: float | None = Field(
        default=None,
        alias="correctionVariance",
        ge=0,
        description="Of the correction's log: how well it is known (the filter that "
        "fits it with the throughput scales). None: as before any reading.",
    )
    throughput: list[ThroughputScale] = Field(
        default_factory=list,
        max_length=64,
        description="Per pool: what its replicas serve against their profiles, learned "
        "from the p95 observed while they queued; scales the capacity model's most "
        "req/s per replica there.",
    )
    history: list[PlannerRecommendation] = Field(
        default_factory=list, max_length=2000, description="Recent recommendations."
    )
    rates: list[list[float]] = Field(
        default_factory=list, max_length=2000, description="[unix seconds, req/s] pairs."
    )
    peaks: list[list[float]] = Field(
        default_factory=list,
        max_length=2000,
        description="[unix seconds, req/s] pairs with falling rates: the sliding maximum "
        "of the load over the burst memory (an hour).",
    )
    minutes: list[list[float]] = Field(
        default_factory=list,
        max_length=2000,
        description="[unix seconds, req/s] pairs: the load's highest of each minute over "
        "the last six hours, where the planner reads the rises that recur beyond the "
        "hour of rates.",
    )
    daily: DailyLoadStatus | None = Field(
        default=None, description="The load per time of day on recent days."
    )
    ready_since: float | None = Field(
        default=None,
        alias="readySince",
        description="Unix seconds from which the Ready replicas have been the decision's, "
        "serving its build alone (the first sample that saw them so): Triton's p95 is a "
        "sliding summary, so it is the plan's own, and corrects the model, only once "
        "that window has passed since. None while they are not.",
    )
    review_at: float | None = Field(
        default=None,
        alias="reviewAt",
        description="Unix seconds from which the plan may change with the load unchanged "
        "(a remembered peak or burst ageing out, the daily pattern's next step): the "
        "operator plans again with the first figures read from then on.",
    )


class PoolBackoffStatus(Spec):
    """A pool left out because the model's serving pods waited for a node past its
    timeout; tried again from ``retryAt``, the wait doubling on each failure in a row."""

    pool: str = Field(description="The pool left out.")
    failures: int = Field(ge=1, description="Times in a row its pods waited past the timeout.")
    retry_at: str = Field(alias="retryAt", description="Left out until then (RFC 3339).")


class ColdStart(Spec):
    """How long a serving pod of a variant took to serve on a pool, as observed."""

    pool: str = Field(description="The pool the pod ran on.")
    variant: str = Field(description="The variant it served.")
    seconds: float = Field(
        ge=0,
        description="From the pod's creation to Ready: a node, Triton's start, the "
        "model's load and the canary.",
    )
    time: str = Field(description="When that pod turned Ready (RFC 3339).")


class HeldBurst(Spec):
    """The latest burst of requests the activator held while the model had no Ready
    replica, as it reported once they had all left its queue."""

    time: str = Field(description="When the last of them left the queue (RFC 3339).")
    held: int = Field(ge=0, description="Requests held, then sent to a Ready replica.")
    p50_ms: float = Field(ge=0, alias="p50Ms", description="Median wait in the activator.")
    p95_ms: float = Field(ge=0, alias="p95Ms", description="95th percentile wait.")
    max_ms: float = Field(ge=0, alias="maxMs", description="Longest wait.")
    timed_out: int = Field(
        default=0, ge=0, alias="timedOut", description="Requests answered 504 (waited too long)."
    )
    refused: int = Field(default=0, ge=0, description="Requests answered 503 (queue full).")


class ActivationStatus(Spec):
    """Scale from zero (``scaling.scaleToZero``): where requests go with no Ready replica."""

    routed_to_activator: bool = Field(
        alias="routedToActivator",
        description="The Service points at the activator (no Ready replica): requests "
        "are held there until one is Ready.",
    )
    demand_at: str | None = Field(
        default=None,
        alias="demandAt",
        description="When the activator last said requests wait (RFC 3339).",
    )
    hold_until: str | None = Field(
        default=None,
        alias="holdUntil",
        description="Until then at least one replica is planned for that demand.",
    )
    last_burst: HeldBurst | None = Field(default=None, alias="lastBurst")
    wakes: int | None = Field(
        default=None,
        ge=0,
        description="Over the load the planner remembers (an hour): how many times a "
        "request would have found the model at zero, its idle window past.",
    )
    cold_share: float | None = Field(
        default=None,
        alias="coldShare",
        ge=0,
        le=1,
        description="Of the requests the planner remembers, the share that would have "
        "waited on a cold start at zero: the SLO's tail this model's scale-to-zero "
        "spends (set scaling.maxColdStartSeconds to keep one replica warm instead).",
    )


class Endpoint(Spec):
    """Where clients reach the model."""

    service: str = Field(description="The model's Service, in its namespace.")
    http: str = Field(description="host:port of Triton's HTTP API.")
    grpc: str = Field(description="host:port of Triton's gRPC API.")


class LeptonModelStatus(Spec):
    phase: Phase | None = Field(
        default=None, description="A one-word summary; the conditions say why."
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="The spec generation this status was computed from.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=list_type("map", "type"),
        description="The model's state, one condition per type, each with a reason.",
    )
    build_hash: str | None = Field(
        default=None,
        alias="buildHash",
        description="Hash of the spec fields that decide the build.",
    )
    source_commit: str | None = Field(
        default=None,
        alias="sourceCommit",
        pattern=r"^[0-9a-f]{40}$",
        description="For an hf:// model: the Hub commit its revision resolved to, which "
        "the current build fetched every file at (a branch such as main moves; this does "
        "not).",
    )
    builds: list[BuildStatus] = Field(
        default_factory=list, description="The current build's Jobs, one per pool."
    )
    pool_nodes: list[PoolNodesStatus] = Field(
        default_factory=list,
        alias="poolNodes",
        max_length=32,
        json_schema_extra=list_type("map", "pool"),
        description="Per pool, the nodes it can place pods on (from a read-only watch of "
        "nodes); empty when the operator does not watch nodes.",
    )
    variants: list[VariantStatus] = Field(
        default_factory=list,
        description="The profile table of the current build: one row per (variant, pool).",
    )
    decision: Decision | None = None
    recommendation: Recommendation | None = None
    canary_failures: list[CanaryFailure] = Field(
        default_factory=list,
        alias="canaryFailures",
        description="Variants whose served answer differed from the build's, this build.",
    )
    live: LiveFigures | None = None
    planner: PlannerMemory | None = None
    pool_backoff: list[PoolBackoffStatus] = Field(
        default_factory=list,
        alias="poolBackoff",
        description="Pools left out for now: their serving pods could not get a node.",
    )
    cold_starts: list[ColdStart] = Field(
        default_factory=list,
        alias="coldStarts",
        description="The latest observed cold start per (pool, variant); the planner "
        "scales up at least this far ahead (with provisioningSeconds plus the build's "
        "loadSeconds, whichever is longer).",
    )
    endpoint: Endpoint | None = None
    activation: ActivationStatus | None = None
    replicas: int | None = Field(default=None, description="Ready replicas (scale subresource).")
    selector: str | None = Field(
        default=None, description="Label selector of the serving pods (scale)."
    )
    p95_ms: float | None = Field(
        default=None, alias="p95Ms", description="Observed p95, else predicted."
    )
    hourly_cost_usd: float | None = Field(
        default=None, alias="hourlyCostUSD", description="Observed spend per hour, else predicted."
    )


def read_status(raw: Mapping[str, Any] | None) -> LeptonModelStatus:
    """A model's status as the typed model, from what the apiserver holds.

    The apiserver validates the status against the CRD, so it parses; what does not
    (a field an older operator wrote otherwise, a key kopf keeps there) is dropped
    field by field rather than failing the pass: each pass writes what it observed
    again, so a field forgotten is a field recomputed."""
    known = {field.alias or name for name, field in LeptonModelStatus.model_fields.items()}
    data = {key: value for key, value in (raw or {}).items() if key in known}
    try:
        return LeptonModelStatus.model_validate(data)
    except ValidationError as error:
        bad = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
        kept = {key: value for key, value in data.items() if key not in bad}
        try:
            return LeptonModelStatus.model_validate(kept)
        except ValidationError:
            return LeptonModelStatus()


def status_wire(status: LeptonModelStatus) -> dict[str, Any]:
    """The status as the apiserver stores it: camelCase, no unset fields, and no empty
    lists (an empty list and no list mean the same, and the merge patch then removes
    the key rather than writing ``[]`` into every model)."""
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {key: value for key, value in dumped.items() if value != []}
