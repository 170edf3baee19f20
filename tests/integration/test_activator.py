"""The real ``lepton-activator`` process between a client and a real HTTP server.

The apiserver is a small stand-in (aiohttp on loopback) serving exactly what the
activator asks of Kubernetes: the EndpointSlice list and watch, and get and patch of
LeptonModels; the backend is a real HTTP server answering like Triton. What is shown:
a held request is answered once a Ready replica appears, with its wait; the demand
annotation arrives at once and the held burst's report once the queue is empty; a
full queue is 503, an outwaited timeout 504, a model deleted while requests wait 404,
and SIGTERM answers every held request 503 before the process ends: nothing hangs.
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
import pytest
from aiohttp import web

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


def triton_slice(model: str, port: int, ready: bool) -> dict[str, Any]:
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
        "ports": [{"name": "http", "port": port}, {"name": "metrics", "port": 8002}],
    }


class FakeAPIServer:
    """The four calls the activator makes, answered from memory; patches recorded."""

    def __init__(self, models: set[str]) -> None:
        self.models = models
        self.slices: list[dict[str, Any]] = []
        self.watchers: list[asyncio.Queue[dict[str, Any]]] = []
        self.patches: list[tuple[str, dict[str, str], float]] = []

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
        found = request.match_info["name"] in self.models
        return web.json_response({}, status=200 if found else 404)

    async def patch_model(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.models:
            return web.json_response({"message": "not found"}, status=404)
        assert request.content_type == "application/merge-patch+json"
        body = await request.json()
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
async def activator(kube_port: int, **limits: float) -> AsyncIterator[tuple[str, Any]]:
    port, admin = _free_port(), _free_port()
    args = [f"--{k.replace('_', '-')}={v}" for k, v in limits.items()]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lepton_activator",
        f"--port={port}",
        f"--admin-port={admin}",
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
