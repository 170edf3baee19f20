"""Restricted Pod Security for every pod the operator creates.

Namespaces labelled ``pod-security.kubernetes.io/enforce=restricted`` admit only
pods like these; writing them once keeps builder and Triton pods from drifting apart.
"""

from __future__ import annotations

from typing import Any

NON_ROOT_UID = 1000


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pool_placement(
    node_selector: dict[str, str], tolerations: list[dict[str, Any]]
) -> dict[str, Any]:
    placement: dict[str, Any] = {}
    if node_selector:
        placement["nodeSelector"] = dict(node_selector)
    if tolerations:
        placement["tolerations"] = tolerations
    return placement
