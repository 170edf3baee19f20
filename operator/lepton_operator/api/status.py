"""The ``LeptonModel`` status: what the operator did and why, for people and tools.

Written only by the operator (the status subresource), never into the spec, so
GitOps tools see no drift. Every decision carries a reason a person can read.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from lepton_operator.api.kube import list_type
from lepton_operator.api.spec import Spec


class Phase(StrEnum):
    PENDING = "Pending"
    BUILDING = "Building"
    DEPLOYING = "Deploying"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class ConditionType(StrEnum):
    VALID = "Valid"
    BUILT = "Built"
    DEPLOYED = "Deployed"
    READY = "Ready"
    SLO_MET = "SLOMet"
    WITHIN_BUDGET = "WithinBudget"
    CANARY = "CanaryPassed"
    METRICS = "MetricsAvailable"


class Condition(Spec):
    type: str = Field(max_length=64)
    status: str = Field(pattern=r"^(True|False|Unknown)$")
    reason: str = Field(max_length=128, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=4096)
    last_transition_time: str = Field(alias="lastTransitionTime")
    observed_generation: int = Field(default=0, alias="observedGeneration", ge=0)


class BuildStatus(Spec):
    """One build Job: per target pool and spec hash."""

    pool: str
    job: str = Field(description="Name of the build Job.")
    phase: str = Field(description="Running, Succeeded or Failed.")
    message: str = Field(default="", max_length=4096)
    duration_seconds: int | None = Field(
        default=None, alias="durationSeconds", description="Wall time of the finished Job."
    )


class VariantStatus(Spec):
    """One (variant, pool) row of the profile table from a build report."""

    variant: str
    pool: str
    batch_size: int = Field(alias="batchSize", description="Batch size of these figures.")
    p50_ms: float | None = Field(default=None, alias="p50Ms")
    p95_ms: float | None = Field(default=None, alias="p95Ms")
    p99_ms: float | None = Field(default=None, alias="p99Ms")
    throughput_rps: float | None = Field(default=None, alias="throughputRps")
    accuracy: float | None = Field(
        default=None, description="Measured value of the spec's accuracy metric."
    )
    size_bytes: int | None = Field(default=None, alias="sizeBytes")
    cost_per_1k_usd: float | None = Field(
        default=None,
        alias="costPer1kUSD",
        description="Cost of 1,000 inferences at full load on this pool.",
    )
    accepted: bool
    reason: str = Field(
        default="",
        max_length=1024,
        description="Why it was rejected or failed; empty when accepted.",
    )


class Decision(Spec):
    """The planner's current choice."""

    variant: str
    pool: str
    replicas: int = Field(ge=0)
    predicted_p95_ms: float | None = Field(default=None, alias="predictedP95Ms")
    hourly_cost_usd: float = Field(alias="hourlyCostUSD", ge=0)
    reason: str = Field(max_length=4096)
    time: str


class CanaryFailure(Spec):
    """A (variant, pool) whose served answer differed from the build's reference; the
    planner does not choose it again for this build."""

    variant: str
    pool: str
    build_hash: str = Field(alias="buildHash")
    message: str = Field(max_length=4096)
    time: str


class LiveFigures(Spec):
    """What serving did lately: latency and traffic from Triton's metrics through
    Prometheus (absent while Prometheus cannot say), spend from the Ready replicas."""

    p95_ms: float | None = Field(default=None, alias="p95Ms")
    p99_ms: float | None = Field(default=None, alias="p99Ms")
    mean_ms: float | None = Field(default=None, alias="meanMs")
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
    hourly_cost_usd: float | None = Field(
        default=None,
        alias="hourlyCostUSD",
        description="Ready replicas per pool times the pool's price.",
    )
    replicas_by_pool: dict[str, int] = Field(default_factory=dict, alias="replicasByPool")
    time: str


class PlannerRecommendation(Spec):
    time: float = Field(description="Unix seconds.")
    variant: str
    pool: str
    replicas: int = Field(ge=0)


class PlannerMemory(Spec):
    """What the live planner remembers between evaluations: its model correction
    (observed over predicted p95), its recent recommendations (stabilization windows)
    and recent request rates (trend and peak). Small and bounded by the windows."""

    correction: float = 1.0
    history: list[PlannerRecommendation] = Field(default_factory=list, max_length=2000)
    rates: list[list[float]] = Field(
        default_factory=list, max_length=2000, description="[unix seconds, req/s] pairs."
    )


class Endpoint(Spec):
    service: str
    http: str = Field(description="host:port of Triton's HTTP API.")
    grpc: str = Field(description="host:port of Triton's gRPC API.")


class LeptonModelStatus(Spec):
    phase: Phase | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[Condition] = Field(
        default_factory=list, json_schema_extra=list_type("map", "type")
    )
    build_hash: str | None = Field(
        default=None,
        alias="buildHash",
        description="Hash of the spec fields that decide the build.",
    )
    builds: list[BuildStatus] = Field(default_factory=list)
    variants: list[VariantStatus] = Field(default_factory=list)
    decision: Decision | None = None
    canary_failures: list[CanaryFailure] = Field(default_factory=list, alias="canaryFailures")
    live: LiveFigures | None = None
    planner: PlannerMemory | None = None
    endpoint: Endpoint | None = None
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
