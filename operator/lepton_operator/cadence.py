"""How often the timer re-runs the reconcile pass for a model: often while something is
under way, seldom once it has settled.

The timer fires every few seconds for every model, because a build or a rollout should
be followed closely. A settled model (Ready, Advisory, Degraded or Failed on its current spec)
only needs its live figures re-read about as often as they change: every pass reads
the model's Jobs, Deployments, pods and Prometheus, so at 1,000 settled models a fixed
5 s timer alone would be ~1,500 API requests per second and more passes than the
operator's workers can run, delaying the spec changes that matter. Spec changes and
restarts never wait for the cadence: they have their own handlers.
"""

from __future__ import annotations

from typing import Any

from lepton_operator.api.status import Phase
from lepton_operator.timestamps import parse_time

UNDER_WAY = frozenset({Phase.PENDING, Phase.BUILDING, Phase.DEPLOYING})


def pass_due(
    status: dict[str, Any],
    generation: int,
    seconds_since_last_pass: float | None,
    settled_seconds: float,
    min_gap_seconds: float = 0.0,
    now_s: float | None = None,
) -> bool:
    """Whether the timer should run a pass now. ``seconds_since_last_pass`` is None when
    this process has not run one for the model (it just started or took the Lease).
    Within ``min_gap_seconds`` of the last pass (a create or spec change just handled)
    the timer waits: its body may not show that pass's status yet. ``now_s`` (Unix
    seconds) lets a pool's back-off ending wake a settled model at once."""
    if seconds_since_last_pass is None:
        return True
    if seconds_since_last_pass < min_gap_seconds:
        return False
    if status.get("observedGeneration") != generation:
        return True
    if status.get("phase") in UNDER_WAY or not status.get("phase"):
        return True
    if now_s is not None and _retry_came(status, now_s - seconds_since_last_pass, now_s):
        return True  # a pool left out may be planned again: do not wait the cadence
    return seconds_since_last_pass >= settled_seconds


def _retry_came(status: dict[str, Any], since_s: float, now_s: float) -> bool:
    """Whether a pool's back-off (status.poolBackoff) ended since the last pass."""
    for backoff in status.get("poolBackoff") or []:
        if since_s < parse_time(backoff.get("retryAt")).timestamp() <= now_s:
            return True
    return False
