"""The ``LeptonModel`` spec: what a platform team asks for.

These pydantic models are the single source of the API. The CRD in ``crds/`` is
generated from them (``python -m lepton_operator.api.crd``), descriptions included,
so ``kubectl explain`` reads the docstrings and ``Field(description=...)`` below.
Cross-field rules are CEL (``x-kubernetes-validations``), enforced by the apiserver
at admission; the operator validates again with these very models and reports what
the apiserver could not know (such as pool names) as a status condition.

The two validations agree on every document (the property tests in
``tests/unit/operator/test_spec_properties.py`` and ``e2e/tests/test_admission_properties.py``
hold them to it): each CEL rule is a ``Rule`` with its Python twin, the list types are
``ListType`` annotations that refuse duplicates as the apiserver does, and the fields
are strict (no ``"2"`` for 2, no ``1`` for true: the apiserver refuses those too).
Regular expressions use only what Go's RE2 (the apiserver) and Rust's regex (pydantic)
read alike: explicit ASCII classes, never ``\\s`` or ``\\w``, whose Unicode reach
differs between them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from lepton_operator.api.kube import (
    CEL,
    DNS_SUBDOMAIN,
    DNS_SUBDOMAIN_PATTERN,
    LABEL_VALUE_PATTERN,
    QUALIFIED_NAME_CEL,
    Check,
    ListType,
    Rule,
    full_default,
    is_qualified_name,
)

GPU_ONLY_VARIANTS = ("fp16", "torch-compile", "tensorrt")
POOL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
COMPRESSED_VARIANTS = (
    "pruned-10",
    "pruned-25",
    "pruned-40",
    "pruned-10-int8",
    "pruned-25-int8",
    "pruned-40-int8",
    "distilled",
    "distilled-int8",
)
TORCH_SOURCE_VARIANTS = (
    "int8-dynamic",
    "torchscript",
    "torch-compile",
    "fp16",
    "bf16",
    *COMPRESSED_VARIANTS,
)
# No ASCII whitespace after the scheme, spelled out: ``\s`` in Go's RE2 (the apiserver)
# is [\t\n\f\r ], in Rust's regex (pydantic) all of Unicode's White_Space, so a URI with
# a vertical tab or a no-break space was admitted by one and refused by the other.
# A pvc:// URI starts with a name a PersistentVolumeClaim can have: the operator looks the
# claim up by it, and the dynamic client puts the name in the URL as it is, so
# pvc:///path (no name) or pvc://m?x (a query) read the claim list and "found" a claim;
# a name no claim can have (pvc://a..b/m) would be waited for as "missing" for ever.
URI_PATTERN = (
    rf"^(pvc://{DNS_SUBDOMAIN}(/[^\t\n\v\f\r ]*)?"
    r"|({schemes})://[^\t\n\v\f\r ]+{hf})$"
)
# hf://<org>/<name>[@<revision>], the only form the builder reads (lepton_builder.hub).
HF_URI = r"|hf://[A-Za-z0-9][-A-Za-z0-9_.]*/[A-Za-z0-9][-A-Za-z0-9_.]*(@[^@\t\n\v\f\r ]+)?"


class Spec(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_enum_values=True)


class UserSpec(Spec):
    """Base of what users write: strict types, and the CEL rules checked in Python.

    Strict, because the apiserver is: it refuses ``"2"`` for an integer and ``1`` for a
    boolean, which pydantic's lax mode would accept. (Enum fields say
    ``strict=False``: strict pydantic wants an enum instance, the wire has a string.)
    """

    model_config = ConfigDict(strict=True)
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _cel_rules(self) -> Self:
        for rule in self.rules:
            rule.check(self)
        return self


class ModelFormat(StrEnum):
    SAFETENSORS = "safetensors"
    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    TORCH_EXPORT = "torch-export"


class DType(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT64 = "int64"
    INT32 = "int32"
    INT8 = "int8"
    BOOL = "bool"


class Variant(StrEnum):
    FP32 = "fp32"
    INT8_DYNAMIC = "int8-dynamic"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"
    TORCHSCRIPT = "torchscript"
    TORCH_COMPILE = "torch-compile"
    FP16 = "fp16"
    BF16 = "bf16"
    TENSORRT = "tensorrt"
    PRUNED_10 = "pruned-10"
    PRUNED_25 = "pruned-25"
    PRUNED_40 = "pruned-40"
    PRUNED_10_INT8 = "pruned-10-int8"
    PRUNED_25_INT8 = "pruned-25-int8"
    PRUNED_40_INT8 = "pruned-40-int8"
    DISTILLED = "distilled"
    DISTILLED_INT8 = "distilled-int8"
    ONNX_INT8_STATIC = "onnx-int8-static"


class AccuracyMetric(StrEnum):
    COSINE = "cosine"
    TOP1_AGREEMENT = "top1-agreement"
    MAX_ABS_ERROR = "max-abs-error"
    LABEL_ACCURACY = "label-accuracy"


DIMENSION = Check(
    "self != 0",
    "a dimension is -1 (dynamic) or at least 1",
    lambda dimension: dimension != 0,
)


class TensorSpec(UserSpec):
    """One input or output tensor, per sample (the batch dimension is implicit)."""

    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$",
        description="Tensor name as the model and Triton know it.",
    )
    dtype: DType = Field(strict=False, description="Element type.")
    # Bounded, as the apiserver bounds it anyway: it refuses an integer past int64 ("must
    # be of type integer"), which pydantic took; and a CRD maximum of int64's largest is
    # refused too (a float64 bound), so the bound is int32's, ample for one dimension.
    # A dimension of 0 holds no element: Triton refuses such a config.pbtxt and the
    # builder cannot make a sample of it, so it is refused here, naming the dimension.
    shape: list[Annotated[int, Field(ge=-1, le=2**31 - 1), DIMENSION]] = Field(
        max_length=8,
        description="Per-sample shape; -1 marks a dynamic dimension (e.g. sequence length), "
        "every other dimension is at least 1.",
    )


class ModelSource(UserSpec):
    """Where the trained model is and how to read it."""

    rules = (
        Rule(
            "!self.uri.startsWith('hf://') || self.format == 'safetensors'",
            "an hf:// model must have format safetensors",
            ".format",
            lambda m: not m.uri.startswith("hf://") or m.format == ModelFormat.SAFETENSORS,
        ),
    )
    model_config = ConfigDict(json_schema_extra=CEL(*rules))

    uri: str = Field(
        max_length=2048,
        pattern=URI_PATTERN.format(schemes="s3|https", hf=HF_URI),
        description="pvc://<claim>/<path>; s3://<bucket>/<key> on AWS, or "
        "s3://[http(s)://]<host>:<port>/<bucket>/<key> on another S3-compatible server; "
        "https://<host>/<path>; or hf://<org>/<name>[@<revision>] on the Hugging Face Hub "
        "(safetensors, JSON and tokenizer files only; the revision, default main, is "
        "resolved to one commit).",
    )
    format: ModelFormat = Field(strict=False, description="How the model is stored.")
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Expected SHA-256 of the model file (of a folder's one .safetensors "
        "file); the build fails on a mismatch before any loader reads it. Strongly advised "
        "for https:// and s3://, where nothing else says the file is the one meant.",
    )
    credentials_secret: str | None = Field(
        default=None,
        alias="credentialsSecret",
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Secret in this namespace for a remote source (the model's and "
        "calibrationUri's), each key optional: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_SESSION_TOKEN and AWS_DEFAULT_REGION for s3://; CA_BUNDLE (PEM) for an "
        "https:// server signed by your own CA; HF_TOKEN and HF_ENDPOINT (a mirror) for "
        "hf://. Unset: s3:// uses the pods' own credentials (e.g. IRSA), hf:// goes "
        "anonymous to huggingface.co.",
    )
    inputs: Annotated[list[TensorSpec], ListType("map", ("name",))] = Field(
        min_length=1, max_length=32, description="Input tensors."
    )
    outputs: Annotated[list[TensorSpec], ListType("map", ("name",))] = Field(
        min_length=1, max_length=32, description="Output tensors."
    )


class Pooling(StrEnum):
    NONE = "none"
    MEAN = "mean"
    CLS = "cls"


class OutputUsage(UserSpec):
    """How clients consume token-state outputs ([sequence, hidden] per sample): the
    guard judges that, not states they never read."""

    pooling: Pooling = Field(
        default=Pooling.NONE,
        strict=False,
        description="none: every token's state (padding excluded); mean: the mean over "
        "the attention mask; cls: the first token's state.",
    )
    normalize: bool = Field(default=False, description="L2-normalized after pooling.")


class AccuracyGuard(UserSpec):
    """How far a variant may drift from the fp32 baseline and still be served.

    Each held-out calibration sample gets one score; the guard bounds their mean (and,
    where set, their tail) and judges no variant on fewer than minSamples samples.
    """

    rules = (
        Rule(
            "self.metric == 'max-abs-error' || self.tolerance <= 1.0",
            "tolerance of cosine, top1-agreement or label-accuracy is a fraction in (0, 1]",
            ".tolerance",
            lambda a: a.metric == AccuracyMetric.MAX_ABS_ERROR or a.tolerance <= 1.0,
        ),
    )
    model_config = ConfigDict(json_schema_extra=CEL(*rules))

    metric: AccuracyMetric = Field(
        default=AccuracyMetric.COSINE,
        strict=False,
        description="cosine: per-sample cosine similarity of outputs; top1-agreement: "
        "per-sample share of equal argmax (per position for per-token outputs); "
        "max-abs-error: per-sample largest absolute difference; label-accuracy: per-sample "
        "share of argmax equal to the label in the calibration data (the task's own "
        "accuracy), bound relative to the fp32 baseline's on the same labels.",
    )
    tolerance: float = Field(
        default=0.99,
        gt=0,
        description="The bound for the metric's mean over the judged samples: a minimum "
        "for cosine and top1-agreement, a maximum for max-abs-error; for label-accuracy a "
        "fraction of the fp32 baseline's accuracy (0.99: at most 1% relative loss).",
    )
    tail_tolerance: float | None = Field(
        default=None,
        alias="tailTolerance",
        gt=0,
        description="The bound for the tail: the 5th percentile of cosine or "
        "top1-agreement (a minimum), the 95th of max-abs-error (a maximum); unset: only "
        "the mean is bound.",
    )
    min_samples: int = Field(
        default=16,
        alias="minSamples",
        ge=1,
        le=1_000_000,
        description="Fewest samples a variant is judged on; below it the variant is "
        "rejected with that reason (a trained or calibrated variant is judged on the "
        "quarter of the calibration samples it never saw).",
    )
    output: OutputUsage | None = Field(
        default=None,
        description="How clients use token-state outputs (pooling, normalization); "
        "unset: every token's state as served.",
    )
    labels: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$",
        description="With label-accuracy: the array of the calibration .npz that holds "
        "each sample's expected class (one per sample, or one per position for per-token "
        "outputs, negative where a position has none); unset: labels.",
    )


class Optimization(UserSpec):
    """Which variants to build and how to judge them."""

    rules = (
        Rule(
            "!has(self.accuracy) || !has(self.accuracy.metric) || "
            "self.accuracy.metric != 'label-accuracy' || has(self.calibrationUri)",
            "accuracy metric label-accuracy judges by the labels in the calibration data: "
            "set calibrationUri",
            ".calibrationUri",
            lambda o: (
                o.accuracy.metric != AccuracyMetric.LABEL_ACCURACY or o.calibration_uri is not None
            ),
        ),
    )
    model_config = ConfigDict(json_schema_extra=CEL(*rules))

    variants: Annotated[list[Annotated[Variant, Strict(False)]], ListType("set")] | None = Field(
        default=None,
        max_length=32,
        description="Variants to try; default: every one that applies to the target pools, "
        "except the pruned and distilled ones, which train and change the model's shape "
        "and are built only when listed, as is onnx-int8-static (calibrated, then retried "
        "with its most sensitive nodes in fp32 until the guard passes), and tensorrt, "
        "which this builder does not build yet (listed, it is a skipped row saying so).",
    )
    batch_sizes: Annotated[list[Annotated[int, Field(ge=1, le=1024)]], ListType("set")] = Field(
        default=[1, 8, 32],
        alias="batchSizes",
        min_length=1,
        max_length=12,
        description="Batch sizes to profile.",
    )
    accuracy: AccuracyGuard = Field(
        default_factory=AccuracyGuard,
        json_schema_extra=full_default(AccuracyGuard),
        description="The accuracy guard.",
    )
    calibration_uri: str | None = Field(
        default=None,
        alias="calibrationUri",
        max_length=2048,
        pattern=URI_PATTERN.format(schemes="s3|https", hf=""),
        description="Representative inputs (an .npz, one array per input, batch first) "
        "for int8 calibration, pruning and distillation, and the accuracy guard; default: "
        "generated from the input signature, a weaker acceptance the report states.",
    )
    serving_search: bool = Field(
        default=False,
        alias="servingSearch",
        description="Search Triton configurations (instances, batch sizes, queue delay) "
        "for each accepted variant on a real Triton server in the build Job, and serve "
        "the one that answers the most requests per second within the SLO; the planner "
        "then sizes replicas from what was served. Adds about a minute per variant.",
    )
    training_seconds: int = Field(
        default=60,
        alias="trainingSeconds",
        ge=0,
        le=3600,
        description="Training time for each pruned or distilled variant: a pruned model "
        "learns back what the removed units carried, a student learns the model's answers. "
        "0 prunes without training (a distilled variant then fails with that reason).",
    )


class SLO(UserSpec):
    """The latency promise the operator keeps at the lowest cost."""

    p95_latency_ms: float = Field(
        alias="p95LatencyMs",
        gt=0,
        le=600_000,
        description="Target 95th-percentile request latency.",
    )
    min_throughput_rps: float | None = Field(
        default=None,
        alias="minThroughputRps",
        gt=0,
        description="Capacity to keep ready regardless of observed load.",
    )


class Budget(UserSpec):
    """Spending limit."""

    max_hourly_usd: float = Field(
        alias="maxHourlyUSD", gt=0, description="Never plan above this spend per hour."
    )


# Pods are refused for these, and the operator copies them into its pods as they are:
# checked at admission, a mistake names its field instead of leaving the operator
# retrying a Job or Deployment the apiserver refuses (the property tests found each).
LABEL_KEY = Check(
    "self == '' || " + QUALIFIED_NAME_CEL.format("self"),
    "must be a label key: [prefix/]name, the name at most 63 characters of letters, digits, "
    "'-', '_' and '.', the prefix a DNS subdomain",
    lambda key: key == "" or is_qualified_name(key),
)
LABEL_KEYS = Check(
    f"self.all(k, {QUALIFIED_NAME_CEL.format('k')})",
    "keys must be label keys: [prefix/]name, the name at most 63 characters of letters, "
    "digits, '-', '_' and '.', the prefix a DNS subdomain",
    lambda labels: all(is_qualified_name(key) for key in labels),
)
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]
# Requests without limits: only these may be; an extended resource or hugepages need a
# limit equal to the request (accelerators come from ``accelerator``, with their limit).
REQUESTABLE = ("cpu", "memory", "ephemeral-storage")
REQUESTABLE_KEYS = Check(
    "self.all(k, k in [" + ", ".join(f"'{r}'" for r in REQUESTABLE) + "])",
    "requests are of " + ", ".join(REQUESTABLE) + " (accelerators come from accelerator)",
    lambda requests: set(requests) <= set(REQUESTABLE),
)
# A Kubernetes quantity, not negative (resource.ParseQuantity's grammar), its decimal
# exponent at most two digits: the apiserver computes 10^exponent exactly, and a Job
# with cpu '.4e-401381483131' (admitted before) timed its dry run out after 60 s.
QUANTITY_PATTERN = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]{1,2})?$"
EXTENDED_RESOURCE = Check(
    f"{QUALIFIED_NAME_CEL.format('self')} && self.contains('/') && "
    "!self.contains('kubernetes.io/') && !self.startsWith('requests.')",
    "must be an extended resource: <domain>/<name> (e.g. nvidia.com/gpu), outside kubernetes.io",
    lambda name: (
        is_qualified_name(name)
        and "/" in name
        and "kubernetes.io/" not in name
        and not name.startswith("requests.")
    ),
)


class Toleration(UserSpec):
    """A Kubernetes toleration, copied as it is into the pool's build and serving pods."""

    rules = (
        Rule(
            "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || "
            "self.value == ''",
            "value must be empty when operator is Exists",
            ".value",
            lambda t: t.operator != "Exists" or not t.value,
        ),
        Rule(
            "(has(self.key) && self.key != '') || "
            "(has(self.operator) && self.operator == 'Exists')",
            "operator must be Exists when key is empty (it tolerates every taint)",
            ".operator",
            lambda t: bool(t.key) or t.operator == "Exists",
        ),
    )
    model_config = ConfigDict(json_schema_extra=CEL(*rules))

    key: Annotated[str, LABEL_KEY] | None = Field(
        default=None,
        max_length=317,
        description="Taint key to tolerate; empty with operator Exists tolerates every taint.",
    )
    operator: str | None = Field(
        default=None,
        pattern=r"^(Exists|Equal)$",
        description="Exists, or Equal (Kubernetes' default) to match value too.",
    )
    value: LabelValue | None = Field(
        default=None, description="Taint value to match with operator Equal."
    )
    effect: str | None = Field(
        default=None,
        pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$",
        description="Taint effect to tolerate; empty tolerates every effect.",
    )


class Accelerator(UserSpec):
    """The accelerators each replica on a GPU pool requests."""

    resource: Annotated[str, EXTENDED_RESOURCE] = Field(
        default="nvidia.com/gpu", max_length=317, description="Extended resource to request."
    )
    count: int = Field(default=1, ge=1, le=16, description="Accelerators per replica.")
    type: str = Field(max_length=63, description="Accelerator model, e.g. nvidia-l4.")


class PoolSpec(UserSpec):
    """A node pool a model may run on, with its price."""

    name: str = Field(
        pattern=POOL_NAME_PATTERN,
        max_length=63,
        description="Pool name (a DNS label): in the names of the model's build Jobs and "
        "Deployments and in their lepton.ai/pool label.",
    )
    node_selector: Annotated[dict[str, LabelValue], LABEL_KEYS] = Field(
        default_factory=dict,
        alias="nodeSelector",
        max_length=64,
        description="Node labels that place the pool's build and serving pods on its nodes.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=16,
        description="Tolerations for the taints of the pool's nodes (e.g. nvidia.com/gpu).",
    )
    accelerator: Accelerator | None = Field(
        default=None, description="Set for GPU pools; absent means CPU."
    )
    hourly_price_usd: float = Field(
        alias="hourlyPriceUSD",
        ge=0,
        # Bounded so that price x replicas stays a finite number: above ~1.8e305 a plan's
        # cost overflowed to infinity, which no JSON status can carry.
        le=1_000_000,
        description="Price of one replica's node share per hour.",
    )
    provisioning_seconds: int = Field(
        default=60,
        alias="provisioningSeconds",
        ge=0,
        le=3600,
        description="Typical time to get a new node.",
    )
    resources: Annotated[
        dict[str, Annotated[str, Field(max_length=64, pattern=QUANTITY_PATTERN)]],
        REQUESTABLE_KEYS,
    ] = Field(
        default_factory=dict,
        max_length=len(REQUESTABLE),
        description="Requests per replica, e.g. {cpu: '2', memory: 4Gi}. The CPU request, "
        "rounded down (at least 1), is also the replica's runtime threads: builds for the "
        "pool profile and serve with that many, not with every core of the node.",
    )


class Scaling(UserSpec):
    """Bounds and pace of scaling."""

    rules = (
        Rule(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must not exceed maxReplicas",
            ".minReplicas",
            lambda s: s.min_replicas <= s.max_replicas,
        ),
        Rule(
            "self.minReplicas > 0 || self.scaleToZero",
            "minReplicas 0 needs scaleToZero: true",
            ".minReplicas",
            lambda s: s.min_replicas > 0 or s.scale_to_zero,
        ),
    )
    model_config = ConfigDict(json_schema_extra=CEL(*rules))

    min_replicas: int = Field(
        default=1,
        alias="minReplicas",
        ge=0,
        le=1000,
        description="Fewest replicas the planner keeps, whatever the load.",
    )
    max_replicas: int = Field(
        default=4,
        alias="maxReplicas",
        ge=1,
        le=1000,
        description="Most replicas the planner may choose, even when the SLO would need more.",
    )
    scale_up_stabilization_seconds: int = Field(
        default=0,
        alias="scaleUpStabilizationSeconds",
        ge=0,
        le=3600,
        description="Replicas go up to the highest recommendation of this window; 0 "
        "follows the latest at once.",
    )
    scale_down_stabilization_seconds: int = Field(
        default=300,
        alias="scaleDownStabilizationSeconds",
        ge=0,
        le=86400,
        description="Replicas go down only to the highest recommendation of this window; "
        "a variant or pool change waits until its saving repays the cold starts it risks, "
        "at most this long.",
    )
    scale_to_zero: bool = Field(
        default=False,
        alias="scaleToZero",
        description="Allow zero replicas when there is no traffic; the activator holds "
        "requests meanwhile and wakes the model (docs/scale-to-zero.md).",
    )
    max_cold_start_seconds: int | None = Field(
        default=None,
        alias="maxColdStartSeconds",
        ge=0,
        le=3600,
        description="With scaleToZero: the longest a request may wait for a cold start. "
        "When the model's cold start (observed, else provisioning plus load time) is "
        "longer, one warm replica stays instead of zero. Unset: zero whenever idle.",
    )


S3_URI_PATTERN = (
    r"^s3://((https?://)?[0-9A-Za-z.-]+:[0-9]{1,5}/)?[0-9a-z][0-9a-z.-]{1,61}[0-9a-z]"
    r"(/[0-9A-Za-z._-]+)*/?$"
)


class S3Repository(UserSpec):
    """An S3-compatible bucket that holds the built Triton repositories instead of a PVC.

    The build Job uploads each repository to ``<uri>/<buildHash>/<pool>/`` and Triton
    reads it from there (its own S3 client, credentials from the Secret's environment).
    """

    uri: str = Field(
        max_length=1024,
        pattern=S3_URI_PATTERN,
        description="s3://bucket/prefix on AWS, or s3://host:port/bucket/prefix for another "
        "S3-compatible server (MinIO, Ceph, ...); write s3://https://host:port/... for TLS. "
        "Triton's URI form: bucket names are lower case, path segments [A-Za-z0-9._-].",
    )
    credentials_secret: str | None = Field(
        default=None,
        alias="credentialsSecret",
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Secret in this namespace with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
        "and optionally AWS_DEFAULT_REGION and AWS_SESSION_TOKEN, passed as environment to the "
        "build Job and Triton; unset: the pods' own credentials (e.g. IRSA).",
    )


class RepositorySpec(UserSpec):
    """Where the built Triton model repositories live."""

    s3: S3Repository | None = Field(
        default=None,
        description="Upload the repositories to an S3-compatible bucket and serve from it; "
        "unset: the model's ReadWriteMany PVC.",
    )


class Mode(StrEnum):
    ACTIVE = "active"
    ADVISORY = "advisory"


class Pinned(UserSpec):
    """What serves while the operator only advises (``mode: advisory``): the team's
    current choice, kept as it is, so the recommendation can be read beside it (and its
    saving against it) before the planner is trusted with serving."""

    variant: Variant = Field(
        strict=False,
        description="The variant to serve; it must be built and accepted on the pool.",
    )
    pool: str = Field(
        pattern=POOL_NAME_PATTERN,
        max_length=63,
        description="The pool to serve it on: one of spec.pools, or of the operator's "
        "pools when spec.pools is unset.",
    )
    replicas: int = Field(default=1, ge=1, le=1000, description="Replicas to serve.")


def _variants_need(variants: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{v}'" for v in variants)
    return f"self.optimization.variants.exists(v, v in [{listed}])"


def _any_variant(spec: LeptonModelSpec, variants: tuple[str, ...]) -> bool:
    return any(v in variants for v in spec.optimization.variants or [])


SPEC_RULES = (
    Rule(
        f"!has(self.optimization) || !has(self.optimization.variants) || !has(self.pools) || "
        f"!{_variants_need(GPU_ONLY_VARIANTS)} || self.pools.exists(p, has(p.accelerator))",
        "a GPU-only variant (fp16, torch-compile, tensorrt) needs a pool with an accelerator",
        ".optimization.variants",
        lambda s: (
            s.pools is None
            or not _any_variant(s, GPU_ONLY_VARIANTS)
            or any(p.accelerator is not None for p in s.pools)
        ),
    ),
    Rule(
        f"!has(self.optimization) || !has(self.optimization.variants) || "
        f"self.model.format != 'onnx' || !{_variants_need(TORCH_SOURCE_VARIANTS)}",
        "an onnx model can only build onnx, onnx-int8, fp32 and tensorrt variants",
        ".optimization.variants",
        lambda s: s.model.format != ModelFormat.ONNX or not _any_variant(s, TORCH_SOURCE_VARIANTS),
    ),
    Rule(
        "!has(self.replicas) || (self.replicas >= self.scaling.minReplicas && "
        "self.replicas <= self.scaling.maxReplicas)",
        "replicas must lie within scaling.minReplicas and scaling.maxReplicas",
        ".replicas",
        lambda s: (
            s.replicas is None or s.scaling.min_replicas <= s.replicas <= s.scaling.max_replicas
        ),
    ),
    Rule(
        "!has(self.pinned) || self.mode == 'advisory'",
        "pinned serving is for advisory mode only: in active mode the planner serves "
        "(remove pinned when switching to active)",
        ".pinned",
        lambda s: s.pinned is None or s.mode == Mode.ADVISORY,
    ),
    Rule(
        "!has(self.pinned) || !has(self.pools) || self.pools.exists(p, p.name == self.pinned.pool)",
        "pinned.pool must name one of spec.pools",
        ".pinned.pool",
        lambda s: (
            s.pinned is None or s.pools is None or any(p.name == s.pinned.pool for p in s.pools)
        ),
    ),
)


class Serving(UserSpec):
    """How Triton serves the model, beyond what the planner chooses."""

    response_cache: bool = Field(
        default=False,
        alias="responseCache",
        description="Triton's response cache: a request identical to an earlier one is "
        "answered from memory without running the model. Only for deterministic models "
        "(the same inputs always give the same outputs). Cache hits are taken off the load "
        "the planner sizes replicas for, and status.live.cacheHitRate shows their share. "
        "Turning it on or off rolls the serving pods.",
    )
    response_cache_mb: int = Field(
        default=64,
        alias="responseCacheMB",
        ge=1,
        le=65536,
        description="Memory per serving pod for cached responses, in MiB; the oldest are "
        "evicted when it is full.",
    )


class LeptonModelSpec(UserSpec):
    """A model to serve at a latency SLO for the lowest cost."""

    rules = SPEC_RULES
    model_config = ConfigDict(json_schema_extra=CEL(*rules))

    model: ModelSource = Field(description="The trained model and its signature.")
    optimization: Optimization = Field(
        default_factory=Optimization,
        json_schema_extra=full_default(Optimization),
        description="Variants to build and the accuracy guard.",
    )
    slo: SLO = Field(description="Latency objective.")
    budget: Budget | None = Field(default=None, description="Spending limit.")
    pools: Annotated[list[PoolSpec], ListType("map", ("name",))] | None = Field(
        default=None,
        max_length=16,
        description="Pools this model may use; default: the operator's configured pools.",
    )
    scaling: Scaling = Field(
        default_factory=Scaling,
        json_schema_extra=full_default(Scaling),
        description="Replica bounds and pace.",
    )
    repository: RepositorySpec | None = Field(
        default=None,
        description="Where built Triton repositories are kept and served from; default: a "
        "ReadWriteMany PVC per model.",
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Pins the replica count (set by `kubectl scale` or an HPA through the "
        "scale subresource); the planner then chooses only variant and pool.",
    )
    mode: Mode = Field(
        default=Mode.ACTIVE,
        strict=False,
        description="active: the planner's decisions are served. advisory: the operator "
        "builds, profiles and plans as usual but only writes its decision to "
        "status.recommendation and Events; what serves is spec.pinned, or nothing.",
    )
    pinned: Pinned | None = Field(
        default=None,
        description="Advisory mode only: the variant, pool and replicas to serve while "
        "the operator advises. Unset: nothing is served until the mode is active.",
    )
    serving: Serving = Field(
        default_factory=Serving,
        json_schema_extra=full_default(Serving),
        description="Serving options: Triton's response cache.",
    )


def parse_spec(raw: dict[str, Any]) -> LeptonModelSpec:
    return LeptonModelSpec.model_validate(raw)
