"""Observed cold starts (``status.coldStarts``) from the model's serving pods."""

from __future__ import annotations

from typing import Any

from lepton_operator.api.status import ColdStart
from lepton_operator.observation import cold_starts


def _pod(
    pool: str,
    variant: str,
    created: str,
    ready: str | None,
    restarts: int = 0,
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": ready}] if ready else []
    return {
        "metadata": {
            "labels": {"lepton.ai/pool": pool},
            "annotations": {"lepton.ai/variant": variant},
            "creationTimestamp": created,
        },
        "status": {
            "conditions": conditions,
            "containerStatuses": [{"name": "triton", "restartCount": restarts}],
        },
    }


def test_the_latest_first_start_per_pool_and_variant_is_kept() -> None:
    pods = [
        _pod("cpu", "onnx", "2026-12-03T08:00:00Z", "2026-12-03T08:01:30Z"),
        _pod("cpu", "onnx", "2026-12-03T08:10:00Z", "2026-12-03T08:10:40Z"),  # later: kept
        _pod("gpu", "fp16", "2026-12-03T08:00:00Z", "2026-12-03T08:04:05Z"),
        _pod("gpu", "fp16", "2026-12-03T08:20:00Z", None),  # not Ready yet: says nothing
        _pod("cpu", "fp32", "2026-12-03T08:00:00Z", "2026-12-03T09:00:00Z", restarts=1),
    ]
    assert cold_starts(pods, []) == [
        ColdStart(pool="cpu", variant="onnx", seconds=40.0, time="2026-12-03T08:10:40Z"),
        ColdStart(pool="gpu", variant="fp16", seconds=245.0, time="2026-12-03T08:04:05Z"),
    ]


def test_what_was_seen_before_is_kept_until_a_later_pod_says_otherwise() -> None:
    before = [ColdStart(pool="gpu", variant="fp16", seconds=245.0, time="2026-12-03T08:04:05Z")]
    # The GPU pods are gone (the model moved to the CPU): their figure stays.
    now = cold_starts([_pod("cpu", "onnx", "2026-12-03T09:00:00Z", "2026-12-03T09:00:20Z")], before)
    assert [c.pool for c in now] == ["cpu", "gpu"]
    # An older pod does not replace a newer figure.
    older = _pod("gpu", "fp16", "2026-12-03T07:00:00Z", "2026-12-03T07:00:10Z")
    assert cold_starts([older], before) == before


def test_serving_configs_are_the_ready_pods_pool_and_variant() -> None:
    from lepton_operator.constants import ANNOTATION_VARIANT
    from lepton_operator.observation import serving_configs

    def pod(pool: str, variant: str, ready: bool) -> dict[str, object]:
        return {
            "metadata": {
                "labels": {"lepton.ai/pool": pool},
                "annotations": {ANNOTATION_VARIANT: variant},
            },
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]},
        }

    pods = [pod("cpu", "onnx", True), pod("gpu", "fp16", False), pod("gpu", "fp16", True)]
    assert serving_configs(pods) == {("cpu", "onnx"), ("gpu", "fp16")}
    assert serving_configs(pods[:2]) == {("cpu", "onnx")}
