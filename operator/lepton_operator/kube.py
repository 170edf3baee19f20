"""The Kubernetes adapter: apply, read, list and delete what the operator owns.

Server-side apply with one field manager makes every write idempotent: applying the
same desired object twice changes nothing (and bumps no resourceVersion), so a
reconcile that is retried, or restarted mid-way, converges instead of duplicating.
Deletion is refused for anything this operator does not own: an object must carry
our managed-by label and an owner reference to the LeptonModel in hand.

Blocking client: call it from kopf's sync handlers (run in a thread pool), never from
an ``async def``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    ForbiddenError,
    NotFoundError,
    UnprocessibleEntityError,
)

from lepton_operator.api.kube import API_VERSION, KIND
from lepton_operator.constants import MANAGED_BY, MANAGED_BY_LABEL

FIELD_MANAGER = "lepton-operator"


class Rejected(Exception):
    """The apiserver refused an object the operator made: invalid (422), or denied by
    admission, a policy or RBAC (403). Retrying the same object cannot succeed, so the
    pass reports it in status instead of failing and being retried with back-off."""

    def __init__(self, kind: str, name: str, code: int, message: str) -> None:
        super().__init__(f"{kind} {name}: {message}")
        self.kind, self.name, self.code, self.message = kind, name, code, message


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_owned_by(obj: dict[str, Any], owner_uid: str) -> bool:
    meta = obj.get("metadata") or {}
    return (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY and any(
        ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or []
    )


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.dynamic = DynamicClient(api_client)

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` as owned by ``owner``; returns the live object."""
        body = {**obj, "metadata": {**obj["metadata"], "ownerReferences": [owner_reference(owner)]}}
        resource = self._resource(obj["apiVersion"], obj["kind"])
        try:
            live = resource.server_side_apply(
                body=body, field_manager=FIELD_MANAGER, force_conflicts=True
            )
        except (UnprocessibleEntityError, ForbiddenError) as error:
            raise Rejected(
                obj["kind"], obj["metadata"]["name"], int(error.status), _message(error)
            ) from error
        result: dict[str, Any] = live.to_dict()
        return result

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            obj = self._resource(api_version, kind).get(name=name, namespace=namespace)
        except NotFoundError:
            return None
        result: dict[str, Any] = obj.to_dict()
        return result

    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        """Objects by label, owned or not (pods are owned by ReplicaSets, not by us)."""
        listing = self._resource(api_version, kind).get(
            namespace=namespace, label_selector=selector
        )
        return [
            {**item.to_dict(), "apiVersion": api_version, "kind": kind} for item in listing.items
        ]

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> None:
        """Strategic-merge patch of a status subresource (pod conditions merge by type)."""
        self._resource(api_version, kind).status.patch(
            name=name,
            namespace=namespace,
            body=patch,
            content_type="application/strategic-merge-patch+json",
        )

    def patch_model_status(
        self, namespace: str, name: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch a LeptonModel's status (a key set to None is removed); returns the
        model as written, or None when it is gone."""
        try:
            written = self._resource(API_VERSION, KIND).status.patch(
                name=name,
                namespace=namespace,
                body={"status": changes},
                content_type="application/merge-patch+json",
            )
        except NotFoundError:
            return None
        result: dict[str, Any] = written.to_dict()
        return result

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event about ``involved`` (what ``kubectl describe`` shows)."""
        meta = involved.get("metadata") or {}
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._resource("v1", "Event").create(
            namespace=meta["namespace"],
            body={
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion"),
                    "kind": involved.get("kind"),
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta.get("uid"),
                },
                "type": type_,
                "reason": reason,
                "message": message[:1024],
                "source": {"component": FIELD_MANAGER},
                "reportingComponent": FIELD_MANAGER,
                "reportingInstance": FIELD_MANAGER,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )

    def list_owned(
        self, api_version: str, kind: str, namespace: str, selector: str, owner_uid: str
    ) -> list[dict[str, Any]]:
        # List items come without apiVersion and kind; delete_owned needs them.
        items = self.list_labelled(api_version, kind, namespace, selector)
        return [item for item in items if is_owned_by(item, owner_uid)]

    def delete_owned(self, obj: dict[str, Any], owner_uid: str) -> bool:
        """Delete ``obj`` only if we own it; returns whether a delete was sent."""
        if not is_owned_by(obj, owner_uid):
            return False
        meta = obj["metadata"]
        try:
            self._resource(obj["apiVersion"], obj["kind"]).delete(
                name=meta["name"],
                namespace=meta["namespace"],
                body={"propagationPolicy": "Background", "preconditions": {"uid": meta["uid"]}},
            )
        except NotFoundError:
            return False
        return True


def _message(error: ForbiddenError | UnprocessibleEntityError) -> str:
    """The apiserver's own words (the Status object's message), else the reason."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.reason)
