"""What serving costs and does right now, as plain data for ``status.live``.

Spend is read from Kubernetes (Ready replicas per pool times the pool's price), so it
is known even when Prometheus is not; latency and traffic come from Prometheus
(``lepton_operator.live``). Live figures are refreshed every ``REFRESH_SECONDS``,
not on every pass: a status write per model per pass would be an update storm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lepton_operator.api.status import ColdStart, LiveFigures
from lepton_operator.constants import ANNOTATION_VARIANT, POOL_LABEL
from lepton_operator.timestamps import parse_time

REFRESH_SECONDS = 15.0


def ready_replicas(deployment: dict[str, Any]) -> int:
    status = deployment.get("status") or {}
    return min(int(status.get("readyReplicas") or 0), int(status.get("availableReplicas") or 0))


def replicas_by_pool(deployments: list[dict[str, Any]]) -> dict[str, int]:
    by_pool: dict[str, int] = {}
    for deployment in deployments:
        pool = (deployment["metadata"].get("labels") or {}).get(POOL_LABEL, "")
        by_pool[pool] = by_pool.get(pool, 0) + ready_replicas(deployment)
    return by_pool


def hourly_spend(by_pool: dict[str, int], prices: dict[str, float]) -> float:
    return sum(count * prices.get(pool, 0.0) for pool, count in by_pool.items())


def refresh_due(previous: LiveFigures | None, now: str, seconds: float = REFRESH_SECONDS) -> bool:
    if previous is None or not previous.time:
        return True
    try:
        return (parse_time(now) - parse_time(previous.time)).total_seconds() >= seconds
    except ValueError:
        return True


def rounded(value: float | None, digits: int = 3) -> float | None:
    """Rounded, and None for what Prometheus answers with NaN (no observations)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _ready_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The pod's Ready condition when it is True; None while it is not Ready."""
    return next(
        (
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "Ready" and c.get("status") == "True"
        ),
        None,
    )


def _ready(pod: dict[str, Any]) -> bool:
    return _ready_condition(pod) is not None


def serving_configs(pods: list[dict[str, Any]]) -> frozenset[tuple[str, str]]:
    """The (pool, variant) pairs of the Ready serving pods: more than one while a move
    between pools or variants is under way, when the latency Prometheus reports for the
    model mixes both and says nothing about either alone."""
    found = set()
    for pod in pods:
        meta = pod.get("metadata") or {}
        pool = (meta.get("labels") or {}).get(POOL_LABEL)
        variant = (meta.get("annotations") or {}).get(ANNOTATION_VARIANT)
        if pool and variant and _ready(pod):
            found.add((pool, variant))
    return frozenset(found)


def cold_starts(pods: list[dict[str, Any]], previous: Sequence[ColdStart]) -> list[ColdStart]:
    """``status.coldStarts``: per (pool, variant), the seconds the latest serving pod took
    from its creation to Ready (a node, Triton's start, the model's load, the canary),
    as this cluster really delivers them. The builder measures only the model's load
    and the pool only declares its provisioning; the planner plans with the longest of
    what is declared and what was seen. A pod whose container restarted is not a cold
    start (its Ready time says when it recovered), and one not Ready yet says nothing."""
    found = {(c.pool, c.variant): c for c in previous}
    for pod in pods:
        meta = pod.get("metadata") or {}
        pool = (meta.get("labels") or {}).get(POOL_LABEL)
        variant = (meta.get("annotations") or {}).get(ANNOTATION_VARIANT)
        state = pod.get("status") or {}
        ready = (_ready_condition(pod) or {}).get("lastTransitionTime")
        restarted = any(c.get("restartCount") for c in state.get("containerStatuses") or [])
        if not (pool and variant and ready and meta.get("creationTimestamp")) or restarted:
            continue
        seconds = (parse_time(ready) - parse_time(meta["creationTimestamp"])).total_seconds()
        known = found.get((pool, variant))
        if seconds >= 0 and (known is None or parse_time(known.time) < parse_time(ready)):
            found[(pool, variant)] = ColdStart(
                pool=pool, variant=variant, seconds=round(seconds, 1), time=ready
            )
    return [found[key] for key in sorted(found)]


def ready_since(pods: list[dict[str, Any]]) -> list[str]:
    """When each Ready pod turned Ready (its Ready condition's transition time)."""
    since = [(_ready_condition(pod) or {}).get("lastTransitionTime") for pod in pods]
    return [str(at) for at in since if at]
