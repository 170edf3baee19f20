"""The EndpointSlice that points a model's Service at the activator.

The Service keeps its selector (its Triton pods); at zero the operator adds one slice
of its own, labelled with the Service's name, listing the activator's Ready pods on
the Service's ``http`` port and on its ``grpc`` port. kube-proxy (or any client
following the Service's EndpointSlices) then sends requests there; the EndpointSlice
controller leaves a slice it does not manage alone. Once a Triton pod is Ready the
slice is deleted and the Service's endpoints are the replicas only: the activator
leaves the data path (as Knative's does). The activator takes Triton's HTTP API on its
``port`` and Triton's gRPC API on the next one (``grpc_port``; the chart runs it so),
as Triton's own 8000 and 8001.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lepton_operator.constants import ACTIVATOR_COMPONENT
from lepton_operator.resources import names

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGER_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "lepton-operator"


def slice_name(model: str) -> str:
    return f"{names.service(model)}-activator"


def ready_addresses(slices: Iterable[Mapping[str, Any]]) -> list[str]:
    """The activator Service's Ready pod addresses, from its EndpointSlices."""
    found = {
        address
        for endpoint_slice in slices
        for endpoint in endpoint_slice.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint.get("addresses") or []
    }
    return sorted(found)


def grpc_port(http_port: int) -> int:
    """The activator's gRPC port: the one after its HTTP port (the chart's
    ``--grpc-port``), as Triton's 8001 after 8000."""
    return http_port + 1


def activator_slice(model: str, namespace: str, addresses: list[str], port: int) -> dict[str, Any]:
    """The slice of the model's Service listing the activator's Ready pods, on the
    Service's ``http`` port (``port``) and ``grpc`` port (the next one): the port
    names are the Service's, so kube-proxy maps each Service port to its own."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(model),
            "namespace": namespace,
            "labels": {
                **names.labels(model, ACTIVATOR_COMPONENT),
                SERVICE_NAME_LABEL: names.service(model),
                SLICE_MANAGER_LABEL: SLICE_MANAGER,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [
            {"name": "http", "port": port, "protocol": "TCP"},
            {"name": "grpc", "port": grpc_port(port), "protocol": "TCP"},
        ],
    }
