"""Which serving pods wait for their canary, and the pod condition that answers.

Pure: pod dictionaries in, plain data out. The operator writes the condition through
the pods' status subresource, as any readiness-gate controller does (the AWS load
balancer controller's target-health gate works the same way).
"""

from __future__ import annotations

from typing import Any

from lepton_operator.constants import GATE


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def awaiting_canary(pod: dict[str, Any]) -> bool:
    """Running, all containers ready (Triton has loaded the model), and not yet judged."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    if not status.get("podIP"):
        return False
    gates = [g.get("conditionType") for g in (pod["spec"].get("readinessGates") or [])]
    if GATE not in gates:
        return False
    containers = _condition(pod, "ContainersReady")
    if not containers or containers.get("status") != "True":
        return False
    verdict = _condition(pod, GATE)
    return verdict is None or verdict.get("status") not in ("True", "False")


def judged(pod: dict[str, Any]) -> tuple[bool, str] | None:
    """(passed, message) once the gate has a verdict."""
    verdict = _condition(pod, GATE)
    if verdict is None or verdict.get("status") not in ("True", "False"):
        return None
    return verdict["status"] == "True", verdict.get("message", "")


def condition_patch(passed: bool, reason: str, message: str, now: str) -> dict[str, Any]:
    """A strategic-merge patch of the pod's status: conditions merge by ``type``."""
    return {
        "status": {
            "conditions": [
                {
                    "type": GATE,
                    "status": "True" if passed else "False",
                    "reason": reason,
                    "message": message[:1024],
                    "lastTransitionTime": now,
                }
            ]
        }
    }
