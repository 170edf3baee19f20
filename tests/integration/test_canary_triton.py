"""The canary adapter against a real tritonserver: the builder's own report and
repository, served, judged through tritonclient exactly as the operator judges a pod."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import numpy as np
import pytest

from lepton_e2e.triton import TritonServer
from lepton_operator.canary.check import judge
from lepton_operator.canary.client import CanaryUnreachable, infer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(build_digits, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("canary")
    report = build_digits(work, ["onnx", "torchscript"], work / "repository")
    references = {v.name: v.canary for v in report.variants if v.status == "accepted"}
    # Each variant serves from its own repository folder under the one name "digits",
    # as the operator's pods do: one server per variant.
    servers = {}
    for n, variant in enumerate(("onnx", "torchscript"), start=1):
        (work / variant).mkdir()
        servers[variant] = TritonServer(
            Path(report.repository) / variant, work / variant, ["digits"], f"127.0.0.{n}"
        )
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers, references
    finally:
        for server in servers.values():
            server.stop()


def test_each_served_variant_gives_its_recorded_answer(served) -> None:
    servers, references = served
    for variant in ("onnx", "torchscript"):
        reason, verdict = asyncio.run(
            judge(references[variant], "digits", servers[variant].http, infer)
        )
        assert (reason, verdict.passed) == ("CanaryPassed", True), verdict.message


def test_a_different_answer_than_recorded_fails(served) -> None:
    """As a mis-built or swapped artifact looks from the operator's side."""
    servers, references = served
    wrong = references["onnx"].model_copy(deep=True)
    wrong.outputs[0].data = _negated(wrong.outputs[0].data)
    reason, verdict = asyncio.run(judge(wrong, "digits", servers["onnx"].http, infer))
    assert (reason, verdict.passed) == ("CanaryMismatch", False)
    assert "relative L2" in verdict.message


def test_an_input_the_model_cannot_take_fails_with_tritons_reason(served) -> None:
    servers, references = served
    wrong = references["onnx"].model_copy(deep=True)
    wrong.inputs[0].name = "not_an_input"
    reason, verdict = asyncio.run(judge(wrong, "digits", servers["onnx"].http, infer))
    assert (reason, verdict.passed) == ("CanaryMismatch", False)
    assert "not_an_input" in verdict.message


def test_a_pod_that_does_not_answer_is_retried_not_judged(served) -> None:
    _, references = served
    with pytest.raises(CanaryUnreachable):
        asyncio.run(judge(references["onnx"], "digits", "127.0.0.1:1", infer))


def test_pods_asked_at_once_on_one_event_loop_are_each_judged_on_their_own(served) -> None:
    """The operator asks every waiting pod on its event loop at the same time."""
    servers, references = served
    wrong = references["onnx"].model_copy(deep=True)
    wrong.outputs[0].data = _negated(wrong.outputs[0].data)
    refused = references["onnx"].model_copy(deep=True)
    refused.inputs[0].name = "not_an_input"

    async def judged() -> list[tuple[str, bool]]:
        verdicts = await asyncio.gather(
            judge(references["onnx"], "digits", servers["onnx"].http, infer),
            judge(wrong, "digits", servers["onnx"].http, infer),
            judge(refused, "digits", servers["onnx"].http, infer),
        )
        return [(reason, verdict.passed) for reason, verdict in verdicts]

    assert asyncio.run(judged()) == [
        ("CanaryPassed", True),
        ("CanaryMismatch", False),
        ("CanaryMismatch", False),
    ]


def _negated(data: str) -> str:
    values = np.frombuffer(base64.b64decode(data), dtype="<f4")
    return base64.b64encode((-values - 1).astype("<f4").tobytes()).decode()
