"""Canary checks on the event loop: a slow pod holds no other, a pod is never asked
twice at once nor judged twice, and an unanswered one is left for the next pass."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from lepton_builder.canary import encode_tensor
from lepton_operator.canary.check import CanaryJob
from lepton_operator.canary.client import CanaryUnreachable
from lepton_operator.canary.runner import AsyncCanaries
from lepton_operator.report import CanaryReference

SAMPLE = np.arange(4, dtype=np.float32).reshape(1, 4)
ANSWER = np.array([[1.0, 2.0]], dtype=np.float32)
REFERENCE = CanaryReference(
    inputs=[encode_tensor("x", SAMPLE)], outputs=[encode_tensor("y", ANSWER)]
)


class Gates:
    def __init__(self) -> None:
        self.patched: list[str] = []

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> None:
        self.patched.append(name)


def _job(model: str, pod: str) -> CanaryJob:
    return CanaryJob("ml", model, pod, f"{pod}:8000", model, "onnx", "cpu", REFERENCE)


def test_a_slow_pod_does_not_hold_the_others_and_each_pod_is_judged_once() -> None:
    async def scenario() -> tuple[list[tuple[str, str]], Gates, AsyncCanaries, int]:
        release = asyncio.Event()
        asked: list[str] = []

        async def infer(address: str, model: str, inputs: Any, outputs: list[str]) -> Any:
            asked.append(address)
            if address.startswith("slow"):
                await release.wait()
            if address.startswith("gone"):
                raise CanaryUnreachable(address)
            return {"y": ANSWER if not address.startswith("wrong") else -ANSWER}

        gates = Gates()
        canaries = AsyncCanaries(gates, infer, lambda: "2026-12-05T00:00:00Z")
        done: list[tuple[str, str]] = []
        canaries.bind(asyncio.get_running_loop(), done.append)
        jobs = [_job("a", "slow-1"), _job("b", "fast-1"), _job("b", "wrong-1"), _job("c", "gone-1")]
        # Passes run in worker threads: submitted from one, twice (two passes).
        for _ in range(2):
            thread = threading.Thread(target=canaries.submit, args=(jobs,))
            thread.start()
            thread.join()
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(done) == 2:
                break
        quick = list(done)  # the slow pod still waits
        release.set()
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(done) == 3:
                break
        canaries.submit(jobs[:3])  # judged already: not asked again
        await asyncio.sleep(0.05)
        await canaries.stop()
        return quick + [k for k in done if k not in quick], gates, canaries, len(asked)

    done, gates, canaries, asked = asyncio.run(scenario())
    assert done[:2] == [("ml", "b"), ("ml", "b")] and done[2] == ("ml", "a")
    assert sorted(gates.patched) == ["fast-1", "slow-1", "wrong-1"]
    assert asked == 4  # each pod once, the unanswering one too (asked again next pass)
    verdicts = {r.pod: (r.passed, r.reason) for r in canaries.take(("ml", "b"))}
    assert verdicts == {"fast-1": (True, "CanaryPassed"), "wrong-1": (False, "CanaryMismatch")}
    assert [r.pod for r in canaries.take(("ml", "a"))] == ["slow-1"]
    assert canaries.take(("ml", "c")) == [] and canaries.take(("ml", "b")) == []
