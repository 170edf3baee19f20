"""What one pass writes: the typed status, its conditions and the Events worth telling.

Every step of the pass records into one ``PassState``; the pass ends with
``finish(phase)``, which turns condition changes into Events (a failure nobody was
told about is the silent kind) and hands the controller an ``Outcome``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lepton_operator.api.status import (
    BuildStatus,
    Condition,
    ConditionType,
    LeptonModelStatus,
    Phase,
    status_wire,
)
from lepton_operator.conditions import condition_reason, set_condition


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """The status a pass observed (typed) and the Events it tells; ``previous_builds``:
    the builds the status held before the pass (the metrics count a build once)."""

    status: LeptonModelStatus
    events: list[Event] = field(default_factory=list)
    previous_builds: list[BuildStatus] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        """The status as the apiserver stores it (what the merge patch compares)."""
        return status_wire(self.status)


# Every canary verdict and recommendation has its own Event; their conditions do not
# tell again.
_TOLD_ELSEWHERE = frozenset({ConditionType.CANARY, ConditionType.RECOMMENDED})
# Progress, not trouble: said as Normal although the condition is False.
_PROGRESS = frozenset(
    {(ConditionType.BUILT.value, "Building"), (ConditionType.BUILT.value, "PartiallyBuilt")}
)


@dataclass
class PassState:
    """The status being written by one pass, with the generation and time it is for."""

    status: LeptonModelStatus
    generation: int
    now: str
    before: list[Condition] = field(default_factory=list)
    before_builds: list[BuildStatus] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @classmethod
    def start(cls, status: LeptonModelStatus, generation: int, now: str) -> PassState:
        return cls(
            status,
            generation,
            now,
            before=list(status.conditions),
            before_builds=list(status.builds),
        )

    def condition(self, kind: ConditionType, ok: bool | None, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions, kind.value, ok, reason, message, self.generation, self.now
        )

    def drop_condition(self, kind: ConditionType) -> None:
        self.status.conditions = [c for c in self.status.conditions if c.type != kind.value]

    def tell(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def finish(self, phase: Phase) -> Outcome:
        """The outcome, with an Event for each condition whose status or reason changed
        (Building -> BuildFailed stays False, and is news all the same)."""
        self.status.phase = phase
        events = list(self.events)
        for cond in self.status.conditions:
            if cond.type in _TOLD_ELSEWHERE:
                continue
            if condition_reason(self.before, cond.type) != (cond.status, cond.reason):
                kind = "Normal" if cond.status == "True" else "Warning"
                if (cond.type, cond.reason) in _PROGRESS:
                    kind = "Normal"
                events.append(Event(kind, cond.reason, f"{cond.type}: {cond.message}"))
        return Outcome(status=self.status, events=events, previous_builds=self.before_builds)
