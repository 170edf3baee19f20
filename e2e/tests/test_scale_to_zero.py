"""Scale to zero and back without losing a request (issue 29), on real Triton.

The digits CNN (a real build, ONNX only) with ``scaling.scaleToZero`` and
``minReplicas: 0`` goes to zero replicas when idle; its Service then points at the
activator (the chart's two real ``lepton-activator`` process pods). A burst of 20
requests through the Service's endpoints, as kube-proxy would send them, is held there,
wakes the operator at once (the LeptonModel's ``lepton.ai/demand-at``), and is answered
once a replica passed its canary: none lost, the first within the observed cold start
plus 2 s. After the idle window the model is back at zero. With a warm CPU floor (a cold
start longer than ``scaling.maxColdStartSeconds``) the same burst goes straight to
Triton: no request waits.

Beside the HTTP burst, a gRPC client (tritonclient.grpc, Triton's gRPC port 8001 of the
same Service) calls at zero through each activator replica: held the same way and
answered by the replica the burst brought up; with the warm floor it goes straight to
Triton's gRPC port.

What it prints: the cold start, the first answer's time, the held requests' wait p50 and
p95 (the activator's ``X-Lepton-Activator-Wait-Ms``), each gRPC call's wait,
``status.activation.lastBurst`` (both activator replicas' parts merged), the time back
to zero.
"""

from __future__ import annotations

import concurrent.futures
import copy
import datetime
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import yaml
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from lepton_e2e import models
from lepton_e2e.cluster import state_root
from lepton_e2e.fixtures import Kube, installed_operator, models_claim, wait_for
from lepton_e2e.lanes import Lane, lane_of
from lepton_e2e.load import sample_inputs, served_sample, service_endpoints

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUILDER = "ghcr.io/lepton-ai/lepton-builder:0.1.0"
NAMESPACE = lane_of(__file__).namespace("zero")  # watched by its lane's operator
MODEL = "digits"
BURST = 20
IDLE_WINDOW_S = 20  # scaleDownStabilizationSeconds
RATE_WINDOW_S = 30
WAIT_HEADER = "X-Lepton-Activator-Wait-Ms"


def _cluster_runs_the_activator() -> None:
    """A cluster started before the activator's image joined the harness's table has
    KWOK stages that would simulate its pods (Running, serving nothing): say so, rather
    than time out on requests nobody holds. The operator's image, a real image now,
    does not carry the activator."""
    stages = state_root() / "kwok-stages.yaml"
    assert not stages.exists() or "lepton-activator" in stages.read_text(), (
        "this cluster predates the activator's image: `PYTHONPATH=e2e .venv/bin/python "
        "-m lepton_e2e down` and run again"
    )


@pytest.fixture(scope="module")
def operator(kube: Kube, prometheus: Any, lane: Lane) -> Iterator[None]:
    _cluster_runs_the_activator()
    with installed_operator(
        kube,
        BUILDER,
        f"config.prometheus.url={prometheus.url}",
        f"config.prometheus.rateWindow={RATE_WINDOW_S}s",
        "config.prometheus.timeoutSeconds=3",
        "activator.timeoutSeconds=240",
        lane=lane,
    ):
        yield


def _digits() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(
        yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    )
    doc["spec"]["optimization"]["variants"] = ["onnx"]
    doc["spec"]["optimization"]["batchSizes"] = [1]
    doc["spec"]["slo"] = {"p95LatencyMs": 200}
    doc["spec"]["scaling"] = {
        "minReplicas": 0,
        "maxReplicas": 2,
        "scaleToZero": True,
        "scaleDownStabilizationSeconds": IDLE_WINDOW_S,
    }
    # The node is there (KWOK): provisioning is the pod's start, not a new machine.
    doc["spec"]["pools"][0]["provisioningSeconds"] = 5
    return doc


def _status(kube: Kube) -> dict[str, Any]:
    status: dict[str, Any] = kube.get("lm", MODEL, NAMESPACE).get("status") or {}
    return status


def _at_zero(kube: Kube) -> dict[str, Any] | None:
    status = _status(kube)
    assert status.get("phase") not in ("Failed", "Degraded"), status
    routed = (status.get("activation") or {}).get("routedToActivator")
    at_zero = (status.get("decision") or {}).get("replicas") == 0 and not status.get("replicas")
    return status if at_zero and routed else None


@pytest.fixture(scope="module")
def idle(kube: Kube, operator: None) -> Iterator[dict[str, Any]]:
    """The model built, served once (the canary, a cold start observed), then at zero."""
    kube.kubectl("create", "namespace", NAMESPACE)
    try:
        claim = models_claim(kube, NAMESPACE)
        models.train_digits(claim)
        kube.apply(_digits(), namespace=NAMESPACE)
        yield wait_for(lambda: _at_zero(kube), timeout=600, interval=2, what="digits at zero")
    finally:
        kube.kubectl(
            *("delete", "lm", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=100s"),
            check=False,
        )
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@dataclass
class Answer:
    status: int
    done: float  # time.time()
    waited_ms: float | None  # the activator's word, when it held the request
    body: dict[str, Any]


def _request_body(inputs: dict[str, np.ndarray[Any, Any]]) -> bytes:
    tensors = [
        {"name": name, "shape": list(a.shape), "datatype": "FP32", "data": a.ravel().tolist()}
        for name, a in inputs.items()
    ]
    return json.dumps({"inputs": tensors}).encode()


def _post(address: str, body: bytes) -> Answer:
    request = urllib.request.Request(
        f"http://{address}/v2/models/{MODEL}/infer",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            waited = response.headers.get(WAIT_HEADER)
            return Answer(
                response.status,
                time.time(),
                float(waited) if waited else None,
                json.loads(response.read()),
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, time.time(), None, {"error": error.read().decode()})


@dataclass
class GrpcAnswer:
    ok: bool
    seconds: float  # from the call to its answer, as the client saw it
    detail: str  # the output's shape, or the error


def _grpc_infer(address: str, inputs: dict[str, np.ndarray[Any, Any]]) -> GrpcAnswer:
    """One Triton gRPC inference (tritonclient.grpc, as a user's client makes it)."""
    client = triton_grpc.InferenceServerClient(address)
    tensors = []
    for name, array in inputs.items():
        tensor = triton_grpc.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    start = time.time()
    try:
        result = client.infer(MODEL, tensors, client_timeout=300)
        output = result.get_response().outputs[0]
        return GrpcAnswer(True, time.time() - start, str(list(output.shape)))
    except InferenceServerException as error:
        return GrpcAnswer(False, time.time() - start, f"{error.status()}: {error.message()}")
    finally:
        client.close()


def _burst(endpoints: list[str], body: bytes) -> tuple[float, list[Answer]]:
    """BURST requests at once, spread over the Service's endpoints round-robin."""
    with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
        start = time.time()
        futures = [pool.submit(_post, endpoints[i % len(endpoints)], body) for i in range(BURST)]
        return start, [f.result() for f in futures]


def _epoch(stamp: str) -> float:
    return (
        datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(int(np.ceil(q * len(ordered))), 1) - 1]


def _inputs(kube: Kube, status: dict[str, Any]) -> bytes:
    reference = served_sample(status, NAMESPACE, MODEL)
    return _request_body(sample_inputs(reference))


def test_a_burst_at_zero_is_held_answered_and_the_model_returns_to_zero(
    kube: Kube, idle: dict[str, Any]
) -> None:
    endpoints = service_endpoints(kube, MODEL, NAMESPACE)
    activators = {
        address
        for s in kube.list("endpointslices", NAMESPACE, "lepton.ai/component=activator")
        for e in s["endpoints"]
        for address in e["addresses"]
    }
    assert len(endpoints) == 2, endpoints  # the chart's two activator replicas
    assert {e.rsplit(":", 1)[0] for e in endpoints} == activators
    # Triton's gRPC port of the same Service goes to the activators too.
    grpc_endpoints = service_endpoints(kube, MODEL, NAMESPACE, "grpc")
    assert {e.rsplit(":", 1)[0] for e in grpc_endpoints} == activators, grpc_endpoints
    inputs = sample_inputs(served_sample(idle, NAMESPACE, MODEL))
    with concurrent.futures.ThreadPoolExecutor(len(grpc_endpoints)) as grpc_pool:
        grpc_calls = [grpc_pool.submit(_grpc_infer, e, inputs) for e in grpc_endpoints]
        start, answers = _burst(endpoints, _request_body(inputs))
        grpc_answers = [call.result() for call in grpc_calls]
    # The cold start of the replica this burst brought up, as the operator observed it
    # (pod created to Ready: Triton's start, the model's load, the canary).
    cold = wait_for(
        lambda: next(
            (
                c["seconds"]
                for c in _status(kube).get("coldStarts") or []
                if _epoch(c["time"]) > start
            ),
            None,
        ),
        timeout=60,
        what="the burst's cold start in status.coldStarts",
    )
    failed = [a for a in answers if a.status != 200]
    first = min(a.done for a in answers) - start
    last = max(a.done for a in answers)
    waits = [a.waited_ms for a in answers if a.waited_ms is not None]
    print(
        f"\ncold start observed {cold:.1f} s; burst of {BURST}: {BURST - len(failed)} answered, "
        f"first after {first:.1f} s, last after {last - start:.1f} s; held {len(waits)}, "
        f"wait p50 {_quantile(waits, 0.5) / 1000:.1f} s p95 {_quantile(waits, 0.95) / 1000:.1f} s"
    )
    print(
        "gRPC at zero (tritonclient.grpc through each activator): "
        + "; ".join(
            f"{'answered' if g.ok else 'FAILED'} after {g.seconds:.1f} s ({g.detail})"
            for g in grpc_answers
        )
    )
    assert not failed, failed[0]
    assert all(g.ok and g.detail.endswith("10]") for g in grpc_answers), grpc_answers
    assert all(a.body["outputs"][0]["shape"][-1] == 10 for a in answers)
    assert len(waits) == BURST  # every one came through the activator
    assert first <= cold + 2.0, (first, cold)

    # Both activator replicas' parts of the burst, merged: every held request counted
    # (the HTTP burst and the gRPC calls alike).
    held = BURST + len(grpc_answers)

    def whole_burst() -> dict[str, Any] | None:
        status = _status(kube)
        burst = (status.get("activation") or {}).get("lastBurst") or {}
        return status if burst.get("held") == held else None

    status = wait_for(whole_burst, timeout=60, what=f"lastBurst with all {held} held")
    burst = status["activation"]["lastBurst"]
    print(f"status.activation.lastBurst (both replicas merged) {burst}")
    assert burst["timedOut"] == 0 and burst["refused"] == 0, status.get("activation")
    # The plan said why it brought a replica back (kept while the demand holds).
    assert "requests wait at the activator" in status["decision"]["reason"], status["decision"]

    back = wait_for(lambda: _at_zero(kube), timeout=300, interval=2, what="back at zero")
    print(f"back at zero {time.time() - last:.0f} s after the last answer: {back['decision']}")
    assert service_endpoints(kube, MODEL, NAMESPACE) == endpoints  # the activator again
    assert service_endpoints(kube, MODEL, NAMESPACE, "grpc") == grpc_endpoints


def test_with_a_warm_cpu_floor_no_request_waits(kube: Kube, idle: dict[str, Any]) -> None:
    """A cold start longer than a request may wait (``maxColdStartSeconds: 1``; every
    cold start here takes longer) keeps one warm replica on the CPU pool instead of
    zero, still with ``minReplicas: 0``: the burst goes straight to Triton."""
    kube.kubectl(
        *("patch", "lm", MODEL, "-n", NAMESPACE, "--type=merge"),
        "-p",
        json.dumps({"spec": {"scaling": {"maxColdStartSeconds": 1}}}),
    )

    def warm() -> dict[str, Any] | None:
        status = _status(kube)
        routed = (status.get("activation") or {}).get("routedToActivator")
        return status if status.get("replicas") == 1 and routed is False else None

    status = wait_for(warm, timeout=240, interval=2, what="one warm replica")
    assert "one warm replica instead of zero" in status["decision"]["reason"], status["decision"]
    assert status["decision"]["pool"] == "cpu-standard"
    endpoints = wait_for(
        lambda: (
            [e for e in service_endpoints(kube, MODEL, NAMESPACE) if e.endswith(":8000")]
            if not kube.list("endpointslices", NAMESPACE, "lepton.ai/component=activator")
            else None
        ),
        timeout=30,
        what="the Service straight at Triton",
    )
    start, answers = _burst(endpoints, _inputs(kube, status))
    slowest = max(a.done for a in answers) - start
    print(f"\nwarm floor: {len(answers)} answered in {slowest:.2f} s, none held")
    assert all(a.status == 200 for a in answers)
    assert all(a.waited_ms is None for a in answers)  # the activator was not in the path
    assert slowest < 10.0
    (grpc_endpoint,) = service_endpoints(kube, MODEL, NAMESPACE, "grpc")
    direct = _grpc_infer(grpc_endpoint, sample_inputs(served_sample(status, NAMESPACE, MODEL)))
    print(f"warm floor, gRPC straight to Triton ({grpc_endpoint}): {direct}")
    assert direct.ok and direct.seconds < 10.0, direct
