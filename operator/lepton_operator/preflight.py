"""Which nodes each pool can place pods on: checked, not assumed (issue 26).

The chart's default pools name node labels (``lepton.ai/pool=...``) and GPU taints that
a user's cluster may not have. Without a check, a pool that matches no node shows up
only as build or serving pods Pending until a timeout. Here, from the nodes the
operator watches (a read-only list/watch, ``handlers.cluster_nodes``): for each pool,
how many nodes its ``nodeSelector`` selects and whose ``NoSchedule``/``NoExecute``
taints its tolerations tolerate, how many of those are cordoned, and what they can
allocate of the pool's accelerator. Pure: slim nodes in, facts out.

A pool that matches no node is a warning, not a refusal: a cluster autoscaler (or
Karpenter) may add its first node when a pod asks for one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lepton_operator.api.spec import PoolSpec, Toleration

BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


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
            if t.get("effect") in BLOCKING_EFFECTS
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
