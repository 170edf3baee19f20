"""Canary checks on the event loop, off every model's pass.

A pass hands over the pods waiting at their gate (``submit``, from a worker thread)
and goes on; each pod is asked on the operator's asyncio loop with tritonclient's
aiohttp client, at most ``concurrency`` at a time, never twice at once. A verdict is
written into the pod's gate, kept for the model, and the model is queued (``on_done``):
its next pass records the Event, the condition and a failure. A pod that does not
answer is dropped; the model's pass, which revisits every few seconds while it
deploys, submits it again. One slow pod costs one coroutine, not a worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from lepton_operator.canary.check import (
    CanaryJob,
    CanaryResult,
    Infer,
    Key,
    PodStatusWriter,
    Verdicts,
    judge,
    record,
)
from lepton_operator.canary.client import CanaryUnreachable

logger = logging.getLogger(__name__)


class AsyncCanaries:
    def __init__(
        self,
        kube: PodStatusWriter,
        infer: Infer,
        clock: Callable[[], str],
        concurrency: int = 16,
    ) -> None:
        self.kube, self.infer, self.clock = kube, infer, clock
        self.concurrency = concurrency
        self.verdicts = Verdicts()
        self._lock = threading.Lock()
        self._asking: set[tuple[str, str]] = set()  # (namespace, pod) being asked
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_done: Callable[[Key], None] = lambda key: None
        self._slots: asyncio.Semaphore | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, on_done: Callable[[Key], None]) -> None:
        """The loop the checks run on, and what to call with a model that has news."""
        self._loop, self._on_done = loop, on_done
        self._slots = asyncio.Semaphore(self.concurrency)

    def submit(self, jobs: list[CanaryJob]) -> None:
        if self._loop is None:
            raise RuntimeError("AsyncCanaries.bind() was not called")
        for job in jobs:
            with self._lock:
                if (job.namespace, job.pod) in self._asking or self.verdicts.judged(job):
                    continue
                self._asking.add((job.namespace, job.pod))
            self._loop.call_soon_threadsafe(self._start, job)

    def take(self, key: Key) -> list[CanaryResult]:
        return self.verdicts.take(key)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, job: CanaryJob) -> None:
        task = asyncio.get_running_loop().create_task(self._ask(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ask(self, job: CanaryJob) -> None:
        assert self._slots is not None
        try:
            async with self._slots:
                reason, verdict = await judge(
                    job.reference, job.triton_model, job.address, self.infer
                )
            result = await asyncio.to_thread(record, self.kube, job, reason, verdict, self.clock())
            self.verdicts.add((job.namespace, job.model), result)
        except CanaryUnreachable:
            return  # asked again by the model's next pass
        except Exception:  # a failed gate write: asked again too, never a crash
            logger.exception("%s/%s: canary of pod %s", job.namespace, job.model, job.pod)
            return
        finally:
            with self._lock:
                self._asking.discard((job.namespace, job.pod))
        self._on_done((job.namespace, job.model))
