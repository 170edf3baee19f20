"""Kubernetes-specific schema annotations, attached to the pydantic models.

They travel in ``json_schema_extra`` so the models stay the one source, and the CRD
generator copies them into the OpenAPI schema as they are.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

GROUP = "lepton.ai"
VERSION = "v1alpha1"
KIND = "LeptonModel"
PLURAL = "leptonmodels"
SINGULAR = "leptonmodel"
SHORT_NAMES = ["lm"]
CATEGORIES = ["lepton", "ai"]
API_VERSION = f"{GROUP}/{VERSION}"


def full_default(model: type[BaseModel]) -> dict[str, Any]:
    """Default an object field to its model's complete defaults.

    The apiserver then fills in the block when a user leaves it out, and CEL rules can
    rely on its members. (A bare ``{}`` is not enough: the apiserver checks CEL rules
    against the default itself, without defaulting its members first.)
    """
    return {"default": model().model_dump(mode="json", by_alias=True, exclude_none=True)}


def CEL(*rules: tuple[str, str, str]) -> dict[str, Any]:
    """``x-kubernetes-validations`` from (rule, message, fieldPath) triples."""
    return {
        "x-kubernetes-validations": [
            {"rule": rule, "message": message, "fieldPath": field_path}
            for rule, message, field_path in rules
        ]
    }


def list_type(kind: str, *keys: str) -> dict[str, Any]:
    """``x-kubernetes-list-type`` (set, map, atomic), with map keys for ``map``."""
    extra: dict[str, Any] = {"x-kubernetes-list-type": kind}
    if keys:
        extra["x-kubernetes-list-map-keys"] = list(keys)
    return extra
