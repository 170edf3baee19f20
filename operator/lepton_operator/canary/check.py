"""Run the canary on every serving pod that waits for one, and record the verdicts.

The I/O is injected (a Kube adapter and an ``infer`` function), so the reconcile tests
drive it with fakes while the e2e tests drive the real tritonclient against real pods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt

from lepton_operator.canary.client import CanaryRefused, CanaryUnreachable
from lepton_operator.canary.gate import awaiting_canary, condition_patch
from lepton_operator.canary.verdict import Verdict, compare, decode, expected
from lepton_operator.constants import (
    ANNOTATION_TRITON_MODEL,
    ANNOTATION_VARIANT,
    COMPONENT_LABEL,
    HTTP_PORT,
    MODEL_LABEL,
    POOL_LABEL,
)
from lepton_operator.report import CanaryReference

Infer = Callable[[str, str, dict[str, npt.NDArray[Any]], list[str]], dict[str, npt.NDArray[Any]]]


class PodStatusWriter(Protocol):
    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]: ...

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> None: ...


@dataclass(frozen=True)
class CanaryResult:
    pod: str
    variant: str
    pool: str
    passed: bool
    reason: str  # CanaryPassed, NoReference, CanaryMismatch
    message: str


def judge(
    reference: CanaryReference | None, model: str, address: str, infer: Infer
) -> tuple[str, Verdict]:
    """(reason, verdict) for one pod; raises CanaryUnreachable to try again later."""
    if reference is None:
        return "NoReference", Verdict(
            True,
            "the build report carries no reference answer (its sample input is too large to carry)",
        )
    inputs = {t.name: decode(t) for t in reference.inputs}
    wanted = {t.name: expected(t) for t in reference.outputs}
    try:
        served = infer(address, model, inputs, list(wanted))
    except CanaryRefused as error:
        return "CanaryMismatch", Verdict(False, str(error))
    verdict = compare(wanted, served)
    return ("CanaryPassed" if verdict.passed else "CanaryMismatch"), verdict


def check_pods(
    kube: PodStatusWriter,
    namespace: str,
    model: str,
    references: Mapping[tuple[str, str], CanaryReference | None],
    infer: Infer,
    now: str,
) -> list[CanaryResult]:
    results: list[CanaryResult] = []
    selector = f"{MODEL_LABEL}={model},{COMPONENT_LABEL}=triton"
    for pod in kube.list_labelled("v1", "Pod", namespace, selector):
        if not awaiting_canary(pod):
            continue
        meta = pod["metadata"]
        annotations = meta.get("annotations") or {}
        variant = annotations.get(ANNOTATION_VARIANT, "")
        pool = (meta.get("labels") or {}).get(POOL_LABEL, "")
        if (pool, variant) not in references:
            continue  # a pod of an older build, about to be replaced
        address = f"{pod['status']['podIP']}:{HTTP_PORT}"
        try:
            reason, verdict = judge(
                references[(pool, variant)],
                annotations.get(ANNOTATION_TRITON_MODEL, ""),
                address,
                infer,
            )
        except CanaryUnreachable:
            continue
        message = f"{variant} on {pool}: {verdict.message}"
        kube.patch_status(
            "v1",
            "Pod",
            meta["name"],
            namespace,
            condition_patch(verdict.passed, reason, message, now),
        )
        results.append(CanaryResult(meta["name"], variant, pool, verdict.passed, reason, message))
    return results
