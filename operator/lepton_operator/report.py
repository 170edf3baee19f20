"""The build report: the builder's account of every variant it tried on one pool.

The builder (``runtimes/builder``, another image) writes it as JSON into the report
ConfigMap the operator prepared for its Job; the operator reads it here. The schema
is versioned: a report of an unknown ``schemaVersion`` is refused with a clear reason
rather than misread.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPORT_KEY = "report.json"
SCHEMA_VERSION = 1


class _Report(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Profile(_Report):
    batch_size: int = Field(alias="batchSize", ge=1)
    p50_ms: float = Field(alias="p50Ms", ge=0)
    p95_ms: float = Field(alias="p95Ms", ge=0)
    p99_ms: float = Field(alias="p99Ms", ge=0)
    throughput_rps: float = Field(alias="throughputRps", ge=0)
    peak_memory_bytes: int | None = Field(default=None, alias="peakMemoryBytes")


class CanaryTensor(_Report):
    name: str
    dtype: str = Field(description="numpy dtype name, e.g. float32 or int64.")
    shape: list[int]
    data: str = Field(description="Raw little-endian bytes, base64.")


class CanaryReference(_Report):
    """One sample input and the answer the built artifact gave to it alone."""

    inputs: list[CanaryTensor] = Field(min_length=1)
    outputs: list[CanaryTensor] = Field(min_length=1)


class SearchTrial(_Report):
    capacity_rps: float = Field(alias="capacityRps", ge=0)
    levels: list[Profile] = Field(
        default_factory=list,
        description="Served on Triton at rising concurrency; batchSize is the concurrency.",
    )


class ServingSearch(_Report):
    """The builder's serving-configuration search on a real Triton server."""

    skipped: str | None = Field(default=None, description="Why it did not run.")
    target_p95_ms: float | None = Field(default=None, alias="targetP95Ms")
    summary: str = ""
    default: SearchTrial | None = None
    chosen: SearchTrial | None = None


class VariantReport(_Report):
    name: str
    status: Literal["accepted", "rejected", "failed", "skipped"]
    reason: str = ""
    accuracy: float | None = None
    size_bytes: int | None = Field(default=None, alias="sizeBytes")
    triton_model: str | None = Field(
        default=None, alias="tritonModel", description="Model name in the generated repository."
    )
    profiles: list[Profile] = Field(default_factory=list)
    load_seconds: float | None = Field(
        default=None,
        alias="loadSeconds",
        ge=0,
        description="Seconds to load the served artifact in its runtime: the variant's "
        "share of a cold start.",
    )
    canary: CanaryReference | None = Field(
        default=None, description="Absent when the sample was too large to carry."
    )
    serving_search: ServingSearch | None = Field(default=None, alias="servingSearch")

    @property
    def capacity_profiles(self) -> list[Profile]:
        """What one replica serves: the chosen configuration's load levels measured on
        Triton when the search ran (Triton's own overhead and batching included), else
        the builder's in-process profiles."""
        search = self.serving_search
        if search is not None and search.chosen is not None and search.chosen.levels:
            return search.chosen.levels
        return self.profiles


class ReusedBuild(_Report):
    """The builder found this build already made in the namespace's build cache."""

    built_at: str | None = Field(default=None, alias="builtAt")
    build_seconds: float | None = Field(default=None, alias="buildSeconds", ge=0)


class BuildReport(_Report):
    schema_version: Literal[1] = Field(alias="schemaVersion")
    pool: str
    device: Literal["cpu", "cuda"]
    accuracy_metric: str = Field(alias="accuracyMetric")
    repository: str = Field(description="Path of the Triton model repository on the volume.")
    variants: list[VariantReport]
    source_commit: str | None = Field(
        default=None,
        alias="sourceCommit",
        description="The Hub commit an hf:// revision resolved to, for the record.",
    )
    reused: ReusedBuild | None = Field(
        default=None, description="Set when the build was reused rather than made."
    )


class ReportError(ValueError):
    """The report is missing or malformed; the message says which."""


def parse_report(text: str | None) -> BuildReport:
    if not text:
        raise ReportError("the build Job finished without writing its report")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(f"the build report is not JSON: {error}") from error
    if isinstance(raw, dict) and raw.get("schemaVersion") != SCHEMA_VERSION:
        raise ReportError(
            f"build report schemaVersion {raw.get('schemaVersion')!r} is not "
            f"supported (this operator reads {SCHEMA_VERSION})"
        )
    try:
        return BuildReport.model_validate(raw)
    except ValidationError as error:
        raise ReportError(
            f"the build report is malformed: {error.errors()[0]['msg']} at "
            f"{'.'.join(str(p) for p in error.errors()[0]['loc'])}"
        ) from error
