"""The real ``lepton-activator`` process between a client and a real HTTP server.

The apiserver is a small stand-in (aiohttp on loopback) serving exactly what the
activator asks of Kubernetes: the EndpointSlice list and watch, and get and patch of
LeptonModels; the backend is a real HTTP server answering like Triton. What is shown:
a held request is answered once a Ready replica appears, with its wait; the demand
annotation arrives at once and the held burst's report once the queue is empty; a
full queue is 503, an outwaited timeout 504, a model deleted while requests wait 404,
and SIGTERM answers every held request 503 before the process ends: nothing hangs.
The same through the activator's gRPC port, against a real gRPC server speaking
Triton's ``GRPCInferenceService`` (tritonclient's own protos): unary and streaming
calls held and passed through, and the same cases as gRPC status codes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from tritonclient.grpc import service_pb2 as triton_pb
from tritonclient.grpc import service_pb2_grpc as triton_grpc

pytestmark = pytest.mark.integration

NAMESPACE = "team"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
MODELS = "/apis/lepton.ai/v1alpha1/namespaces/{namespace}/leptonmodels/{name}"
LABELS = {"app.kubernetes.io/managed-by": "lepton-operator"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def activator_slice(model: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{model}-activator",
            "namespace": NAMESPACE,
            "labels": {
                **LABELS,
                "lepton.ai/model": model,
                "lepton.ai/component": "activator",
                "kubernetes.io/service-name": model,
            },
        },
        "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8000}],
    }


def triton_slice(
    model: str, port: int, ready: bool, grpc_port: int | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{model}-abcde",
            "namespace": NAMESPACE,
            "labels": {
                **LABELS,
                "lepton.ai/model": model,
                "lepton.ai/component": "triton",
                "kubernetes.io/service-name": model,
            },
        },
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
        "ports": [
            {"name": "http", "port": port},
            *([{"name": "grpc", "port": grpc_port}] if grpc_port else []),
            {"name": "metrics", "port": 8002},
        ],
    }


class FakeAPIServer:
    """The four calls the activator makes, answered from memory; patches recorded."""

    def __init__(self, models: set[str]) -> None:
        self.models = models
        self.slices: list[dict[str, Any]] = []
        self.watchers: list[asyncio.Queue[dict[str, Any]]] = []
        self.patches: list[tuple[str, dict[str, str], float]] = []
        self.stored: dict[str, dict[str, str]] = {}  # each model's annotations
        self.versions: dict[str, int] = {}
        self.conflicts = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(SLICES, self.slices_handler)
        path = MODELS.format(namespace="{namespace}", name="{name}")
        app.router.add_get(path, self.get_model)
        app.router.add_patch(path, self.patch_model)
        return app

    async def slices_handler(self, request: web.Request) -> web.StreamResponse:
        assert request.query["labelSelector"] == "app.kubernetes.io/managed-by=lepton-operator"
        if request.query.get("watch") != "1":
            return web.json_response({"metadata": {"resourceVersion": "1"}, "items": self.slices})
        response = web.StreamResponse()
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.watchers.append(queue)
        try:
            while (event := await queue.get()).get("type") != "STOP":
                await response.write(json.dumps(event).encode() + b"\n")
        finally:
            self.watchers.remove(queue)

    def stop(self) -> None:
        """End the open watches (a server waits for its handlers on shutdown)."""
        for queue in self.watchers:
            queue.put_nowait({"type": "STOP"})

    def push(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.slices = [s for s in self.slices if s["metadata"]["name"] != name]
        if kind != "DELETED":
            self.slices.append(obj)
        for queue in self.watchers:
            queue.put_nowait({"type": kind, "object": obj})

    async def get_model(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.models:
            return web.json_response({"message": "not found"}, status=404)
        metadata = {
            "annotations": self.stored.get(name, {}),
            "resourceVersion": str(self.versions.get(name, 1)),
        }
        return web.json_response({"metadata": metadata})

    async def patch_model(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.models:
            return web.json_response({"message": "not found"}, status=404)
        assert request.content_type == "application/merge-patch+json"
        body = await request.json()
        wanted = body["metadata"].get("resourceVersion")
        if wanted is not None and wanted != str(self.versions.get(name, 1)):
            self.conflicts += 1  # as the apiserver: the precondition failed
            return web.json_response({"message": "conflict"}, status=409)
        self.versions[name] = self.versions.get(name, 1) + 1
        self.stored.setdefault(name, {}).update(body["metadata"]["annotations"])
        self.patches.append((name, body["metadata"]["annotations"], time.time()))
        return web.json_response({})

    def annotations(self, model: str, key: str) -> list[str]:
        return [a[key] for name, a, _ in self.patches if name == model and key in a]


async def triton_like(request: web.Request) -> web.Response:
    """A real HTTP server answering as Triton does, echoing what it was sent."""
    body = await request.json()
    return web.json_response({"model_name": request.match_info["model"], "echo": body})


@asynccontextmanager
async def running(
    app: web.Application, port: int, api: FakeAPIServer | None = None
) -> AsyncIterator[None]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        if api is not None:
            api.stop()
        await runner.cleanup()


@asynccontextmanager
async def activator(
    kube_port: int, grpc_port: int | None = None, **limits: float
) -> AsyncIterator[tuple[str, Any]]:
    port, admin = _free_port(), _free_port()
    args = [f"--{k.replace('_', '-')}={v}" for k, v in limits.items()]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lepton_activator",
        f"--port={port}",
        f"--admin-port={admin}",
        f"--grpc-port={grpc_port or _free_port()}",
        f"--kube-url=http://127.0.0.1:{kube_port}",
        *args,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "runtimes/activator")},
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{admin}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the activator never became ready")
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def infer(
    session: aiohttp.ClientSession, base: str, model: str
) -> tuple[int, dict[str, Any], str | None]:
    async with session.post(
        f"{base}/v2/models/{model}/infer", json={"inputs": [{"name": "x", "data": [1]}]}
    ) as response:
        return (
            response.status,
            await response.json(),
            response.headers.get("X-Lepton-Activator-Wait-Ms"),
        )


async def until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def scenario() -> None:
    kube_port, triton_port = _free_port(), _free_port()
    api = FakeAPIServer({"digits", "busy", "slow", "doomed", "held"})
    backend = web.Application()
    backend.router.add_post("/v2/models/{model}/infer", triton_like)
    for model in ("digits", "busy", "slow", "doomed", "held"):
        api.push("ADDED", activator_slice(model))
    async with (
        running(api.app(), kube_port, api),
        running(backend, triton_port),
        activator(kube_port, queue_limit=3, timeout_seconds=2, demand_refresh_seconds=0.5) as (
            base,
            _,
        ),
        aiohttp.ClientSession() as session,
    ):
        # Held, demand signalled at once, answered once a Ready replica appears.
        held = [asyncio.create_task(infer(session, base, "digits")) for _ in range(3)]
        await until(lambda: api.annotations("digits", "lepton.ai/demand-at"))
        assert not any(t.done() for t in held)
        await asyncio.sleep(0.3)
        api.push("ADDED", triton_slice("digits", triton_port, ready=False))
        await asyncio.sleep(0.2)
        assert not any(t.done() for t in held)  # a replica not Ready takes nothing
        api.push("MODIFIED", triton_slice("digits", triton_port, ready=True))
        answers = await asyncio.wait_for(asyncio.gather(*held), 5)
        for status, body, waited in answers:
            assert status == 200 and body["model_name"] == "digits", body
            assert waited is not None and 400 <= float(waited) < 2000
        [report] = await until(lambda: api.annotations("digits", "lepton.ai/activator-wait"))
        figures = json.loads(report)
        assert figures["held"] == 3 and figures["timedOut"] == 0 and figures["p95Ms"] >= 400
        # With a Ready replica: straight through, no wait.
        status, _, waited = await infer(session, base, "digits")
        assert status == 200 and waited is None

        # The queue full: the fourth is refused at once; the three held time out (504).
        busy = [asyncio.create_task(infer(session, base, "busy")) for _ in range(3)]
        await until(lambda: api.annotations("busy", "lepton.ai/demand-at"))
        status, body, _ = await infer(session, base, "busy")
        assert status == 503 and "queue full" in body["error"], body
        started = time.monotonic()
        for status, body, _ in await asyncio.wait_for(asyncio.gather(*busy), 5):
            assert status == 504 and "no Ready replica within" in body["error"], body
        assert time.monotonic() - started < 3
        report = json.loads(
            (await until(lambda: api.annotations("busy", "lepton.ai/activator-wait")))[0]
        )
        assert (report["timedOut"], report["refused"], report["held"]) == (3, 1, 0)

        # The model deleted while a request waits: 404, not a hang.
        api.models.discard("doomed")
        status, body, _ = await asyncio.wait_for(infer(session, base, "doomed"), 3)
        assert status == 404 and "deleted" in body["error"], body

        # Unknown models are refused at once.
        status, body, _ = await infer(session, base, "nobody")
        assert status == 404 and "unknown model" in body["error"], body


def test_the_activator_holds_forwards_and_refuses_clearly() -> None:
    asyncio.run(scenario())


async def two_replicas() -> None:
    """The chart's two replicas each hold part of one burst; the report on the
    LeptonModel is of the whole burst, whichever replica wrote last."""
    kube_port, triton_port = _free_port(), _free_port()
    api = FakeAPIServer({"digits"})
    api.push("ADDED", activator_slice("digits"))
    backend = web.Application()
    backend.router.add_post("/v2/models/{model}/infer", triton_like)
    async with (
        running(api.app(), kube_port, api),
        running(backend, triton_port),
        activator(kube_port, demand_refresh_seconds=0.5) as (first, _),
        activator(kube_port, demand_refresh_seconds=0.5) as (second, _),
        aiohttp.ClientSession() as session,
    ):
        held = [
            asyncio.create_task(infer(session, base, "digits"))
            for base in (first, first, first, second, second)
        ]
        await until(lambda: len(api.annotations("digits", "lepton.ai/demand-at")) >= 2)
        await asyncio.sleep(0.3)
        api.push("ADDED", triton_slice("digits", triton_port, ready=True))
        answers = await asyncio.wait_for(asyncio.gather(*held), 5)
        assert all(status == 200 for status, _, _ in answers)
        await until(lambda: len(api.annotations("digits", "lepton.ai/activator-wait")) >= 2)
        report = json.loads(api.stored["digits"]["lepton.ai/activator-wait"])
        waits = sorted(float(waited) for _, _, waited in answers if waited)
        assert (report["held"], report["replicas"], report["timedOut"]) == (5, 2, 0), report
        assert sorted(p["held"] for p in report["parts"].values()) == [2, 3]
        assert report["maxMs"] == pytest.approx(waits[-1], abs=1.0)


def test_two_replicas_report_one_burst_merged() -> None:
    asyncio.run(two_replicas())


async def shutdown() -> None:
    kube_port = _free_port()
    api = FakeAPIServer({"held"})
    api.push("ADDED", activator_slice("held"))
    async with (
        running(api.app(), kube_port, api),
        activator(kube_port, timeout_seconds=60) as (base, process),
        aiohttp.ClientSession() as session,
    ):
        held = [asyncio.create_task(infer(session, base, "held")) for _ in range(2)]
        await until(lambda: api.annotations("held", "lepton.ai/demand-at"))
        process.send_signal(signal.SIGTERM)
        for status, body, _ in await asyncio.wait_for(asyncio.gather(*held), 5):
            assert status == 503 and "shutting down" in body["error"], body
        assert await asyncio.wait_for(process.wait(), 5) == 0


def test_sigterm_answers_every_held_request_before_the_activator_exits() -> None:
    asyncio.run(shutdown())


class TritonLikeGrpc(triton_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """A real gRPC server answering Triton's service: ready, infer (echoing the request's
    id and the metadata it was sent), and a stream of one answer per request."""

    async def ModelReady(self, request: Any, context: Any) -> Any:
        return triton_pb.ModelReadyResponse(ready=request.name == "digits")

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        sent = dict(context.invocation_metadata())
        await context.send_initial_metadata((("x-replica", "yes"),))
        return triton_pb.ModelInferResponse(
            model_name=request.model_name, id=f"{request.id}:{sent.get('x-trace', '')}"
        )

    async def ModelStreamInfer(self, requests: Any, context: Any) -> Any:
        async for request in requests:
            yield triton_pb.ModelStreamInferResponse(
                infer_response=triton_pb.ModelInferResponse(
                    model_name=request.model_name, id=request.id
                )
            )


GRPC_METHOD = "/inference.GRPCInferenceService/"


def _unary(channel: Any, method: str, response: Any) -> Any:
    return channel.unary_unary(
        GRPC_METHOD + method,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,
    )


async def grpc_scenario() -> None:
    kube_port, triton_http, triton_grpc_port, grpc_port = (_free_port() for _ in range(4))
    api = FakeAPIServer({"digits", "busy", "doomed", "held"})
    for model in ("digits", "busy", "doomed", "held"):
        api.push("ADDED", activator_slice(model))
    backend = grpc.aio.server()
    triton_grpc.add_GRPCInferenceServiceServicer_to_server(TritonLikeGrpc(), backend)
    backend.add_insecure_port(f"127.0.0.1:{triton_grpc_port}")
    await backend.start()
    try:
        async with (
            running(api.app(), kube_port, api),
            activator(
                kube_port, grpc_port, queue_limit=2, timeout_seconds=1.5, demand_refresh_seconds=0.5
            ) as (_, process),
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        ):
            infer = _unary(channel, "ModelInfer", triton_pb.ModelInferResponse)
            request = triton_pb.ModelInferRequest(model_name="digits", id="a")
            # Held, demand signalled at once, passed through once a replica is Ready.
            started = time.monotonic()
            call = infer(request, metadata=(("x-trace", "t1"),), timeout=10)
            await until(lambda: api.annotations("digits", "lepton.ai/demand-at"))
            await asyncio.sleep(0.3)
            assert not call.done()
            api.push("ADDED", triton_slice("digits", triton_http, True, triton_grpc_port))
            answer = await asyncio.wait_for(call, 5)
            assert (answer.model_name, answer.id) == ("digits", "a:t1")
            initial = dict(await call.initial_metadata())
            assert initial["x-replica"] == "yes"  # the replica's own metadata, relayed
            waited = float(initial["x-lepton-activator-wait-ms"])
            assert 300 <= waited <= (time.monotonic() - started) * 1000, initial
            [report] = await until(lambda: api.annotations("digits", "lepton.ai/activator-wait"))
            assert json.loads(report)["held"] == 1
            # With a Ready replica: straight through, unary and streaming, no wait.
            call = infer(triton_pb.ModelInferRequest(model_name="digits", id="b"), timeout=5)
            assert (await call).id == "b:"
            assert "x-lepton-activator-wait-ms" not in dict(await call.initial_metadata())
            ready = _unary(channel, "ModelReady", triton_pb.ModelReadyResponse)
            assert (await ready(triton_pb.ModelReadyRequest(name="digits"), timeout=5)).ready
            stream = channel.stream_stream(
                GRPC_METHOD + "ModelStreamInfer",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=triton_pb.ModelStreamInferResponse.FromString,
            )
            requests = [
                triton_pb.ModelInferRequest(model_name="digits", id=str(i)) for i in range(3)
            ]
            got = [r.infer_response.id async for r in stream(iter(requests), timeout=5)]
            assert got == ["0", "1", "2"]

            # The queue full: RESOURCE_EXHAUSTED at once; the held ones outwait the
            # activator's timeout: DEADLINE_EXCEEDED.
            busy = [
                infer(triton_pb.ModelInferRequest(model_name="busy"), timeout=10) for _ in range(2)
            ]
            await until(lambda: api.annotations("busy", "lepton.ai/demand-at"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await infer(triton_pb.ModelInferRequest(model_name="busy"), timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "queue full" in (refused.value.details() or "")
            for held in busy:
                with pytest.raises(grpc.aio.AioRpcError) as late:
                    await asyncio.wait_for(held, 5)
                assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert "no Ready replica within" in (late.value.details() or "")
            # A client's own deadline shorter than the activator's is kept.
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as own:
                await infer(triton_pb.ModelInferRequest(model_name="busy"), timeout=0.5)
            assert own.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 1.2

            # The model deleted while a call waits: NOT_FOUND; an unknown model at once.
            api.models.discard("doomed")
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await asyncio.wait_for(
                    infer(triton_pb.ModelInferRequest(model_name="doomed"), timeout=10), 3
                )
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
            assert "deleted" in (gone.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await infer(triton_pb.ModelInferRequest(model_name="nobody"), timeout=5)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

            # SIGTERM: a held call is answered UNAVAILABLE before the process ends.
            held_call = infer(triton_pb.ModelInferRequest(model_name="held"), timeout=30)
            await until(lambda: api.annotations("held", "lepton.ai/demand-at"))
            process.send_signal(signal.SIGTERM)
            with pytest.raises(grpc.aio.AioRpcError) as stopping:
                await asyncio.wait_for(held_call, 5)
            assert stopping.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "shutting down" in (stopping.value.details() or "")
            assert await asyncio.wait_for(process.wait(), 5) == 0
    finally:
        await backend.stop(0)


def test_grpc_calls_are_held_passed_through_and_refused_with_grpc_codes() -> None:
    asyncio.run(grpc_scenario())
