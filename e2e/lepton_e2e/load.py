"""A bounded, open-loop load generator against Triton, measuring what clients see.

Open loop: request ``i`` is due at ``start + i / rate`` whether or not earlier ones
have returned (a few worker threads take the due slots), so the offered rate does not
sag when the server slows down, as real traffic does not. Every answer is recorded
with its completion time, so a test can compare exactly the window Prometheus saw.
Requests go to the Service's endpoints round-robin, as kube-proxy would spread them;
given a resolver instead of a list, the generator re-reads the endpoints every second,
as kube-proxy follows the EndpointSlice, so pods that come and go are followed.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import tritonclient.http as triton_http
from tritonclient.utils import np_to_triton_dtype

from lepton_e2e.cluster import state_root
from lepton_e2e.fixtures import Kube


def _ready_endpoints(kube: Kube, service: str, namespace: str, port: str) -> list[tuple[str, str]]:
    """(``ip:port``, pod name) of the Service's ready endpoints for its port named
    ``port``: the same mapping (Service port name to the pods' targetPort) kube-proxy
    applies."""
    found = []
    for endpoint_slice in kube.list(
        "endpointslices", namespace, f"kubernetes.io/service-name={service}"
    ):
        number = next(
            (p["port"] for p in endpoint_slice.get("ports") or [] if p.get("name") == port), None
        )
        for endpoint in endpoint_slice.get("endpoints") or []:
            if number is not None and (endpoint.get("conditions") or {}).get("ready"):
                pod = (endpoint.get("targetRef") or {}).get("name", "")
                found += [(f"{ip}:{number}", pod) for ip in endpoint["addresses"]]
    return found


def service_endpoints(kube: Kube, service: str, namespace: str, port: str = "http") -> list[str]:
    """``ip:port`` of the Service's ready endpoints for its port named ``port``."""
    return sorted(address for address, _ in _ready_endpoints(kube, service, namespace, port))


def service_targets(kube: Kube, service: str, namespace: str) -> dict[str, str]:
    """``ip:port`` of the Service's ready HTTP endpoints, each with the Triton model its
    pod serves (the pod's ``lepton.ai/triton-model`` annotation): the LeptonModel's name
    whatever the variant, which the tests check rather than assume."""
    models = {
        p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(
            "lepton.ai/triton-model", ""
        )
        for p in kube.list("pods", namespace)
    }
    return {
        address: models[pod]
        for address, pod in _ready_endpoints(kube, service, namespace, "http")
        if models.get(pod)
    }


def serving_pods(kube: Kube, model: str, namespace: str) -> list[dict[str, Any]]:
    """The model's Triton pods that are Ready and not on their way out."""
    return [
        p
        for p in kube.list("pods", namespace, f"lepton.ai/model={model},lepton.ai/component=triton")
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    ]


def steady_endpoints(kube: Kube, model: str, namespace: str) -> Callable[[], list[str] | None]:
    """A check for ``wait_for``: the Service's endpoints once every Triton pod of the
    model is Ready, serves the decided variant, none is terminating, and the
    EndpointSlice lists exactly those. Right after a migration or a rollout the slice
    can still list a pod that is going (its port already closed): a request sent then
    is refused, which says nothing about the operator, so tests that infer once wait
    for this first."""

    def check() -> list[str] | None:
        pods = kube.list("pods", namespace, f"lepton.ai/model={model},lepton.ai/component=triton")
        ready = serving_pods(kube, model, namespace)
        if not ready or len(ready) != len(pods):
            return None
        status = kube.get("lm", model, namespace).get("status") or {}
        variant = (status.get("decision") or {}).get("variant")
        if any(p["metadata"]["annotations"].get("lepton.ai/variant") != variant for p in pods):
            return None
        endpoints = service_endpoints(kube, model, namespace)
        expected = sorted(f"{p['status']['podIP']}:8000" for p in ready)
        return endpoints if endpoints == expected else None

    return check


def served_sample(status: dict[str, Any], namespace: str, model: str) -> dict[str, Any]:
    """The serving variant's canary sample, from the repository its build wrote on the
    PVC: ``model`` (Triton's name), ``input:<name>`` arrays to send and
    ``baseline:<output>`` arrays the fp32 model answered."""
    decision = status["decision"]
    folder = state_root() / "pvcs" / namespace / f"{model}-models" / status["buildHash"]
    version = folder / decision["pool"] / decision["variant"] / model / "1"
    with np.load(version / "reference.npz") as reference:
        return {"model": model, **{key: reference[key] for key in reference.files}}


def sample_inputs(sample: dict[str, Any]) -> dict[str, npt.NDArray[Any]]:
    return {k.split(":", 1)[1]: v for k, v in sample.items() if k.startswith("input:")}


def infer(address: str, model: str, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, Any]:
    client = triton_http.InferenceServerClient(address, network_timeout=30)
    try:
        result = client.infer(model, _inputs(inputs))
        return {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}
    finally:
        client.close()


def _inputs(arrays: dict[str, npt.NDArray[Any]]) -> list[triton_http.InferInput]:
    tensors = []
    for name, array in arrays.items():
        tensor = triton_http.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


@dataclass
class Sample:
    done: float  # time.time() at completion
    latency_ms: float
    ok: bool


@dataclass
class LoadReport:
    samples: list[Sample] = field(default_factory=list)

    def window(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.done < end]

    def rate(self, start: float, end: float) -> float:
        return sum(s.ok for s in self.window(start, end)) / (end - start)

    def p95_ms(self, start: float, end: float) -> float:
        latencies = sorted(s.latency_ms for s in self.window(start, end) if s.ok)
        return statistics.quantiles(latencies, n=100, method="inclusive")[94]

    @property
    def failed(self) -> int:
        return sum(not s.ok for s in self.samples)


class ConstantLoad:
    def __init__(
        self,
        endpoints: list[str] | Callable[[], list[str]] | Callable[[], dict[str, str]],
        model: str,
        inputs: dict[str, npt.NDArray[Any]],
        rate_rps: float,
        outputs: list[str],
        workers: int = 4,
    ) -> None:
        # A resolver may name each endpoint's model (``service_targets``); else every
        # request asks for ``model``.
        self.resolve = endpoints if callable(endpoints) else None
        self.endpoints: list[str] = []
        self.models: dict[str, str] = {}
        self._take(endpoints() if callable(endpoints) else list(endpoints))
        assert self.endpoints, "no ready endpoints to send load to"
        self.model = model
        self.inputs = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        # Binary outputs, as production clients ask: a JSON-encoded embedding would
        # time the client's JSON parser, not the model.
        self.outputs = outputs
        self.interval = 1.0 / rate_rps
        self.report = LoadReport()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.next_slot = 0
        self.start_time = 0.0
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        if self.resolve is not None:
            self.threads.append(threading.Thread(target=self._follow, daemon=True))

    def __enter__(self) -> ConstantLoad:
        self.start_time = time.time()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _work(self) -> None:
        clients: dict[str, triton_http.InferenceServerClient] = {}
        try:
            while not self.stopping.is_set():
                with self.lock:
                    due = self.start_time + self.next_slot * self.interval
                    address = self.endpoints[self.next_slot % len(self.endpoints)]
                    model = self.models.get(address, self.model)
                    self.next_slot += 1
                if self.stopping.wait(max(0.0, due - time.time())):
                    return
                client = clients.get(address)
                if client is None:
                    client = clients[address] = triton_http.InferenceServerClient(
                        address, network_timeout=30
                    )
                began = time.perf_counter()
                try:
                    client.infer(
                        model,
                        _inputs(self.inputs),
                        outputs=[triton_http.InferRequestedOutput(o) for o in self.outputs],
                    )
                    ok = True
                except Exception:  # a failed request is a measurement, not a crash
                    ok = False
                    clients.pop(address).close()
                latency = (time.perf_counter() - began) * 1000
                with self.lock:
                    self.report.samples.append(Sample(time.time(), latency, ok))
        finally:
            for client in clients.values():
                client.close()

    def _follow(self) -> None:
        """Keeps the endpoint list as the Service has it; an empty or failed read keeps
        the last one (a Service with no endpoints fails requests; so do stale ones)."""
        assert self.resolve is not None
        while not self.stopping.wait(1.0):
            try:
                fresh = self.resolve()
            except Exception:  # the apiserver blinking is not the load's failure
                continue
            if fresh:
                with self.lock:
                    self._take(fresh)

    def _take(self, found: list[str] | dict[str, str]) -> None:
        self.endpoints = sorted(found)
        self.models = dict(found) if isinstance(found, dict) else {}
