"""Status conditions, the Kubernetes way: one per type, transitions timestamped.

A condition keeps its ``lastTransitionTime`` while its status stays the same, so
rewriting an unchanged condition changes nothing and the status guard can skip the
write.
"""

from __future__ import annotations

from collections.abc import Sequence

from lepton_operator.api.status import Condition

MESSAGE_CHARS = 4096  # the CRD's bound on a condition's message


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> list[Condition]:
    """A new list with ``type_`` set; ``status`` None means Unknown."""
    text = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.type == type_), None)
    since = previous.last_transition_time if previous and previous.status == text else now
    updated = Condition(
        type=type_,
        status=text,
        reason=reason,
        message=message[:MESSAGE_CHARS],
        last_transition_time=since,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [updated]


def condition_reason(conditions: Sequence[Condition], type_: str) -> tuple[str, str] | None:
    """(status, reason) of the condition of type ``type_``, None when there is none."""
    return next(((c.status, c.reason) for c in conditions if c.type == type_), None)
