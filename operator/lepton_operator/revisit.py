"""When a model asks to be looked at again, from the status its pass wrote: pure.

With no timers, a model gets a pass when something changes: its spec, a Job, pod or
Deployment it owns (watched), its live figures (the fleet sampler). Only what no watch
reports needs a time: a canary to retry on a pod that did not answer yet, a pool's
back-off ending, a wait for a node that turns into a timeout, a claim the user has not
made yet, a policy that refused an object. Settled models ask for nothing.
"""

from __future__ import annotations

from lepton_operator.api.status import LeptonModelStatus
from lepton_operator.conditions import condition_reason
from lepton_operator.timestamps import parse_time

# Under way: pods start, canaries retry, waits for a node time out. A few models at
# a time are under way, so a short revisit costs little.
DEPLOYING_S = 5.0
# A build Job's progress comes by watch; this only catches a wait for a node turning
# into a timeout the status should name.
BUILDING_S = 30.0
# A claim named by a pvc:// URI the user has not made yet (claims are not watched).
SOURCE_CLAIM_S = 15.0
# An object the apiserver refused: lifting the policy heals the model without a change.
REJECTED_S = 30.0


def _retry_in(status: LeptonModelStatus, now_s: float) -> float | None:
    """Seconds until the first pool back-off ends (status.poolBackoff)."""
    ends = [parse_time(b.retry_at).timestamp() for b in status.pool_backoff]
    return max(min(ends) - now_s, 0.0) + 0.5 if ends else None


def _reason(status: LeptonModelStatus, kind: str) -> str | None:
    found = condition_reason(status.conditions, kind)
    return found[1] if found else None


def revisit_after(status: LeptonModelStatus, now_s: float) -> float | None:
    """Seconds until the model wants another pass without any change; None: only
    on a change."""
    phase = status.phase
    wanted: list[float] = []
    if phase == "Deploying" or _reason(status, "Ready") == "RollingOut":
        wanted.append(DEPLOYING_S)  # also while a first build serves and others run
    elif phase == "Building":
        wanted.append(BUILDING_S)
    elif phase == "Pending" and _reason(status, "Built") == "SourceClaimMissing":
        wanted.append(SOURCE_CLAIM_S)
    if "RejectedByAPIServer" in (_reason(status, "Built"), _reason(status, "Deployed")):
        wanted.append(REJECTED_S)
    retry = _retry_in(status, now_s)
    if retry is not None:
        wanted.append(retry)
    hold = status.activation.hold_until if status.activation else None
    if hold is not None and parse_time(hold).timestamp() > now_s:
        # The activator's demand keeps a replica planned until then; the pass that
        # lets it go is asked for, since no figure need change at that moment.
        wanted.append(parse_time(hold).timestamp() - now_s + 0.5)
    return min(wanted) if wanted else None


def figures_wanted_at(status: LeptonModelStatus) -> float | None:
    """From when (Unix seconds) the plan wants the next live figures whatever they say;
    None: only figures that moved. At once (0) while the latest recommendation differs
    from what serves (a stabilization window is running, so a load that holds still
    must still reach the planner until it decides); otherwise the planner's
    ``reviewAt`` (memory that ages out, the daily pattern's next step)."""
    planner, decision = status.planner, status.decision
    if planner is None:
        return None
    if planner.history and decision is not None:
        last = planner.history[-1]
        latest = (last.variant, last.pool, last.replicas)
        if latest != (decision.variant, decision.pool, decision.replicas):
            return 0.0
    return planner.review_at
