"""The operator's own configuration: pools, prices, images, Prometheus, namespaces,
builds.

Rendered by the Helm chart from its ``config`` values into a ConfigMap and read from
``$LEPTON_CONFIG`` at start. It is validated here, once, so a typo in the chart's
values stops the operator with a message naming the field instead of surfacing later
as a confusing reconcile error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from lepton_operator.api.kube import DNS_SUBDOMAIN
from lepton_operator.api.spec import PoolSpec
from lepton_operator.resources.build import (
    BUILD_DEADLINE_SECONDS,
    PRODUCTION_NATIVE_BACKENDS,
    NativeBackend,
)
from lepton_operator.timestamps import DURATION_PATTERN, is_positive_duration

DEFAULT_CONFIG_PATH = Path("/etc/lepton/config.yaml")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Images(_Config):
    builder: str = Field(min_length=1, description="Image of the build-and-profile Job.")
    triton: str = Field(min_length=1, description="Triton Inference Server image.")
    triton_native_backends: list[NativeBackend] = Field(
        default_factory=lambda: list(PRODUCTION_NATIVE_BACKENDS),
        alias="tritonNativeBackends",
        description="Native Triton backends the triton image has: ONNX variants are "
        "served on onnxruntime, TorchScript ones on pytorch, where listed; on the python "
        "backend (model.py) otherwise. [] for a python-only server such as the "
        "nvidia-pytriton wheel. A change rebuilds.",
    )

    @field_validator("triton_native_backends")
    @classmethod
    def _once_each(cls, value: list[NativeBackend]) -> list[NativeBackend]:
        if len(set(value)) != len(value):
            raise ValueError("each backend is named at most once")
        return value


class Prometheus(_Config):
    url: str = Field(pattern=r"^https?://", description="Base URL of the Prometheus API.")
    rate_window: str = Field(
        default="1m",
        alias="rateWindow",
        pattern=DURATION_PATTERN,
        description="Range of rate() over Triton's counters: at least two scrape "
        "intervals (four is safer), or rates come back empty.",
    )
    timeout_seconds: int = Field(
        default=5,
        alias="timeoutSeconds",
        ge=1,
        le=60,
        description="Per query; a dead Prometheus must not stall the reconcile loop.",
    )
    sample_interval_seconds: float = Field(
        default=15.0,
        alias="sampleIntervalSeconds",
        ge=1,
        le=300,
        description="How often one set of grouped queries reads every model's figures; "
        "a model whose figures moved, or whose plan waits on them, gets a pass then.",
    )
    retry_after_unreachable_seconds: int = Field(
        default=30,
        alias="retryAfterUnreachableSeconds",
        ge=0,
        le=600,
        description="After Prometheus could not be reached, every model is told so at "
        "once for this long rather than each waiting out the timeout; 0 asks every time.",
    )

    @field_validator("rate_window")
    @classmethod
    def _a_positive_duration(cls, value: str) -> str:
        if not is_positive_duration(value):
            raise ValueError(f"{value!r} is not a positive Prometheus duration such as 1m or 90s")
        return value


class ModelRepository(_Config):
    storage_class_name: str = Field(
        default="", alias="storageClassName", description="'' uses the cluster's default class."
    )
    size: str = Field(default="20Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)?$")


class Serving(_Config):
    service_monitor: bool = Field(
        default=False,
        alias="serviceMonitor",
        description="Also create a ServiceMonitor per model (needs the Prometheus "
        "Operator's CRDs); the pods carry prometheus.io scrape annotations either way.",
    )
    service_monitor_labels: dict[str, str] = Field(
        default_factory=dict,
        alias="serviceMonitorLabels",
        description="Labels your Prometheus selects ServiceMonitors by.",
    )
    canary_timeout_seconds: float = Field(
        default=10.0,
        alias="canaryTimeoutSeconds",
        gt=0,
        le=300,
        description="How long the canary inference may take before it is retried.",
    )
    node_wait_seconds: float = Field(
        default=60.0,
        alias="nodeWaitSeconds",
        gt=0,
        le=3600,
        description="How long a serving pod may wait for a node, at least, before its "
        "pool is called full: the plan then leaves the pool out for a back-off of the "
        "same length (doubling on each failure in a row). A pool's own wait is twice its "
        "provisioningSeconds where that is longer. Shorter falls back sooner where nodes "
        "come quickly or not at all; the local e2e tests use 20.",
    )


class Builds(_Config):
    deadline_seconds: int = Field(
        default=BUILD_DEADLINE_SECONDS,
        alias="deadlineSeconds",
        ge=1,
        description="activeDeadlineSeconds of each build Job: one that runs longer is "
        "stopped, and the model's Built condition says the deadline was exceeded.",
    )
    search_seconds_per_level: float = Field(
        default=3.0,
        alias="searchSecondsPerLevel",
        gt=0,
        le=60,
        description="With optimization.servingSearch: seconds the build measures each "
        "load level of each configuration it tries on Triton (after a short warm-up). "
        "Longer gives steadier figures and a longer build; the local e2e tests use 1.",
    )
    source_cache_claim: str = Field(
        default="lepton-source-cache",
        alias="sourceCacheClaim",
        pattern=f"^({DNS_SUBDOMAIN})?$",
        max_length=253,
        description="A PersistentVolumeClaim of this name in a model's namespace "
        "(ReadWriteMany, made by you) is the namespace's source cache: every build there "
        "keeps its checked downloads on it by content and finds them again, so models "
        "sharing a source download it once, and keeps its finished build, which a build "
        "of the same bytes, settings, builder and hardware reuses instead of making it "
        "again. Where there is none, each model keeps its own download cache on its "
        "build volume (and no build cache). Empty: no namespace cache.",
    )


# One namespace name, or kopf's pattern: globs of a name's characters and `*`/`?`, each
# maybe `!`-negated, joined by commas (kopf ignores spaces around them).
_GLOB = r"!?[a-z0-9*?]([-a-z0-9*?]*[a-z0-9*?])?"
WatchPattern = Annotated[
    str, StringConstraints(pattern=rf"^{_GLOB}(\s*,\s*{_GLOB})*$", max_length=253)
]


class OperatorConfig(_Config):
    watch_namespaces: list[WatchPattern] = Field(
        default_factory=list,
        alias="watchNamespaces",
        description="Namespace names or kopf's namespace patterns: comma-separated globs "
        "(`*`, `?`), `!` before a glob excludes it, an item starting with an exclusion "
        "means every namespace but those (`!kube-*`). A namespace matching any item is "
        "watched. Empty: every namespace.",
    )
    lease_name: str = Field(
        default="lepton-operator",
        alias="leaseName",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Lease in the operator's namespace; only its holder acts, the other "
        "replicas stand by.",
    )
    prometheus: Prometheus
    images: Images
    model_repository: ModelRepository = Field(
        default_factory=ModelRepository, alias="modelRepository"
    )
    pools: list[PoolSpec] = Field(min_length=1)
    serving: Serving = Field(default_factory=Serving)
    builds: Builds = Field(default_factory=Builds)
    settled_resync_seconds: int | None = Field(
        default=None,
        alias="settledResyncSeconds",
        ge=5,
        le=600,
        description="No longer used: passes are started by changes and by the fleet "
        "sampler (prometheus.sampleIntervalSeconds), not by a timer. Accepted so that "
        "existing values files still install.",
    )

    @model_validator(mode="after")
    def _unique_pool_names(self) -> OperatorConfig:
        names = [pool.name for pool in self.pools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def pool(self, name: str) -> PoolSpec | None:
        return next((pool for pool in self.pools if pool.name == name), None)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the fields."""


def load_config(path: Path | None = None) -> OperatorConfig:
    path = path or Path(os.environ.get("LEPTON_CONFIG", DEFAULT_CONFIG_PATH))
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read operator config {path}: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"operator config {path} is not valid YAML: {error}") from error
    try:
        return OperatorConfig.model_validate(raw or {})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigError(f"operator config {path} is invalid: {problems}") from error
