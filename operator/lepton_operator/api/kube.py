"""Kubernetes-specific schema annotations, attached to the pydantic models.

They travel in ``json_schema_extra`` so the models stay the one source, and the CRD
generator copies them into the OpenAPI schema as they are. What the apiserver enforces
through them (CEL rules, list types) pydantic enforces too, naming the same field, so
the operator's own validation and admission never disagree about a spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError, core_schema

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


def field_error(loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> ValidationError:
    """A validation error at ``loc`` (relative to the value being validated; pydantic
    prefixes the path above it), for checks that name a field other than their own."""
    return ValidationError.from_exception_data(
        "LeptonModel",
        [
            InitErrorDetails(
                type=PydanticCustomError(kind, "{message}", {"message": message}),
                loc=loc,
                input=value,
            )
        ],
    )


@dataclass(frozen=True)
class Rule:
    """One cross-field rule, said twice: in CEL for the apiserver, and as ``holds`` over
    the validated model for pydantic (the operator validates every spec again). Both
    name the field at ``field_path`` (``.minReplicas``, relative to the model)."""

    cel: str
    message: str
    field_path: str
    holds: Callable[[Any], bool]

    def check(self, model: BaseModel) -> None:
        if not self.holds(model):
            loc = tuple(self.field_path.lstrip(".").split("."))
            raise field_error(loc, "cel_rule", self.message, model)


def CEL(*rules: Rule) -> dict[str, Any]:
    """``x-kubernetes-validations`` from rules."""
    return {
        "x-kubernetes-validations": [
            {"rule": rule.cel, "message": rule.message, "fieldPath": rule.field_path}
            for rule in rules
        ]
    }


def list_type(kind: str, *keys: str) -> dict[str, Any]:
    """``x-kubernetes-list-type`` (set, map, atomic), with map keys for ``map``."""
    extra: dict[str, Any] = {"x-kubernetes-list-type": kind}
    if keys:
        extra["x-kubernetes-list-map-keys"] = list(keys)
    return extra


@dataclass(frozen=True)
class ListType:
    """``Annotated[list[...], ListType("map", "name")]``: the list type in the CRD, and
    its rule in pydantic. The apiserver refuses a set that holds a value twice and a map
    list that holds a key twice, naming the later item (``spec.pools[1]: Duplicate
    value``); so does this, at the same index. Map keys are wire names."""

    kind: str
    keys: tuple[str, ...] = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._unique, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        json_schema.update(list_type(self.kind, *self.keys))
        return json_schema

    def _key(self, item: Any) -> Any:
        if not self.keys:
            return item
        wire = item.model_dump(by_alias=True) if isinstance(item, BaseModel) else item
        return tuple(wire.get(key) for key in self.keys)

    def _unique(self, items: list[Any]) -> list[Any]:
        if self.kind not in ("set", "map"):
            return items
        seen: list[Any] = []  # keys need not be hashable
        for index, item in enumerate(items):
            key = self._key(item)
            if key in seen:
                raise field_error((index,), "duplicate_value", f"Duplicate value: {key!r}", item)
            seen.append(key)
        return items


@dataclass(frozen=True)
class Check:
    """``Annotated[T, Check(cel, message, holds)]``: a CEL rule on the value itself
    (``self`` is the value) in the CRD, and ``holds`` over the same value in pydantic;
    both name the field. For what OpenAPI cannot say: map keys, Kubernetes formats."""

    cel: str
    message: str
    holds: Callable[[Any], bool]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        rules = json_schema.setdefault("x-kubernetes-validations", [])
        rules.append({"rule": self.cel, "message": self.message})
        return json_schema

    def _check(self, value: Any) -> Any:
        if not self.holds(value):
            raise field_error((), "cel_rule", self.message, value)
        return value


# Kubernetes' own name formats (k8s.io/apimachinery/pkg/util/validation), which the
# apiserver applies to the pods the operator makes from a spec; CEL's format library
# runs the very same functions at admission.
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# The name of a Secret, PersistentVolumeClaim or ConfigMap (IsDNS1123Subdomain; with a
# maxLength of 253 beside it): a name the apiserver could never store is refused where
# the user wrote it, instead of being looked up for ever as "not found".
DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS_SUBDOMAIN_PATTERN = f"^{DNS_SUBDOMAIN}$"
_DNS1123_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)


def is_qualified_name(value: str) -> bool:
    """A label key (or annotation key, resource name): ``[prefix/]name``, the prefix a
    DNS subdomain of at most 253 characters, the name at most 63. (IsQualifiedName.)"""
    parts = value.split("/")
    if len(parts) > 2:
        return False
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix):
            return False
    name = parts[-1]
    return 0 < len(name) <= 63 and _QUALIFIED_NAME.fullmatch(name) is not None


QUALIFIED_NAME_CEL = "!format.qualifiedName().validate({}).hasValue()"
