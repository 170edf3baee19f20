"""Which pools to leave out because their serving pods could not get a node.

The operator cannot see why a pool takes no pods (cordoned nodes, an exhausted
autoscaler group, a quota): it has no node RBAC, and should not need it. It sees
serving pods Pending past the pool's timeout. Left out while those pods wait, the
pool would be planned again as soon as they are drained, and a pool that still takes
nothing would cost another timeout of churn each time (a Deployment made and drained,
two Decision Events). So each failure leaves the pool out for a back-off that doubles
on every failure in a row, as a kubelet backs off a crashing container, and is
forgotten once the model serves Ready on that pool.

Pure: plain data in and out, time as Unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BACKOFF_S = 1800.0  # a pool is tried again at least every half hour


@dataclass(frozen=True)
class PoolBackoff:
    pool: str
    failures: int  # times in a row its pods waited past the timeout
    retry_at_s: float  # Unix seconds: left out until then


@dataclass(frozen=True)
class Avoidance:
    avoid: frozenset[str]
    backoffs: tuple[PoolBackoff, ...]

    @property
    def retry_at(self) -> dict[str, float]:
        """Pool -> Unix seconds it is tried again, for the reason decide() writes."""
        return {b.pool: b.retry_at_s for b in self.backoffs}


def backoff_s(timeout_s: float, failures: int) -> float:
    """The pool's own timeout for the first failure, doubling after, at most
    ``MAX_BACKOFF_S``."""
    return float(min(timeout_s * 2 ** max(failures - 1, 0), MAX_BACKOFF_S))


def pools_to_avoid(
    waiting: set[str] | frozenset[str],
    previous: tuple[PoolBackoff, ...] | list[PoolBackoff],
    timeouts_s: dict[str, float],
    now_s: float,
) -> Avoidance:
    """``waiting``: pools whose serving pods wait for a node past their timeout now.
    Pools no longer in ``timeouts_s`` are forgotten; serving Ready on a pool forgets
    its back-off too (the reconcile pass does, once the pods are ready)."""
    kept: dict[str, PoolBackoff] = {b.pool: b for b in previous if b.pool in timeouts_s}
    for pool in sorted(waiting):
        if pool not in timeouts_s:
            continue
        before = kept.get(pool)
        if before is not None and before.retry_at_s > now_s:
            continue  # the same wait, still backing off: counted once
        failures = (before.failures if before else 0) + 1
        kept[pool] = PoolBackoff(pool, failures, now_s + backoff_s(timeouts_s[pool], failures))
    avoid = frozenset(waiting) | {p for p, b in kept.items() if b.retry_at_s > now_s}
    return Avoidance(avoid, tuple(kept[p] for p in sorted(kept)))
