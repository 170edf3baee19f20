"""The EndpointSlice that points a model's Service at the activator.

The Service keeps its selector (its Triton pods); at zero the operator adds one slice
of its own, labelled with the Service's name, listing the activator's Ready pods on
the Service's ``http`` port. kube-proxy (or any client following the Service's
EndpointSlices) then sends requests there; the EndpointSlice controller leaves a slice
it does not manage alone. Once a Triton pod is Ready the slice is deleted and the
Service's endpoints are the replicas only: the activator leaves the data path (as
Knative's does). HTTP only: the activator speaks Triton's HTTP API; a gRPC client
sees no endpoint at zero (its call fails fast and no demand is signalled).
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


def activator_slice(model: str, namespace: str, addresses: list[str], port: int) -> dict[str, Any]:
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
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }
