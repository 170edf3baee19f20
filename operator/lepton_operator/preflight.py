"""What the chart's defaults assume of a cluster, checked, not assumed (issue 26):
which nodes each pool can place pods on, and whether the build volume can bind.

The chart's default pools name node labels (``lepton.ai/pool=...``) and GPU taints that
a user's cluster may not have. Without a check, a pool that matches no node shows up
only as build or serving pods Pending until a timeout. Here, from the nodes the
operator watches (a read-only list/watch, ``handlers.cluster_nodes``): for each pool,
how many nodes its ``nodeSelector`` selects and whose ``NoSchedule``/``NoExecute``
taints its tolerations tolerate, how many of those are cordoned, and what they can
allocate of the pool's accelerator. Pure: slim nodes in, facts out.

A pool that matches no node is a warning, not a refusal: a cluster autoscaler (or
Karpenter) may add its first node when a pod asks for one.

The build volume (the model repository's PVC) names the StorageClass of
``config.modelRepository.storageClassName``, or none for the cluster's default: a class
that does not exist, or no default class and no PersistentVolume provisioned by hand,
leaves the PVC Pending and the build waiting with no word of why. From the
StorageClasses the operator watches (read-only) and the claim's phase, the pass says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lepton_operator.api.spec import PoolSpec, Toleration

BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
# The taint a cordon adds (the node controller mirrors spec.unschedulable into it): a
# cordoned node counts as cordoned, not as one the pool does not tolerate.
CORDON_TAINT = "node.kubernetes.io/unschedulable"


@dataclass(frozen=True)
class PoolNodes:
    pool: str
    nodes: int  # selected by the pool and tolerated
    cordoned: int  # of those, marked unschedulable
    accelerators: int | None  # allocatable of the pool's accelerator on them; None: CPU pool


def slim_node(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the check reads of a node: its labels, blocking taints, whether it is
    cordoned, and its allocatable extended resources (the accelerators)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    allocatable = (body.get("status") or {}).get("allocatable") or {}
    return {
        "name": meta.get("name"),
        "labels": dict(meta.get("labels") or {}),
        "taints": [
            {k: t[k] for k in ("key", "value", "effect") if t.get(k) is not None}
            for t in spec.get("taints") or []
            if t.get("effect") in BLOCKING_EFFECTS and t.get("key") != CORDON_TAINT
        ],
        "unschedulable": bool(spec.get("unschedulable")),
        "allocatable": {k: v for k, v in allocatable.items() if "/" in k},
    }


def _tolerates(toleration: Toleration, taint: Mapping[str, Any]) -> bool:
    """Kubernetes' matching: an empty key with Exists tolerates everything; an empty
    effect matches every effect; Equal (the default) compares the value too."""
    if toleration.effect and toleration.effect != taint.get("effect"):
        return False
    if not toleration.key:
        return toleration.operator == "Exists"
    if toleration.key != taint.get("key"):
        return False
    if toleration.operator == "Exists":
        return True
    return (toleration.value or "") == (taint.get("value") or "")


def places_on(pool: PoolSpec, node: Mapping[str, Any]) -> bool:
    """Whether the pool's pods may be placed on ``node`` (a ``slim_node``)."""
    labels = node.get("labels") or {}
    if any(labels.get(key) != value for key, value in pool.node_selector.items()):
        return False
    return all(
        any(_tolerates(t, taint) for t in pool.tolerations) for taint in node.get("taints") or []
    )


def _count(quantity: object) -> int:
    try:
        return int(str(quantity))
    except ValueError:
        return 0


def pool_nodes(pools: Iterable[PoolSpec], nodes: Sequence[Mapping[str, Any]]) -> list[PoolNodes]:
    found = []
    for pool in pools:
        placed = [n for n in nodes if places_on(pool, n)]
        resource = pool.accelerator.resource if pool.accelerator else None
        found.append(
            PoolNodes(
                pool=pool.name,
                nodes=len(placed),
                cordoned=sum(1 for n in placed if n.get("unschedulable")),
                accelerators=(
                    sum(_count((n.get("allocatable") or {}).get(resource, 0)) for n in placed)
                    if resource
                    else None
                ),
            )
        )
    return found


def nodes_verdict(found: list[PoolNodes]) -> tuple[bool, str, str]:
    """(ok, reason, message) for the NodesAvailable condition: the pools without a
    node to run on, by name (counts live in ``status.poolNodes``, so the condition
    only changes when a pool gains or loses its last node)."""
    empty = [p.pool for p in found if p.nodes - p.cordoned <= 0 or p.accelerators == 0]
    if not empty:
        return True, "PoolsHaveNodes", "every pool selects at least one schedulable node"
    return (
        False,
        "PoolWithoutNodes",
        f"no schedulable node matches pool(s) {', '.join(empty)} (nodeSelector and "
        "tolerations): their build and serving pods will wait for one (a cluster "
        "autoscaler may add it; otherwise the planner leaves the pool out once its pods "
        "wait past its timeout)",
    )


DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def slim_storage_class(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the check reads of a StorageClass: its name, provisioner, whether it is the
    cluster's default, and its binding mode."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return {
        "name": meta.get("name"),
        "provisioner": body.get("provisioner"),
        "default": any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS),
        "bindingMode": body.get("volumeBindingMode") or "Immediate",
    }


def storage_verdict(
    class_name: str, classes: Sequence[Mapping[str, Any]], claim_phase: str | None, claim: str
) -> tuple[bool, str, str]:
    """(ok, reason, message) for the StorageAvailable condition of the build volume
    ``claim``: bound is bound, whatever the classes say (a PersistentVolume made by
    hand binds a claim with no class); otherwise the class it names, or the default."""
    if claim_phase == "Bound":
        return True, "VolumeBound", f"PersistentVolumeClaim {claim} is bound"
    if class_name:
        found = next((c for c in classes if c.get("name") == class_name), None)
        if found is None:
            known = ", ".join(sorted(str(c.get("name")) for c in classes)) or "none"
            return (
                False,
                "StorageClassNotFound",
                f"config.modelRepository.storageClassName names StorageClass {class_name}, "
                f"which does not exist (StorageClasses: {known}): PersistentVolumeClaim "
                f"{claim} stays Pending and the build waits",
            )
        return True, "StorageClassFound", _class_words(found, claim)
    default = next((c for c in classes if c.get("default")), None)
    if default is None:
        return (
            False,
            "NoDefaultStorageClass",
            f"no StorageClass is marked default and config.modelRepository."
            f"storageClassName is empty: PersistentVolumeClaim {claim} binds only to a "
            "PersistentVolume provisioned by hand, and the build waits until one exists",
        )
    return True, "DefaultStorageClass", _class_words(default, claim)


def _class_words(found: Mapping[str, Any], claim: str) -> str:
    wait = (
        " once the build pod is scheduled (WaitForFirstConsumer)"
        if found.get("bindingMode") == "WaitForFirstConsumer"
        else ""
    )
    return (
        f"PersistentVolumeClaim {claim} is provisioned by StorageClass {found.get('name')} "
        f"({found.get('provisioner')}){wait}"
    )
