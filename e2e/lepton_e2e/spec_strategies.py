"""Hypothesis strategies for LeptonModel specs, valid and invalid, read off the API.

The generator walks the spec's schema as the apiserver sees it (``crd.render_crd()``,
itself generated from the pydantic models), so a field, bound, pattern, enum or list
rule added to the models is generated and broken here without anyone teaching it.
What OpenAPI cannot say is CEL: cross-field rules, and Kubernetes formats the pods the
operator makes will be held to (label keys, extended resource names). Each CEL rule the
CRD carries is known here by its message, with a ``repair`` (makes a document obey it;
formats are drawn from strategies of their own instead) and a ``violate`` (breaks it in
one place); ``unknown_cel_rules()`` names any rule the strategies were not taught, and a
unit test keeps that list empty.

- ``valid_specs()``: documents both the apiserver and pydantic must accept.
- ``invalid_specs(kind)``: a valid document with one targeted mutation (a number out of
  range, a wrong JSON type, a number or boolean written as a string, an unknown enum
  value, a string off its pattern or length, a list too long, too short or with a
  duplicate key, a missing required field, an unknown field, or a violated CEL rule),
  carrying the path of the field it broke: both must reject it, naming that field.
- ``cases(kind)``: either, as ``Case`` values (``"valid"`` or one of ``KINDS``).

Values are JSON (what a user can write): no NaN or infinity, no ``null`` (in Kubernetes
``null`` means "unset", so it is not a wrong type). Strings use all of Unicode, control
characters included, because that is what a hostile or careless user can send.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from lepton_operator.api import crd
from lepton_operator.api.spec import (
    DIMENSION,
    EXTENDED_RESOURCE,
    GPU_ONLY_VARIANTS,
    LABEL_KEY,
    LABEL_KEYS,
    REQUESTABLE,
    REQUESTABLE_KEYS,
    TORCH_SOURCE_VARIANTS,
)

Path = tuple[str | int, ...]
Node = dict[str, Any]

SCHEMA: Node = crd.render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
    "spec"
]
# Lists and strings of a valid document stay short so a run stays fast; bounds are
# still reached, by the mutations (one past maxItems or maxLength) and, for strings,
# by an exact-length draw.
MAX_ITEMS = 3
MAX_TEXT = 24
MAX_MAP = 2


def field_name(path: Path) -> str:
    """The apiserver's spelling of a path inside ``spec``: ``spec.pools[0].name``."""
    out = "spec"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass(frozen=True)
class Mutation:
    kind: str
    path: Path  # the field it broke, relative to spec
    detail: str  # what was done, for a person reading a failure

    @property
    def field(self) -> str:
        return field_name(self.path)


@dataclass(frozen=True)
class Case:
    spec: dict[str, Any]
    mutation: Mutation | None  # None: valid

    @property
    def valid(self) -> bool:
        return self.mutation is None


# ---- reading the schema ------------------------------------------------------------------
def node_at(path: Path, schema: Node = SCHEMA) -> Node:
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node["items"]
        elif "properties" in node:
            node = node["properties"][part]
        else:
            node = node["additionalProperties"]
    return node


def get(doc: Any, path: Path) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def put(doc: Any, path: Path, value: Any) -> None:
    get(doc, path[:-1])[path[-1]] = value


def effective(spec: dict[str, Any], path: Path) -> Any:
    """A field's value after the apiserver's defaulting: the value, else the default the
    schema gives it (or the part of its parent's default), else None."""
    value: Any = spec
    for depth, part in enumerate(path):
        if isinstance(value, dict) and part in value:
            value = value[part]
            continue
        value = node_at(path[: depth + 1]).get("default")
        if value is None:
            return None
    return value


def _numeric_bounds(node: Node) -> tuple[float | None, float | None, bool]:
    return node.get("minimum"), node.get("maximum"), bool(node.get("exclusiveMinimum"))


# ---- valid values ------------------------------------------------------------------------
# Every code point a UTF-8 JSON string can carry (surrogates cannot), controls included.
ANY_CHAR = st.characters(codec="utf-8")


def _string(node: Node) -> st.SearchStrategy[str]:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    low = node.get("minLength", 0)
    high = node.get("maxLength")
    if "pattern" in node:
        regex = st.from_regex(str(node["pattern"]), fullmatch=True)
        return regex.filter(lambda s: low <= len(s) <= (high or math.inf))
    short = st.text(ANY_CHAR, min_size=low, max_size=min(high or MAX_TEXT, MAX_TEXT))
    if high is None:
        return short
    return st.one_of(short, st.text(ANY_CHAR, min_size=high, max_size=high))


# What a hostile user types where the schema sets no bound: the largest numbers JSON
# carries to a Go float64 or int64, and the smallest positive one.
HUGE = (2**53, 2**63 - 1, 1e16, 1e300, 1.7976931348623157e308)
TINY = (5e-324, 1e-300)


def _edges(node: Node) -> list[float | int]:
    low, high, exclusive = _numeric_bounds(node)
    edges: list[float | int] = []
    if high is None:
        edges += HUGE if node["type"] == "number" else [h for h in HUGE if isinstance(h, int)]
    else:
        edges.append(high)
    if low is not None and not exclusive:
        edges.append(low)
    if low is not None and exclusive and node["type"] == "number":
        edges += [low + t for t in TINY]
    return edges


def _integer(node: Node) -> st.SearchStrategy[int]:
    low, high, exclusive = _numeric_bounds(node)
    low_i = None if low is None else int(low) + (1 if exclusive else 0)
    edges = [int(e) for e in _edges(node) if float(e).is_integer()]
    return st.one_of(
        st.integers(low_i, None if high is None else int(high)), st.sampled_from(edges)
    )


def _number(node: Node) -> st.SearchStrategy[float | int]:
    low, high, exclusive = _numeric_bounds(node)
    floats = st.floats(
        min_value=low,
        max_value=high,
        exclude_min=exclusive and low is not None,
        allow_nan=False,
        allow_infinity=False,
    )
    # A JSON number without a fraction is a number too.
    whole_low = None if low is None else (math.floor(low) + 1 if exclusive else math.ceil(low))
    whole = st.integers(whole_low, None if high is None else math.floor(high))
    return st.one_of(floats, whole, st.sampled_from(_edges(node)))


def strategy_for(node: Node) -> st.SearchStrategy[Any]:
    """Values the node's schema accepts (cross-field rules aside; Kubernetes formats
    that CEL checks, such as label keys, drawn from their own strategies)."""
    for rule in node.get("x-kubernetes-validations", []):
        if rule["message"] in FORMATS:
            return FORMATS[rule["message"]](node)
    kind = node["type"]
    if kind == "object" and "properties" in node:
        required = set(node.get("required", []))
        props = node["properties"]
        return st.fixed_dictionaries(
            {k: strategy_for(props[k]) for k in props if k in required},
            optional={k: strategy_for(props[k]) for k in props if k not in required},
        )
    if kind == "object":
        keys = st.text(ANY_CHAR, max_size=MAX_TEXT)
        return st.dictionaries(keys, strategy_for(node["additionalProperties"]), max_size=MAX_MAP)
    if kind == "array":
        item = strategy_for(node["items"])
        low = node.get("minItems", 0)
        high = min(node.get("maxItems", MAX_ITEMS), max(low, MAX_ITEMS))
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = node["x-kubernetes-list-map-keys"]
            return st.lists(
                item, min_size=low, max_size=high, unique_by=lambda o: tuple(o[k] for k in keys)
            )
        return st.lists(item, min_size=low, max_size=high, unique=list_type == "set")
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return _integer(node)
    if kind == "number":
        return _number(node)
    if kind == "boolean":
        return st.booleans()
    raise ValueError(f"no strategy for schema type {kind!r}")


# ---- cross-field rules (CEL) -------------------------------------------------------------
@dataclass(frozen=True)
class CelRule:
    """One CEL rule of the CRD: where it sits, how to obey it, how to break it."""

    at: Path  # the object (or value) that carries the rule; "*" for any list item
    field_path: str | None  # its fieldPath, e.g. ".minReplicas"; None: the value itself
    repair: Callable[[dict[str, Any]], None]
    # Breaks the rule in one place; returns the field the apiserver names (None: cannot).
    violate: Callable[[st.DrawFn, dict[str, Any]], Path | None]


def _min_max(spec: dict[str, Any]) -> tuple[int, int]:
    return effective(spec, ("scaling", "minReplicas")), effective(spec, ("scaling", "maxReplicas"))


def _repair_hf(spec: dict[str, Any]) -> None:
    if spec["model"]["uri"].startswith("hf://"):
        spec["model"]["format"] = "safetensors"


def _violate_hf(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    spec["model"]["uri"] = "hf://" + draw(
        st.from_regex(r"[a-z0-9-]{1,20}/[a-z0-9-]{1,20}", fullmatch=True)
    )
    spec["model"]["format"] = draw(st.sampled_from(["torchscript", "onnx", "torch-export"]))
    _repair_onnx(spec)
    return ("model", "format")


def _repair_tolerance(spec: dict[str, Any]) -> None:
    accuracy = spec.get("optimization", {}).get("accuracy")
    if accuracy is None or effective(spec, ("optimization", "accuracy", "metric")) == (
        "max-abs-error"
    ):
        return
    if effective(spec, ("optimization", "accuracy", "tolerance")) > 1:
        accuracy["tolerance"] = 1


def _repair_labels(spec: dict[str, Any]) -> None:
    optimization = spec.get("optimization") or {}
    metric = (optimization.get("accuracy") or {}).get("metric")
    if metric == "label-accuracy" and "calibrationUri" not in optimization:
        optimization["calibrationUri"] = "pvc://models/calibration.npz"


def _violate_labels(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    optimization = spec.setdefault("optimization", {})
    optimization.setdefault("accuracy", {})["metric"] = "label-accuracy"
    _repair_tolerance(spec)
    optimization.pop("calibrationUri", None)
    return ("optimization", "calibrationUri")


def _violate_tolerance(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    accuracy = spec.setdefault("optimization", {}).setdefault("accuracy", {})
    if draw(st.booleans()):
        accuracy["metric"] = draw(st.sampled_from(["cosine", "top1-agreement"]))
    elif accuracy.get("metric") in ("max-abs-error", "label-accuracy"):
        del accuracy["metric"]
    accuracy["tolerance"] = draw(
        st.one_of(
            st.floats(1, 1e300, exclude_min=True, allow_nan=False, allow_infinity=False),
            st.integers(2, 10**9),
        )
    )
    return ("optimization", "accuracy", "tolerance")


def _repair_min_max(spec: dict[str, Any]) -> None:
    low, high = _min_max(spec)
    if low > high:
        scaling = spec["scaling"]
        scaling["minReplicas"], scaling["maxReplicas"] = high, low


def _violate_min_max(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    scaling = spec.setdefault("scaling", {})
    high = draw(st.integers(1, 999))
    scaling["maxReplicas"] = high
    scaling["minReplicas"] = draw(st.integers(high + 1, 1000))
    spec.pop("replicas", None)
    return ("scaling", "minReplicas")


def _repair_zero(spec: dict[str, Any]) -> None:
    if _min_max(spec)[0] == 0 and not effective(spec, ("scaling", "scaleToZero")):
        spec["scaling"]["scaleToZero"] = True


def _violate_zero(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    scaling = spec.setdefault("scaling", {})
    scaling["minReplicas"] = 0
    if draw(st.booleans()):
        scaling["scaleToZero"] = False
    else:
        scaling.pop("scaleToZero", None)
    if spec.get("replicas") is not None and spec["replicas"] > _min_max(spec)[1]:
        spec["replicas"] = 0
    return ("scaling", "minReplicas")


def _variants(spec: dict[str, Any]) -> list[str] | None:
    variants: list[str] | None = spec.get("optimization", {}).get("variants")
    return variants


def _repair_gpu(spec: dict[str, Any]) -> None:
    variants = _variants(spec)
    pools = spec.get("pools")
    if variants is None or pools is None or any("accelerator" in p for p in pools):
        return
    variants[:] = [v for v in variants if v not in GPU_ONLY_VARIANTS]


def _violate_gpu(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    pools = spec.get("pools") or [{"name": "cpu", "hourlyPriceUSD": 0.34}]
    for pool in pools:
        pool.pop("accelerator", None)
    spec["pools"] = pools
    _repair_pinned_pool(spec)
    optimization = spec.setdefault("optimization", {})
    gpu = draw(st.sampled_from(GPU_ONLY_VARIANTS))
    variants = [v for v in optimization.get("variants") or [] if v != gpu]
    variants.insert(draw(st.integers(0, len(variants))), gpu)
    optimization["variants"] = variants
    if spec["model"]["format"] == "onnx":  # keep the onnx rule out of it
        spec["model"]["format"] = "safetensors"
    return ("optimization", "variants")


def _repair_onnx(spec: dict[str, Any]) -> None:
    variants = _variants(spec)
    if variants is not None and spec["model"]["format"] == "onnx":
        variants[:] = [v for v in variants if v not in TORCH_SOURCE_VARIANTS]


def _violate_onnx(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    if spec["model"]["uri"].startswith("hf://"):  # keep the hf rule out of it
        spec["model"]["uri"] = "pvc://" + spec["model"]["uri"].removeprefix("hf://")
    spec["model"]["format"] = "onnx"
    optimization = spec.setdefault("optimization", {})
    torch = draw(st.sampled_from([v for v in TORCH_SOURCE_VARIANTS if v not in GPU_ONLY_VARIANTS]))
    variants = [v for v in optimization.get("variants") or [] if v != torch]
    variants.append(torch)
    optimization["variants"] = variants
    _repair_gpu(spec)
    return ("optimization", "variants")


def _repair_replicas(spec: dict[str, Any]) -> None:
    if "replicas" in spec:
        low, high = _min_max(spec)
        spec["replicas"] = min(max(spec["replicas"], low), high)


def _violate_replicas(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    low, high = _min_max(spec)
    options = ([low - 1] if low > 0 else []) + ([high + 1] if high < 1000 else [])
    if not options:
        return None
    spec["replicas"] = draw(st.sampled_from(options))
    return ("replicas",)


def _repair_pinned_mode(spec: dict[str, Any]) -> None:
    if "pinned" in spec and effective(spec, ("mode",)) != "advisory":
        spec["mode"] = "advisory"


def _violate_pinned_mode(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    pools = _pools(spec)
    spec["pinned"] = {
        "variant": "fp32",
        "pool": draw(st.sampled_from([p["name"] for p in pools])) if pools else "cpu",
    }
    if draw(st.booleans()):
        spec["mode"] = "active"
    else:
        spec.pop("mode", None)  # the default: active
    return ("pinned",)


def _repair_pinned_pool(spec: dict[str, Any]) -> None:
    pinned, pools = spec.get("pinned"), spec.get("pools")
    if pinned is None or pools is None or any(p["name"] == pinned["pool"] for p in pools):
        return
    if pools:
        pinned["pool"] = pools[0]["name"]
    else:  # an empty list of pools: nothing to pin to
        del spec["pinned"]


def _violate_pinned_pool(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    _some_pool(draw, spec)
    names = {p["name"] for p in spec["pools"]}
    spec["mode"] = "advisory"
    pinned = spec.setdefault("pinned", {"variant": "fp32"})
    pinned["pool"] = next(
        f"unlisted-{n}" for n in range(len(names) + 1) if f"unlisted-{n}" not in names
    )
    return ("pinned", "pool")


# ---- Kubernetes formats (CEL over a value: label keys, resource names) -----------------
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_NAME = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", fullmatch=True)
_PREFIX = st.from_regex(rf"{_DNS_LABEL}(\.{_DNS_LABEL}){{0,3}}", fullmatch=True).filter(
    lambda p: len(p) <= 253
)


def qualified_names() -> st.SearchStrategy[str]:
    """Label keys: ``name`` or ``prefix/name``."""
    return st.one_of(_NAME, st.tuples(_PREFIX, _NAME).map("/".join))


def extended_resources() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["nvidia.com/gpu", "amd.com/gpu", "google.com/tpu"]),
        st.tuples(_PREFIX, _NAME)
        .map("/".join)
        .filter(lambda r: "kubernetes.io/" not in r and not r.startswith("requests.")),
    )


def _label_map(node: Node) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        qualified_names(), strategy_for(node["additionalProperties"]), max_size=MAX_MAP
    )


def _requests(node: Node) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.sampled_from(REQUESTABLE), strategy_for(node["additionalProperties"]), max_size=3
    )


def _dimensions(node: Node) -> st.SearchStrategy[int]:
    return st.one_of(st.just(-1), st.integers(1, int(node["maximum"])))


def _violate_dimension(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    side = draw(st.sampled_from(["inputs", "outputs"]))
    tensor = draw(st.integers(0, len(spec["model"][side]) - 1))
    shape = spec["model"][side][tensor]["shape"]
    if not shape:
        shape.append(1)
    index = draw(st.integers(0, len(shape) - 1))
    shape[index] = 0
    return ("model", side, tensor, "shape", index)


FORMATS: dict[str, Callable[[Node], st.SearchStrategy[Any]]] = {
    DIMENSION.message: _dimensions,
    LABEL_KEYS.message: _label_map,
    LABEL_KEY.message: lambda node: st.one_of(st.just(""), qualified_names()),
    EXTENDED_RESOURCE.message: lambda node: extended_resources(),
    REQUESTABLE_KEYS.message: _requests,
}
# Not label keys, nor extended resources: each a way to get one wrong.
BAD_KEYS = (
    "bad key",
    "-lead",
    "trail.",
    "a/b/c",
    "/name",
    "Example.com/x",
    "x" * 64,
    "a" * 254 + "/x",
    "ключ",
    "",
)
BAD_RESOURCES = ("gpu", "kubernetes.io/gpu", "requests.nvidia.com/gpu", "nvidia.com/", "a b/c")
BAD_REQUESTS = ("nvidia.com/gpu", "hugepages-2Mi", "CPU", "storage", "pods")


def _pools(spec: dict[str, Any]) -> list[dict[str, Any]]:
    pools: list[dict[str, Any]] = spec.get("pools") or []
    return pools


def _some_pool(draw: st.DrawFn, spec: dict[str, Any]) -> int:
    """The index of a pool of the spec, adding one if it has none."""
    if not spec.get("pools"):
        spec["pools"] = [{"name": "p", "hourlyPriceUSD": 1}]
        _repair_gpu(spec)  # pools given, with no accelerator: GPU-only variants go
        _repair_pinned_pool(spec)  # and a pin names one of them
    index: int = draw(st.integers(0, len(spec["pools"]) - 1))
    return index


def _violate_label_keys(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    index = _some_pool(draw, spec)
    selector = spec["pools"][index].setdefault("nodeSelector", {})
    selector[draw(st.sampled_from(BAD_KEYS))] = "x"
    return ("pools", index, "nodeSelector")


def _toleration(draw: st.DrawFn, spec: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
    index = _some_pool(draw, spec)
    tolerations = spec["pools"][index].setdefault("tolerations", [])
    if not tolerations:
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists"})
    at = draw(st.integers(0, len(tolerations) - 1))
    return index, at, tolerations[at]


def _violate_label_key(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    index, at, toleration = _toleration(draw, spec)
    toleration["key"] = draw(st.sampled_from([k for k in BAD_KEYS if k]))
    return ("pools", index, "tolerations", at, "key")


def _repair_exists_value(spec: dict[str, Any]) -> None:
    for pool in _pools(spec):
        for toleration in pool.get("tolerations") or []:
            if toleration.get("operator") == "Exists":
                toleration.pop("value", None)


def _violate_exists_value(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    index, at, toleration = _toleration(draw, spec)
    toleration.update(operator="Exists", value=draw(st.sampled_from(["x", "true", "0"])))
    if not toleration.get("key"):
        toleration["key"] = "nvidia.com/gpu"
    return ("pools", index, "tolerations", at, "value")


def _repair_empty_key(spec: dict[str, Any]) -> None:
    for pool in _pools(spec):
        for toleration in pool.get("tolerations") or []:
            if not toleration.get("key"):
                toleration["operator"] = "Exists"


def _violate_empty_key(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    index, at, toleration = _toleration(draw, spec)
    if draw(st.booleans()):
        toleration["key"] = ""
    else:
        toleration.pop("key", None)
    if draw(st.booleans()):
        toleration["operator"] = "Equal"
    else:
        toleration.pop("operator", None)
    return ("pools", index, "tolerations", at, "operator")


def _violate_extended_resource(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    index = _some_pool(draw, spec)
    accelerator = spec["pools"][index].setdefault("accelerator", {"type": "nvidia-l4"})
    accelerator["resource"] = draw(st.sampled_from(BAD_RESOURCES))
    return ("pools", index, "accelerator", "resource")


def _violate_requests(draw: st.DrawFn, spec: dict[str, Any]) -> Path | None:
    index = _some_pool(draw, spec)
    resources = spec["pools"][index].setdefault("resources", {})
    for key in list(resources)[:2]:  # room for one more under maxProperties
        del resources[key]
    resources[draw(st.sampled_from(BAD_REQUESTS))] = "1"
    return ("pools", index, "resources")


def _no_repair(spec: dict[str, Any]) -> None:
    """Formats need none: their values are drawn from their own strategies."""


POOL = ("pools", "*")
CEL_RULES: dict[str, CelRule] = {
    "an hf:// model must have format safetensors": CelRule(
        ("model",), ".format", _repair_hf, _violate_hf
    ),
    "tolerance of cosine, top1-agreement or label-accuracy is a fraction in (0, 1]": CelRule(
        ("optimization", "accuracy"), ".tolerance", _repair_tolerance, _violate_tolerance
    ),
    "accuracy metric label-accuracy judges by the labels in the calibration data: "
    "set calibrationUri": CelRule(
        ("optimization",), ".calibrationUri", _repair_labels, _violate_labels
    ),
    "minReplicas must not exceed maxReplicas": CelRule(
        ("scaling",), ".minReplicas", _repair_min_max, _violate_min_max
    ),
    "minReplicas 0 needs scaleToZero: true": CelRule(
        ("scaling",), ".minReplicas", _repair_zero, _violate_zero
    ),
    "a GPU-only variant (fp16, torch-compile, tensorrt) needs a pool with an accelerator": (
        CelRule((), ".optimization.variants", _repair_gpu, _violate_gpu)
    ),
    "an onnx model can only build onnx, onnx-int8, fp32 and tensorrt variants": CelRule(
        (), ".optimization.variants", _repair_onnx, _violate_onnx
    ),
    "replicas must lie within scaling.minReplicas and scaling.maxReplicas": CelRule(
        (), ".replicas", _repair_replicas, _violate_replicas
    ),
    "pinned serving is for advisory mode only: in active mode the planner serves "
    "(remove pinned when switching to active)": CelRule(
        (), ".pinned", _repair_pinned_mode, _violate_pinned_mode
    ),
    "pinned.pool must name one of spec.pools": CelRule(
        (), ".pinned.pool", _repair_pinned_pool, _violate_pinned_pool
    ),
    # Toleration rules, the empty key's first (its repair sets Exists, which the other's
    # repair then follows by dropping the value).
    "operator must be Exists when key is empty (it tolerates every taint)": CelRule(
        (*POOL, "tolerations", "*"), ".operator", _repair_empty_key, _violate_empty_key
    ),
    "value must be empty when operator is Exists": CelRule(
        (*POOL, "tolerations", "*"), ".value", _repair_exists_value, _violate_exists_value
    ),
    LABEL_KEYS.message: CelRule((*POOL, "nodeSelector"), None, _no_repair, _violate_label_keys),
    LABEL_KEY.message: CelRule(
        (*POOL, "tolerations", "*", "key"), None, _no_repair, _violate_label_key
    ),
    EXTENDED_RESOURCE.message: CelRule(
        (*POOL, "accelerator", "resource"), None, _no_repair, _violate_extended_resource
    ),
    REQUESTABLE_KEYS.message: CelRule((*POOL, "resources"), None, _no_repair, _violate_requests),
    # On every tensor, inputs and outputs alike ("*" in ``at`` matches any field name).
    DIMENSION.message: CelRule(
        ("model", "*", "*", "shape", "*"), None, _no_repair, _violate_dimension
    ),
}


def cel_rules(node: Node = SCHEMA, path: Path = ()) -> list[tuple[Path, dict[str, str]]]:
    """Every CEL rule in the spec's schema, with the path of the object carrying it
    (``"*"`` for any list item)."""
    found = [(path, rule) for rule in node.get("x-kubernetes-validations", [])]
    for key, child in (node.get("properties") or {}).items():
        found += cel_rules(child, (*path, key))
    if isinstance(node.get("items"), dict):
        found += cel_rules(node["items"], (*path, "*"))
    if isinstance(node.get("additionalProperties"), dict):
        found += cel_rules(node["additionalProperties"], (*path, "*"))
    return found


def _same_place(known: Path, at: Path) -> bool:
    return len(known) == len(at) and all(k in ("*", a) for k, a in zip(known, at, strict=True))


def unknown_cel_rules() -> list[str]:
    """CEL rules of the CRD the strategies cannot obey or break (should be none)."""
    missing = []
    for at, rule in cel_rules():
        known = CEL_RULES.get(rule["message"])
        if (
            known is None
            or not _same_place(known.at, at)
            or known.field_path != rule.get("fieldPath")
        ):
            missing.append(f"{field_name(at)}: {rule['message']}")
    return missing


def repair(spec: dict[str, Any]) -> dict[str, Any]:
    """Make a schema-valid document obey every CEL rule (order matters: scaling bounds
    before replicas)."""
    for rule in CEL_RULES.values():
        rule.repair(spec)
    return spec


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = draw(strategy_for(SCHEMA))
    return repair(spec)


# ---- one targeted mutation ---------------------------------------------------------------
def _sites(doc: Any, node: Node, path: Path = ()) -> list[tuple[Path, Node]]:
    """Every value present in the document, with its schema node."""
    found: list[tuple[Path, Node]] = [(path, node)] if path else []
    if isinstance(doc, dict) and "properties" in node:
        for key, value in doc.items():
            found += _sites(value, node["properties"][key], (*path, key))
    elif isinstance(doc, dict):
        for key, value in doc.items():
            found += _sites(value, node["additionalProperties"], (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _sites(value, node["items"], (*path, index))
    return found


WRONG_TYPES: dict[str, list[Any]] = {
    "string": [7, 0, 1.5, True, False, ["text"], {"a": "b"}],
    "integer": ["7", "0", "many", 1.5, -0.5, True, [1], {"a": 1}],
    "number": ["7.5", "1e3", "fast", True, False, [1.0], {"a": 1.0}],
    "boolean": ["true", "false", "yes", 1, 0, [True], {"a": True}],
    "array": ["text", 3, True, {"0": "x"}],
    "object": ["text", 3, 2.5, True, ["x"]],
}


def _is_map_entry(path: Path) -> bool:
    """A value inside nodeSelector or resources: the apiserver names the map, and the
    key's spelling in its paths varies, so the map is the field to name."""
    return len(path) >= 2 and "properties" not in node_at(path[:-1]) and isinstance(path[-1], str)


def _named(path: Path) -> Path:
    return path[:-1] if _is_map_entry(path) else path


def _out_of_range(draw: st.DrawFn, node: Node) -> Any:
    low, high, exclusive = _numeric_bounds(node)
    integer = node["type"] == "integer"
    options: list[st.SearchStrategy[Any]] = []
    if low is not None:
        below: st.SearchStrategy[Any]
        if integer:
            below = st.integers(max(int(low) - 1000, -(2**31)), int(low) - (0 if exclusive else 1))
        elif exclusive:
            below = st.one_of(st.just(low), st.floats(low - 1e6, low, allow_nan=False))
        else:
            below = st.floats(low - 1e6, low, exclude_max=True, allow_nan=False)
        options.append(below)
    if high is not None:
        above: st.SearchStrategy[Any]
        if integer:
            above = st.integers(int(high) + 1, int(high) + 1000)
        else:
            above = st.floats(high, high + 1e6, exclude_min=True, allow_nan=False)
        options.append(above)
    return draw(st.one_of(options))


def _off_pattern(draw: st.DrawFn, node: Node) -> str:
    pattern = re.compile(node["pattern"])
    high = node.get("maxLength", MAX_TEXT)
    text = st.text(ANY_CHAR, max_size=min(high, MAX_TEXT))
    # Near misses too: a valid value with one character changed or added.
    near = st.tuples(st.from_regex(pattern, fullmatch=True), ANY_CHAR, st.integers(0, 64)).map(
        lambda t: t[0][: t[2]] + t[1] + t[0][t[2] + 1 :]
    )
    value: str = draw(
        st.one_of(text, near).filter(lambda s: len(s) <= high and not pattern.fullmatch(s))
    )
    return value


def _kinds(spec: dict[str, Any], path: Path, node: Node) -> list[str]:
    """The mutations that apply to the value at ``path``."""
    kinds = ["wrong-type"]
    kind_of = node["type"]
    if kind_of in ("integer", "number", "boolean"):
        kinds.append("quoted")
    if kind_of in ("integer", "number") and (
        node.get("minimum") is not None or node.get("maximum") is not None
    ):
        kinds.append("out-of-range")
    if "enum" in node:
        kinds.append("unknown-enum")
    if "pattern" in node and "enum" not in node:
        kinds.append("bad-pattern")
    if "maxLength" in node:
        kinds.append("too-long")
    if node.get("minLength", 0) > 0:
        kinds.append("too-short")
    if kind_of == "array":
        list_type = node.get("x-kubernetes-list-type")
        # (a set of an enum with no more members than maxItems cannot grow past it)
        members = len(node["items"].get("enum", [])) if list_type == "set" else 0
        if "maxItems" in node and not 0 < members <= node["maxItems"]:
            kinds.append("too-many")
        if node.get("minItems", 0) > 0:
            kinds.append("too-few")
        if get(spec, path) and list_type in ("map", "set"):
            kinds.append("duplicate")
    if kind_of == "object" and "properties" in node:
        kinds.append("unknown-field")
    return kinds


def _mutate_site(
    draw: st.DrawFn, spec: dict[str, Any], path: Path, node: Node, kind: str
) -> Mutation:
    kind_of = node["type"]
    value: Any
    if kind == "wrong-type":
        value = draw(st.randoms(use_true_random=True)).choice(WRONG_TYPES[kind_of])
        put(spec, path, value)
        return Mutation(kind, _named(path), f"{field_name(path)} = {value!r}")
    if kind == "quoted":  # YAML's classic: replicas: "2", scaleToZero: "true"
        value = json.dumps(get(spec, path))
        put(spec, path, value)
        return Mutation(kind, path, f"{field_name(path)} = {value!r}")
    if kind == "out-of-range":
        value = _out_of_range(draw, node)
        put(spec, path, value)
        return Mutation(kind, path, f"{field_name(path)} = {value!r}")
    if kind == "unknown-enum":
        enum = node["enum"]
        value = draw(
            st.one_of(
                st.sampled_from([e.upper() for e in enum] + [e + " " for e in enum]),
                st.text(ANY_CHAR, max_size=MAX_TEXT),
            ).filter(lambda s: s not in enum)
        )
        put(spec, path, value)
        return Mutation(kind, path, f"{field_name(path)} = {value!r}")
    if kind == "bad-pattern":
        value = _off_pattern(draw, node)
        put(spec, path, value)
        return Mutation(kind, path, f"{field_name(path)} = {value!r}")
    if kind == "too-long":
        value = _too_long(draw, node)
        put(spec, path, value)
        return Mutation(kind, path, f"len({field_name(path)}) = {len(value)}")
    if kind == "too-short":
        put(spec, path, "")
        return Mutation(kind, path, f"{field_name(path)} = ''")
    if kind == "too-many":
        size = node["maxItems"] + 1
        put(spec, path, _grow(draw, node, list(get(spec, path)), size))
        return Mutation(kind, path, f"len({field_name(path)}) = {size}")
    if kind == "too-few":
        put(spec, path, [])
        return Mutation(kind, path, f"{field_name(path)} = []")
    if kind == "duplicate":
        items = get(spec, path)
        index = len(items)
        items.append(copy.deepcopy(items[draw(st.integers(0, len(items) - 1))]))
        if node["x-kubernetes-list-type"] == "map" and draw(st.booleans()):
            # Same key, other values: still a duplicate of the key.
            other = draw(strategy_for(node["items"]))
            for key in node["x-kubernetes-list-map-keys"]:
                other[key] = items[-1][key]
            items[-1] = other
        return Mutation(kind, (*path, index), f"{field_name(path)}[{index}] repeats a key")
    # unknown-field
    obj = get(spec, path)
    known = set(node["properties"])
    name = draw(
        st.one_of(
            st.sampled_from(sorted({k[:1].upper() + k[1:] for k in known} | {"status", "spec"})),
            st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,15}", fullmatch=True),
        ).filter(lambda k: k not in known)
    )
    obj[name] = draw(st.sampled_from(["x", 1, True, {}, []]))
    return Mutation(kind, (*path, name), f"{field_name((*path, name))} added")


def _too_long(draw: st.DrawFn, node: Node) -> str:
    """One character past maxLength, on the pattern where one is set (so the length is
    what is wrong), else any text."""
    high: int = node["maxLength"]
    if "pattern" not in node:
        return draw(st.text(ANY_CHAR, min_size=high + 1, max_size=high + 8))
    pattern = str(node["pattern"])
    start = draw(st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) > 0))
    for filler in ("a", start[-1], "/a", "a/"):
        value = (start + filler * (high + 1))[: high + 1]
        if re.fullmatch(pattern, value):
            return value
    return "a" * (high + 1)  # off the pattern as well: still a field to name


def _grow(draw: st.DrawFn, node: Node, items: list[Any], size: int) -> list[Any]:
    """``items`` grown to ``size`` with more valid items (distinct keys, set members)."""
    item = node["items"]
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys", [])
    while len(items) < size:
        new = draw(strategy_for(item))
        if list_type == "map":
            for key in keys:  # names: a DNS label or a tensor name stays one
                new[key] = f"{new[key][:50]}x{len(items)}"
            if any(all(o[k] == new[k] for k in keys) for o in items):
                continue
        elif list_type == "set" and new in items:
            continue
        items.append(new)
    return items


def _missing_required(sites: list[tuple[Path, Node]]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = [((), key) for key in SCHEMA.get("required", [])]
    for path, node in sites:
        if node["type"] == "object" and "properties" in node:
            found += [(path, key) for key in node.get("required", [])]
    return found


KINDS = (
    "wrong-type",
    "quoted",
    "out-of-range",
    "unknown-enum",
    "bad-pattern",
    "too-long",
    "too-short",
    "too-many",
    "too-few",
    "duplicate",
    "unknown-field",
    "missing-required",
    "cel",
)


@st.composite
def invalid_specs(draw: st.DrawFn, kind: str) -> Case:
    """A valid document with one mutation of ``kind`` (one of ``KINDS``; each applies
    to every document, since model, its inputs and slo are always there).

    Tests take the kinds one by one (Hypothesis leans hard towards the first branch of a
    choice, so a mixed draw would test mostly one kind)."""
    spec = draw(valid_specs())
    sites = _sites(spec, SCHEMA)
    if kind == "missing-required":
        path, key = draw(st.sampled_from(_missing_required(sites)))
        del get(spec, path)[key]
        return Case(spec, Mutation(kind, (*path, key), f"{field_name((*path, key))} gone"))
    if kind == "cel":
        message = draw(st.sampled_from(sorted(CEL_RULES)))
        rule = CEL_RULES[message]
        broken = rule.violate(draw, spec)
        if broken is None:
            return draw(invalid_specs(kind))
        return Case(spec, Mutation(kind, broken, message))
    places = [(path, node) for path, node in sites if kind in _kinds(spec, path, node)]
    # A seeded Random (the seed drawn, so runs repeat) picks the place: Hypothesis's own
    # choices keep returning to the first places of a document (its model section).
    path, node = draw(st.randoms(use_true_random=True)).choice(places)
    return Case(spec, _mutate_site(draw, spec, path, node, kind))


def cases(kind: str) -> st.SearchStrategy[Case]:
    """``"valid"`` or one of ``KINDS``."""
    if kind == "valid":
        return valid_specs().map(lambda spec: Case(spec, None))
    return invalid_specs(kind)


def document(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """A whole LeptonModel object around a spec."""
    return {
        "apiVersion": "lepton.ai/v1alpha1",
        "kind": "LeptonModel",
        "metadata": {"name": name},
        "spec": spec,
    }
