"""Pure routing: which model a request is for, and where its Ready replicas are.

The table is fed by the watch of the EndpointSlices of the operator's Services (the
apiserver filters by the operator's managed-by label): the EndpointSlice
controller's slices list the Triton pods, Ready or not; the operator's own slice
(``lepton.ai/component=activator``) says the Service points at the activator, i.e.
the model has no Ready replica.

A gRPC call carries no Host the server can read (grpcio does not hand ``:authority``
to a handler), so the model is the one its first message names: Triton's model-level
requests put it in a string field (``ModelInferRequest.model_name`` = 1, ...), read
here from the protobuf wire format without Triton's proto classes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MODEL_LABEL = "lepton.ai/model"
COMPONENT_LABEL = "lepton.ai/component"
ACTIVATOR_COMPONENT = "activator"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HTTP_PORT_NAME = "http"
GRPC_PORT_NAME = "grpc"
GRPC_SERVICE = "/inference.GRPCInferenceService/"
# Triton's gRPC methods whose request names the model, and the field that does
# (grpc_service.proto): the name or model_name string of each request.
GRPC_MODEL_FIELD = {
    "ModelReady": 1,
    "ModelMetadata": 1,
    "ModelConfig": 1,
    "ModelStatistics": 1,
    "ModelInfer": 1,
    "ModelStreamInfer": 1,
    "RepositoryModelLoad": 2,
    "RepositoryModelUnload": 2,
}

Key = tuple[str, str]  # (namespace, model)

_MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(/|$)")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class SliceInfo:
    namespace: str
    model: str
    activator: bool  # the operator's slice that routes the Service here
    ready: tuple[str, ...]  # "ip:port" of Ready endpoints on the HTTP port
    ready_grpc: tuple[str, ...] = ()  # the same endpoints on the gRPC port


def _ready_on(obj: Mapping[str, Any], port_name: str) -> tuple[str, ...]:
    port = next((p.get("port") for p in obj.get("ports") or [] if p.get("name") == port_name), None)
    ready: list[str] = []
    if port is not None:
        for endpoint in obj.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready"):
                ready += [f"{ip}:{port}" for ip in endpoint.get("addresses") or []]
    return tuple(sorted(ready))


def slice_info(obj: Mapping[str, Any]) -> SliceInfo | None:
    """What one EndpointSlice says, or None when it belongs to no model."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    model = labels.get(MODEL_LABEL) or labels.get(SERVICE_NAME_LABEL)
    namespace = meta.get("namespace")
    if not model or not namespace:
        return None
    if labels.get(COMPONENT_LABEL) == ACTIVATOR_COMPONENT:
        return SliceInfo(namespace, model, True, ())
    return SliceInfo(
        namespace, model, False, _ready_on(obj, HTTP_PORT_NAME), _ready_on(obj, GRPC_PORT_NAME)
    )


@dataclass
class Table:
    """The watched slices by (namespace, name); what the server asks of them."""

    slices: dict[tuple[str, str], SliceInfo] = field(default_factory=dict)

    def put(self, obj: Mapping[str, Any]) -> Key | None:
        meta = obj.get("metadata") or {}
        name = (str(meta.get("namespace")), str(meta.get("name")))
        info = slice_info(obj)
        if info is None:
            return None
        self.slices[name] = info
        return (info.namespace, info.model)

    def remove(self, obj: Mapping[str, Any]) -> Key | None:
        meta = obj.get("metadata") or {}
        info = self.slices.pop((str(meta.get("namespace")), str(meta.get("name"))), None)
        return (info.namespace, info.model) if info else None

    def replace(self, objs: Iterable[Mapping[str, Any]]) -> set[Key]:
        """A fresh listing: every key whose slices may have changed."""
        before = {(i.namespace, i.model) for i in self.slices.values()}
        self.slices.clear()
        after = {key for obj in objs if (key := self.put(obj)) is not None}
        return before | after

    def backends(self, key: Key, port: str = HTTP_PORT_NAME) -> list[str]:
        """Ready Triton replicas of the model (never the activator itself), ``ip:port``
        on its HTTP port, or its gRPC port with ``port="grpc"``."""
        found: set[str] = set()
        for info in self.slices.values():
            if (info.namespace, info.model) == key and not info.activator:
                found.update(info.ready_grpc if port == GRPC_PORT_NAME else info.ready)
        return sorted(found)

    def routed_models(self) -> list[Key]:
        """Models whose Service points here now."""
        return sorted({(i.namespace, i.model) for i in self.slices.values() if i.activator})

    def routed_here(self, key: Key) -> bool:
        return any((i.namespace, i.model) == key and i.activator for i in self.slices.values())

    def known(self, key: Key) -> bool:
        return any((i.namespace, i.model) == key for i in self.slices.values())

    def models_named(self, model: str) -> list[Key]:
        return sorted({(i.namespace, i.model) for i in self.slices.values() if i.model == model})


def model_in_path(path: str) -> str | None:
    """The model a Triton HTTP request names: ``/v2/models/<name>/...``."""
    match = _MODEL_PATH.match(path)
    return match.group(1) if match else None


def service_in_host(host: str) -> Key | None:
    """(namespace, service) from a Host header ``<service>.<namespace>[.svc[...]]``;
    None for an address or a bare name (no namespace in it)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    parts = name.split(".")
    if len(parts) < 2 or not all(_DNS_LABEL.match(p) for p in parts[:2]):
        return None
    if len(parts) > 2 and parts[2] != "svc":
        return None
    return (parts[1], parts[0])


@dataclass(frozen=True)
class Route:
    key: Key | None
    status: int = 200
    message: str = ""


def route(table: Table, host: str, path: str) -> Route:
    """Which model a request is for. The Host header names the Service and its
    namespace when the client used the Service's DNS name; otherwise the model in the
    path, which must name exactly one model the activator knows of (Triton serves one
    model per LeptonModel, named after it)."""
    by_host = service_in_host(host)
    if by_host is not None and table.known(by_host):
        return Route(by_host)
    model = model_in_path(path)
    if model is None:
        return Route(
            None,
            404,
            f"no model in the path {path!r} and none in the Host header {host!r}: the "
            "activator answers only for a model scaled to zero",
        )
    if by_host is not None and by_host[1] == model:
        return Route(by_host)  # not watched yet: the namespace is the Host's
    return _by_name(
        table, model, "call it through its Service's DNS name so the Host header says which"
    )


def _by_name(table: Table, model: str, which: str) -> Route:
    """The one model of that name; 404 when none, 400 naming them when several (``which``
    says how the caller can tell them apart)."""
    candidates = table.models_named(model)
    if len(candidates) == 1:
        return Route(candidates[0])
    if not candidates:
        return Route(None, 404, f"unknown model {model}: no LeptonModel by that name is served")
    names = ", ".join(f"{ns}/{m}" for ns, m in candidates)
    return Route(None, 400, f"model {model} exists in several namespaces ({names}); {which}")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """A protobuf varint at ``at``: (value, next offset); ValueError when cut short."""
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def string_field(message: bytes, field: int) -> str | None:
    """The first value of the string ``field`` of a serialized protobuf message, read
    from the wire format (fields skipped by their wire type); None when absent, not a
    string, or the bytes are not a message."""
    at = 0
    try:
        while at < len(message):
            tag, at = _varint(message, at)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                _, at = _varint(message, at)
            elif wire == 1:
                at += 8
            elif wire == 5:
                at += 4
            elif wire == 2:
                size, at = _varint(message, at)
                if at + size > len(message):
                    return None
                if number == field:
                    return message[at : at + size].decode("utf-8")
                at += size
            else:  # groups (3, 4) are not in Triton's protocol; 6, 7 do not exist
                return None
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def model_in_call(method: str, first_message: bytes | None) -> str | None:
    """The model a Triton gRPC call names: the model field of its first request, for
    the model-level methods (``GRPC_MODEL_FIELD``); None for server-level ones
    (ServerLive, ServerReady, ServerMetadata, ...)."""
    if not method.startswith(GRPC_SERVICE) or first_message is None:
        return None
    field_number = GRPC_MODEL_FIELD.get(method[len(GRPC_SERVICE) :])
    if field_number is None:
        return None
    return string_field(first_message, field_number) or None


def grpc_route(table: Table, method: str, first_message: bytes | None) -> Route:
    """Which model a gRPC call is for: the one its request names, which must be exactly
    one model the activator knows of; a server-level call (no model in it) goes to the
    one model whose Service points here, when there is exactly one."""
    model = model_in_call(method, first_message)
    if model is None:
        routed = table.routed_models()
        if len(routed) == 1:
            return Route(routed[0])
        return Route(
            None,
            404 if not routed else 400,
            f"the call {method} names no model and {len(routed)} model(s) are at zero "
            "here: call a model-level method (ModelReady, ModelInfer, ...) to wake one",
        )
    return _by_name(
        table,
        model,
        "a gRPC call carries no namespace the activator can read: call it over HTTP "
        "through the Service's DNS name, or give the models distinct names",
    )
