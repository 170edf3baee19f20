"""Timer passes hold at most half of kopf's workers; a tick without a slot is skipped,
so creates and spec changes always find a worker. The real handler, a fake pass."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pytest

from lepton_operator import handlers, metrics


def _body(uid: str) -> kopf.Body:
    return kopf.Body(
        {
            "metadata": {"name": uid, "namespace": "ns", "uid": uid, "generation": 1},
            "status": {"observedGeneration": 1, "phase": "Building"},
        }
    )


def test_a_tick_with_every_timer_slot_taken_is_skipped_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(
        handlers, "_run", lambda body, *_a, **_k: ran.append(body["metadata"]["uid"])
    )
    log = logging.getLogger("test")
    taken = [handlers.TIMER_SLOTS.acquire(blocking=False) for _ in range(handlers.WORKERS // 2)]
    assert all(taken) and not handlers.TIMER_SLOTS.acquire(blocking=False)
    skipped = metrics.TIMER_SKIPPED._value.get()
    try:
        handlers.on_timer(body=_body("busy"), patch=kopf.Patch(), logger=log)
        assert ran == [] and metrics.TIMER_SKIPPED._value.get() == skipped + 1
    finally:
        for _ in taken:
            handlers.TIMER_SLOTS.release()
    handlers.on_timer(body=_body("free"), patch=kopf.Patch(), logger=log)
    assert ran == ["free"]
    # The slot was given back: all of them are free again.
    again: list[Any] = [handlers.TIMER_SLOTS.acquire(blocking=False) for _ in taken]
    assert all(again)
    for _ in again:
        handlers.TIMER_SLOTS.release()
