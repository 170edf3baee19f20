"""Which serving pods wait for a canary, how one is judged, and the inline checker.

A check is a ``CanaryJob`` (pure data: the pod, its address, the reference answer);
``judge`` sends it and compares. Who runs the jobs is a ``Canaries``:
the operator's runs them on the event loop (``canary.runner``), so a pod slow to
answer never holds the pass of any model; ``InlineCanaries`` judges in the caller's
thread (the reconcile unit tests drive it with a scripted Triton). Either writes the
verdict into the pod's readiness gate and hands the results to the model's next pass.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt

from lepton_operator.canary.client import CanaryRefused, CanaryUnreachable
from lepton_operator.canary.gate import awaiting_canary, condition_patch
from lepton_operator.canary.verdict import Expected, Verdict, compare, decode, expected
from lepton_operator.constants import (
    ANNOTATION_TRITON_MODEL,
    ANNOTATION_VARIANT,
    HTTP_PORT,
    POOL_LABEL,
)
from lepton_operator.report import CanaryReference

Tensors = dict[str, npt.NDArray[Any]]
Infer = Callable[[str, str, Tensors, list[str]], Awaitable[Tensors]]
BlockingInfer = Callable[[str, str, Tensors, list[str]], Tensors]
Key = tuple[str, str]  # (namespace, LeptonModel)


class PodStatusWriter(Protocol):
    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> None: ...


@dataclass(frozen=True)
class CanaryJob:
    """One serving pod to judge: where it answers and what it must answer."""

    namespace: str
    model: str  # the LeptonModel
    pod: str
    address: str
    triton_model: str
    variant: str
    pool: str
    reference: CanaryReference | None


@dataclass(frozen=True)
class CanaryResult:
    pod: str
    variant: str
    pool: str
    passed: bool
    reason: str  # CanaryPassed, NoReference, CanaryMismatch
    message: str


class Canaries(Protocol):
    """Runs canary jobs; the model's pass hands them over and takes the verdicts."""

    def submit(self, jobs: list[CanaryJob]) -> None: ...

    def take(self, key: Key) -> list[CanaryResult]: ...


def waiting_jobs(
    pods: list[dict[str, Any]],
    namespace: str,
    model: str,
    references: Mapping[tuple[str, str], CanaryReference | None],
) -> list[CanaryJob]:
    """The model's pods waiting at the canary gate, for a (pool, variant) of this build
    (a pod of an older build is about to be replaced, and is not judged)."""
    jobs = []
    for pod in pods:
        if not awaiting_canary(pod):
            continue
        meta = pod["metadata"]
        annotations = meta.get("annotations") or {}
        variant = annotations.get(ANNOTATION_VARIANT, "")
        pool = (meta.get("labels") or {}).get(POOL_LABEL, "")
        if (pool, variant) not in references:
            continue
        jobs.append(
            CanaryJob(
                namespace,
                model,
                meta["name"],
                f"{pod['status']['podIP']}:{HTTP_PORT}",
                annotations.get(ANNOTATION_TRITON_MODEL, ""),
                variant,
                pool,
                references[(pool, variant)],
            )
        )
    return jobs


_NO_REFERENCE = (
    "NoReference",
    Verdict(
        True,
        "the build report carries no reference answer (its sample input is too large to carry)",
    ),
)


def _question(reference: CanaryReference) -> tuple[Tensors, dict[str, Expected]]:
    """The reference input, and the answer recorded for it."""
    inputs = {t.name: decode(t) for t in reference.inputs}
    return inputs, {t.name: expected(t) for t in reference.outputs}


def _verdict(wanted: dict[str, Expected], served: Tensors) -> tuple[str, Verdict]:
    verdict = compare(wanted, served)
    return ("CanaryPassed" if verdict.passed else "CanaryMismatch"), verdict


async def judge(
    reference: CanaryReference | None, model: str, address: str, infer: Infer
) -> tuple[str, Verdict]:
    """(reason, verdict) for one pod; raises CanaryUnreachable to try again later."""
    if reference is None:
        return _NO_REFERENCE
    inputs, wanted = _question(reference)
    try:
        served = await infer(address, model, inputs, list(wanted))
    except CanaryRefused as error:
        return "CanaryMismatch", Verdict(False, str(error))
    return _verdict(wanted, served)


def record(
    kube: PodStatusWriter, job: CanaryJob, reason: str, verdict: Verdict, now: str
) -> CanaryResult:
    """Write the verdict into the pod's readiness gate; the result for the model."""
    message = f"{job.variant} on {job.pool}: {verdict.message}"
    patch = condition_patch(verdict.passed, reason, message, now)
    kube.patch_status("v1", "Pod", job.pod, job.namespace, patch)
    return CanaryResult(job.pod, job.variant, job.pool, verdict.passed, reason, message)


class Verdicts:
    """Results waiting for their model's next pass (thread-safe: written where the
    checks run, taken by the pass's worker thread), and the pods already judged: until
    the watch brings a pod's gate back, it still looks unjudged to a pass."""

    JUDGED_KEPT = 10_000  # pods remembered (names are unique: a new pod, a new name)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[Key, list[CanaryResult]] = {}
        self._judged: dict[tuple[str, str], None] = {}

    def add(self, key: Key, result: CanaryResult) -> None:
        with self._lock:
            self._results.setdefault(key, []).append(result)
            self._judged[(key[0], result.pod)] = None
            if len(self._judged) > self.JUDGED_KEPT:
                del self._judged[next(iter(self._judged))]

    def judged(self, job: CanaryJob) -> bool:
        with self._lock:
            return (job.namespace, job.pod) in self._judged

    def take(self, key: Key) -> list[CanaryResult]:
        with self._lock:
            return self._results.pop(key, [])


class InlineCanaries:
    """Judges each job when it is submitted, in the caller's thread, with a blocking
    ``infer`` (a scripted Triton in the reconcile tests)."""

    def __init__(
        self, kube: PodStatusWriter, infer: BlockingInfer, clock: Callable[[], str]
    ) -> None:
        self.kube, self.clock = kube, clock
        self.verdicts = Verdicts()

        async def asked(address: str, model: str, inputs: Tensors, outputs: list[str]) -> Tensors:
            return infer(address, model, inputs, outputs)

        self.infer: Infer = asked

    def submit(self, jobs: list[CanaryJob]) -> None:
        for job in jobs:
            if self.verdicts.judged(job):
                continue
            try:
                reason, verdict = asyncio.run(
                    judge(job.reference, job.triton_model, job.address, self.infer)
                )
            except CanaryUnreachable:
                continue  # not answering yet: the next pass submits it again
            result = record(self.kube, job, reason, verdict, self.clock())
            self.verdicts.add((job.namespace, job.model), result)

    def take(self, key: Key) -> list[CanaryResult]:
        return self.verdicts.take(key)
