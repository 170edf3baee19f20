"""The build request the operator passes to a build Job (``--request``, JSON).

The builder ships in another image and never imports the operator, so it reads the
request with a model of its own; ``requestVersion`` guards the contract, and a request
of an unknown version is refused rather than misread.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REQUEST_VERSION = 1


class _Request(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Tensor(_Request):
    name: str
    dtype: str
    shape: list[int]


class Source(_Request):
    uri: str
    format: Literal["safetensors", "torchscript", "onnx", "torch-export"]
    sha256: str | None = None
    inputs: list[Tensor]
    outputs: list[Tensor]


class OutputUsage(_Request):
    """How clients consume token-state outputs (see ``accuracy.Usage``)."""

    pooling: Literal["none", "mean", "cls"] = "none"
    normalize: bool = False


class Accuracy(_Request):
    metric: Literal["cosine", "top1-agreement", "max-abs-error", "label-accuracy"] = "cosine"
    tolerance: float = 0.99  # bound on the mean over the judged samples
    tail_tolerance: float | None = Field(default=None, alias="tailTolerance")
    min_samples: int = Field(default=16, alias="minSamples", ge=1)
    output: OutputUsage = Field(default_factory=OutputUsage)
    labels: str = "labels"  # label-accuracy: the calibration array of expected classes


class Optimization(_Request):
    variants: list[str] | None = None
    batch_sizes: list[int] = Field(default=[1, 8, 32], alias="batchSizes")
    accuracy: Accuracy = Field(default_factory=Accuracy)
    calibration_uri: str | None = Field(default=None, alias="calibrationUri")
    training_seconds: float = Field(default=60, alias="trainingSeconds", ge=0)
    serving_search: bool = Field(default=False, alias="servingSearch")


class Upload(_Request):
    uri: str = Field(description="s3:// URI the repository is copied to after the build.")


class BuildRequest(_Request):
    request_version: Literal[1] = Field(alias="requestVersion")
    model_name: str = Field(alias="modelName")
    pool: str
    device: Literal["cpu", "cuda"]
    model: Source
    optimization: Optimization = Field(default_factory=Optimization)
    repository: str = Field(description="Folder to write the Triton model repository into.")
    report_config_map: str | None = Field(default=None, alias="reportConfigMap")
    latency_target_ms: float | None = Field(
        default=None,
        alias="latencyTargetMs",
        gt=0,
        description="The p95 the serving search scores configurations at (the SLO).",
    )
    upload: Upload | None = Field(
        default=None, description="Where to upload the repository; unset: it stays put."
    )
    serving_backends: list[str] = Field(
        default_factory=list,
        alias="servingBackends",
        description="The native Triton backends of the serving image (onnxruntime, "
        "pytorch); an artifact none of them serves runs on the python backend. Absent "
        "(operators before it): the python backend for every variant, as before.",
    )
    source_cache: str | None = Field(
        default=None,
        alias="sourceCache",
        description="Folder that keeps downloaded sources between builds, keyed by "
        "content (lepton_builder.sourcecache); unset: nothing is kept.",
    )
    build_cache: str | None = Field(
        default=None,
        alias="buildCache",
        description="Folder that keeps finished builds by what decides them "
        "(lepton_builder.buildcache), shared by the namespace's builds: a build with "
        "the same key is reused instead of made again; unset: every build is made.",
    )
