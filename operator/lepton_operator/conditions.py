"""Status conditions, the Kubernetes way: one per type, transitions timestamped.

A condition keeps its ``lastTransitionTime`` while its status stays the same, so
rewriting an unchanged condition changes nothing and the status guard can skip the
write.
"""

from __future__ import annotations

from typing import Any


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """A new list with ``type_`` set; ``status`` None means Unknown."""
    text = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c["type"] == type_), None)
    since = previous["lastTransitionTime"] if previous and previous["status"] == text else now
    updated = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message[:4096],
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    return [c for c in conditions if c["type"] != type_] + [updated]


def condition_status(conditions: list[dict[str, Any]], type_: str) -> str | None:
    return next((c["status"] for c in conditions if c["type"] == type_), None)


def condition_reason(conditions: list[dict[str, Any]], type_: str) -> tuple[str, str] | None:
    """(status, reason) of the condition of type ``type_``, None when there is none."""
    return next(((c["status"], c["reason"]) for c in conditions if c["type"] == type_), None)
