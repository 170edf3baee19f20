"""Reads from kopf's watch caches, and writes only what changed: the pass's view of
the cluster.

A pass lists its model's Triton pods (twice: canary and observation) and Deployments,
and applies the Deployment and the Service. Read from the API and applied every time,
that is about six requests for a pass that changes nothing. Here:

- pods, Deployments and Services the operator made come from kopf indices (slim
  copies kept current by the watches ``handlers`` opens, keyed by namespace and
  model), so listing them costs no request;
- a Deployment or Service is applied only when what the pass wants differs from what
  it last applied (a digest of the desired object and its owner), or the watched copy
  shows someone else changed it (a new generation) or deleted it. Otherwise the
  watched copy stands for the apply's answer (its status says how many replicas are
  ready).

Everything else (builds, reports, claims, deletions, pod conditions) goes to the API
as before. Before the indices are bound (unit tests, or a pass before start-up) every
call goes to the API.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kubernetes import client

from lepton_operator.constants import COMPONENT_LABEL, MODEL_LABEL
from lepton_operator.kube import Kube, is_owned_by
from lepton_operator.resources.names import stable_hash

Key = tuple[str, str]  # (namespace, model)
CACHED_KINDS = {("v1", "Pod"), ("apps/v1", "Deployment"), ("v1", "Service")}
SKIPPED_APPLY_KINDS = {"Deployment", "Service"}
ANNOTATION_PREFIX = "lepton.ai/"


class Index(Protocol):
    def __contains__(self, key: object) -> bool: ...
    def __getitem__(self, key: Key) -> Iterable[Mapping[str, Any]]: ...


def _pick(source: Mapping[str, Any] | None, keys: Iterable[str]) -> dict[str, Any]:
    source = source or {}
    return {key: source[key] for key in keys if source.get(key) is not None}


def _meta(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    slim = _pick(
        meta,
        (
            "name",
            "namespace",
            "uid",
            "labels",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "ownerReferences",
        ),
    )
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(ANNOTATION_PREFIX)
    }
    if annotations:
        slim["annotations"] = annotations
    slim["labels"] = dict(slim.get("labels") or {})
    return slim


def slim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the canary, cold starts, waits for a node and the serving pairs read."""
    status = body.get("status") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(body),
        "spec": _pick(body.get("spec"), ("nodeName", "readinessGates")),
        "status": {
            **_pick(status, ("phase", "podIP", "conditions")),
            "containerStatuses": [
                {"restartCount": c.get("restartCount") or 0}
                for c in status.get("containerStatuses") or []
            ],
        },
    }


def slim_deployment(body: Mapping[str, Any]) -> dict[str, Any]:
    """What readiness, spend and draining read."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(body),
        "spec": _pick(body.get("spec"), ("replicas",)),
        "status": _pick(
            body.get("status"),
            ("replicas", "readyReplicas", "availableReplicas", "observedGeneration"),
        ),
    }


def slim_service(body: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(body)}


def _deleting(body: Mapping[str, Any]) -> bool:
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def _terminal(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Job's conditions that end it (``reconcile.builds.job_state`` reads no other:
    SuccessCriteriaMet or FailureTarget only announce them)."""
    return [
        c
        for c in (body.get("status") or {}).get("conditions") or []
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
    ]


def _job_view(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a pass reads of a build Job once it ended: the conditions that end it, its
    times and deadline (``reconcile.builds``); not its active and ready pod counts (a
    pod that waits for a node says so itself)."""
    ended = _terminal(body)
    if not ended and not _deleting(body):
        return None
    status = body.get("status") or {}
    return {
        "metadata": _meta(body),
        "deadline": (body.get("spec") or {}).get("activeDeadlineSeconds"),
        "conditions": ended,
        "times": [status.get("startTime"), status.get("completionTime")],
    }


def _build_pod_view(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a pass reads of a build's pod: only why it cannot be scheduled (a running
    or finished build is read from its Job and report)."""
    unschedulable = [
        c
        for c in (body.get("status") or {}).get("conditions") or []
        if c.get("type") == "PodScheduled" and c.get("status") == "False"
    ]
    if not unschedulable and not _deleting(body):
        return None
    return {"deleting": _deleting(body), "unschedulable": unschedulable}


def _configmap_view(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A build's report, once the builder wrote it."""
    if not body.get("data") and not _deleting(body):
        return None
    return {"metadata": _meta(body), "data": stable_hash(body.get("data") or {}, length=16)}


def _deployment_view(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Deployment once its controller has seen it (the pass that made it knows it)."""
    if not body.get("status") and not _deleting(body):
        return None
    return slim_deployment(body)


def _service_view(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A pass reads nothing of a Service it made but that it exists (its deletion is
    an event of its own)."""
    return slim_service(body) if _deleting(body) else None


def event_view(plural: str, body: Mapping[str, Any]) -> str | None:
    """A digest of what a pass reads of an owned object (the slim copies the indices
    keep, or what the pass reads from the API): an event that leaves it unchanged
    cannot change the pass's outcome. None: nothing a pass reads yet (an empty report
    just made, a Job or pod with nothing to say)."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    view: Mapping[str, Any] | None
    if plural == "pods":
        view = slim_pod(body) if labels.get(COMPONENT_LABEL) == "triton" else _build_pod_view(body)
    elif plural == "jobs":
        view = _job_view(body)
    elif plural == "deployments":
        view = _deployment_view(body)
    elif plural == "services":
        view = _service_view(body)
    elif plural == "configmaps":
        view = _configmap_view(body)
    else:
        view = dict(body)
    return None if view is None else stable_hash(view, length=16)


def ends_wait(plural: str, body: Mapping[str, Any]) -> bool:
    """Whether the object's news ends a wait a model is in: a build's report written,
    or its Job ended (the work queue's URGENT lane). A build's pod and a rollout's
    objects are progress, not an end."""
    if _deleting(body):
        return False
    if plural == "configmaps":
        return bool(body.get("data"))
    return plural == "jobs" and bool(_terminal(body))


def index_key(namespace: str | None, labels: Mapping[str, str]) -> Key | None:
    """Where an owned object is kept: its namespace and the model it was made for."""
    model = labels.get(MODEL_LABEL)
    return (namespace, model) if namespace and model else None


def _matches(obj: Mapping[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        name, _, value = term.partition("=")
        if labels.get(name) != value:
            return False
    return True


def _model_of(selector: str) -> str | None:
    for term in selector.split(","):
        name, _, value = term.partition("=")
        if name == MODEL_LABEL:
            return value
    return None


class CachedKube(Kube):
    """``Kube`` for the pass, with watched reads and applies skipped while unchanged.
    Thread-safe: passes of different models run in parallel threads."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client)
        self._init_cache()

    def _init_cache(self) -> None:
        self._indices: dict[tuple[str, str], Index] = {}
        self._applied: dict[tuple[str, str, str], tuple[str, int | None]] = {}
        self._lock = threading.Lock()
        self.skipped_applies = 0

    def bind(self, pods: Index, deployments: Index, services: Index) -> None:
        self._indices = {
            ("v1", "Pod"): pods,
            ("apps/v1", "Deployment"): deployments,
            ("v1", "Service"): services,
        }

    # ---- reads ---------------------------------------------------------------------
    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        """A model's pods, Deployments or Services from the watch; anything else (a
        listing not by model, another kind) from the API."""
        index = self._indices.get((api_version, kind))
        model = _model_of(selector)
        if index is None or model is None:
            return super().list_labelled(api_version, kind, namespace, selector)
        if (namespace, model) not in index:
            return []
        return [dict(o) for o in index[(namespace, model)] if _matches(o, selector)]

    def list_owned(
        self, api_version: str, kind: str, namespace: str, selector: str, owner_uid: str
    ) -> list[dict[str, Any]]:
        items = self.list_labelled(api_version, kind, namespace, selector)
        return [item for item in items if is_owned_by(item, owner_uid)]

    # ---- writes --------------------------------------------------------------------
    def _current(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The watched copy of ``obj``, or None when the watch has none."""
        index = self._indices.get((obj["apiVersion"], obj["kind"]))
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        key = index_key(meta.get("namespace"), labels)
        if index is None or key is None or key not in index:
            return None
        return next((dict(o) for o in index[key] if o["metadata"]["name"] == meta["name"]), None)

    def apply(self, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] not in SKIPPED_APPLY_KINDS or not self._indices:
            return super().apply(obj, owner)
        meta = obj["metadata"]
        name = (obj["kind"], meta["namespace"], meta["name"])
        digest = stable_hash(obj, owner["metadata"]["uid"], length=16)
        current = self._current(obj)
        with self._lock:
            applied = self._applied.get(name)
        if (
            current is not None
            and applied is not None
            and applied[0] == digest
            and applied[1] == current["metadata"].get("generation")
        ):
            self.skipped_applies += 1
            return current
        live = super().apply(obj, owner)
        with self._lock:
            self._applied[name] = (digest, (live.get("metadata") or {}).get("generation"))
        return live

    def delete_owned(self, obj: dict[str, Any], owner_uid: str) -> bool:
        meta = obj["metadata"]
        with self._lock:
            self._applied.pop((obj["kind"], meta["namespace"], meta["name"]), None)
        return super().delete_owned(obj, owner_uid)

    def forget(self, namespace: str, model: str) -> None:
        """A deleted model's applied digests go with it."""
        with self._lock:
            for name in [n for n in self._applied if n[1] == namespace]:
                if name[2] == model or name[2].startswith(f"{model}-"):
                    del self._applied[name]
