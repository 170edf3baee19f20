"""The activator's request path: hold while a model has no Ready replica, then forward.

One asyncio loop, for Triton's HTTP API here and its gRPC API in
``lepton_activator.grpcproxy`` (both hold through ``Activator.hold``). Each request
for a model without a Ready replica waits on that model's change event (set by the
EndpointSlice watch) until a replica is Ready, its deadline passes (504), the model is
deleted (404) or the activator shuts down (503); a full queue answers 503 at once.
While requests wait, the LeptonModel's ``lepton.ai/demand-at`` annotation is renewed
every few seconds, which wakes the operator's pass for that model (the operator then
plans a replica). When the last held request of a burst has left the queue, the waits
go to the operator in ``lepton.ai/activator-wait`` (``status.activation`` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from lepton_activator.holding import (
    Limits,
    ReplicaBurst,
    admit,
    deadline,
    demand_due,
    merge_burst,
    timed_out,
)
from lepton_activator.kube import (
    DEMAND_ANNOTATION,
    WAIT_ANNOTATION,
    Conflict,
    KubeClient,
    ModelGone,
)
from lepton_activator.routing import Key, Table, route

LOG = logging.getLogger(__name__)
WAIT_HEADER = "X-Lepton-Activator-Wait-Ms"
# Not forwarded either way (RFC 9110 7.6.1), plus what aiohttp recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)


class Operator(Protocol):
    """How the activator talks to the operator (through the LeptonModel)."""

    async def demand(self, key: Key, at_s: float) -> bool:
        """Signal demand; False when the model no longer exists."""

    async def report(self, key: Key, part: ReplicaBurst) -> None:
        """This replica's part of a held burst, merged with the other replicas' parts
        of the same burst (``holding.merge_burst``)."""

    async def exists(self, key: Key) -> bool: ...


class Answer(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error(status: int, message: str) -> web.Response:
    """Triton's own error shape, so clients read it as they read Triton's."""
    return web.json_response({"error": message}, status=status)


class Activator:
    def __init__(
        self,
        table: Table,
        limits: Limits,
        operator: Operator,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        instance: str = "",
    ) -> None:
        self.table, self.limits, self.operator = table, limits, operator
        # This replica's name in a burst's report (the pod's, and unique per process).
        self.instance = instance or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self._since: dict[Key, float] = {}
        self.clock, self.wall = clock, wall
        self._events: dict[Key, asyncio.Event] = {}
        self.waiting: dict[Key, int] = defaultdict(int)
        self._waits: dict[Key, list[float]] = defaultdict(list)
        self._timed_out: dict[Key, int] = defaultdict(int)
        self._refused: dict[Key, int] = defaultdict(int)
        self._signalled: dict[Key, float] = {}
        self._gone: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._rr: dict[Key, int] = defaultdict(int)
        self.closing = False
        self.counters: dict[str, int] = defaultdict(int)
        self._session: aiohttp.ClientSession | None = None

    # ---- news from the watch --------------------------------------------------------
    def changed(self, keys: set[Key]) -> None:
        """Slices of ``keys`` changed: wake their waiters to look again. A model that no
        longer routes here and has no Ready replica may have been deleted: asked."""
        for key in keys:
            self._wake(key)
            routed = self.table.routed_here(key) or self.table.backends(key)
            if self.waiting[key] and not routed:
                self._spawn(self._check_gone(key))

    def _wake(self, key: Key) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def _event(self, key: Key) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    async def _check_gone(self, key: Key) -> None:
        if not await self.operator.exists(key):
            self._gone.add(key)
            self._wake(key)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.warning("talking to the operator failed: %s", task.exception())

    # ---- the request path -----------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        found = route(self.table, request.host, request.path)
        if found.key is None:
            self.counters["unrouted"] += 1
            return error(found.status, found.message)
        key = found.key
        body = await request.read()
        arrived = self.clock()
        waited_ms: float | None = None
        backends = self.table.backends(key)
        if not backends:
            try:
                backends, waited_s = await self.hold(key, arrived, _asked_timeout(request))
            except Answer as answer:
                return error(answer.status, answer.message)
            waited_ms = waited_s * 1000
        return await self._forward(request, key, body, backends, waited_ms)

    async def hold(
        self, key: Key, arrived: float, asked_timeout_s: float | None
    ) -> tuple[list[str], float]:
        """Wait until the model has a Ready replica: its HTTP ``ip:port`` list and the
        seconds waited (the one figure both the report and the client's wait header
        carry: read twice, the event loop's other work fell between them), or raise
        ``Answer``: queue full, timed out, model deleted, shutting down. The HTTP path
        and the gRPC path (``lepton_activator.grpcproxy``) hold in the same queue, count
        in the same report and signal the same demand."""
        refusal = admit(self.waiting[key], self.limits, key[1])
        if refusal is not None:
            self._refused[key] += 1
            self.counters["refused"] += 1
            raise Answer(refusal.status, refusal.message)
        if not self.waiting[key]:  # the first of a burst, on this replica
            self._since.setdefault(key, self.wall() - (self.clock() - arrived))
        self.waiting[key] += 1
        self.counters["held"] += 1
        until = deadline(arrived, self.limits, asked_timeout_s)
        try:
            backends = await self._wait(key, arrived, until)
            waited_s = self.clock() - arrived
            self._waits[key].append(waited_s)
            return backends, waited_s
        except Answer as answer:
            if answer.status == 504:
                self._timed_out[key] += 1
                self.counters["timed_out"] += 1
            raise
        finally:
            self.waiting[key] -= 1
            if not self.waiting[key]:
                self._report(key)

    async def _wait(self, key: Key, arrived: float, until: float) -> list[str]:
        namespace, model = key
        while True:
            backends = self.table.backends(key)
            if backends:
                return backends
            if self.closing:
                raise Answer(
                    503,
                    "the activator is shutting down; retry (its other replica holds "
                    f"requests for model {model} too)",
                )
            if key in self._gone:
                raise Answer(
                    404, f"LeptonModel {namespace}/{model} was deleted while the request waited"
                )
            now = self.clock()
            if now >= until:
                raise Answer(504, timed_out(model, now - arrived).message)
            if demand_due(self._signalled.get(key), now, self.limits):
                self._signalled[key] = now
                self._spawn(self._demand(key))
            event = self._event(key)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    event.wait(), timeout=min(until - now, self.limits.demand_refresh_s)
                )

    async def _demand(self, key: Key) -> None:
        if not await self.operator.demand(key, self.wall()):
            self._gone.add(key)
            self._wake(key)

    def _report(self, key: Key) -> None:
        waits = self._waits.pop(key, [])
        timed, refused = self._timed_out.pop(key, 0), self._refused.pop(key, 0)
        self._signalled.pop(key, None)
        now = self.wall()
        since = self._since.pop(key, now)
        if key in self._gone:
            self._gone.discard(key)
            return
        if waits or timed or refused:
            part = ReplicaBurst(
                self.instance, since, now, tuple(w * 1000 for w in waits), timed, refused
            )
            self._spawn(self.operator.report(key, part))

    async def _forward(
        self,
        request: web.Request,
        key: Key,
        body: bytes,
        backends: list[str],
        waited_ms: float | None,
    ) -> web.StreamResponse:
        """Send the request to one Ready replica (round robin; the next on a refused
        connection) and relay its answer as it is."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        start = self._rr[key]
        self._rr[key] += 1
        last = ""
        for i in range(len(backends)):
            target = backends[(start + i) % len(backends)]
            try:
                async with self.session().request(
                    request.method,
                    f"http://{target}{request.rel_url}",
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.limits.timeout_s),
                ) as upstream:
                    payload = await upstream.read()
                    out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                    if waited_ms is not None:
                        out[WAIT_HEADER] = f"{waited_ms:.1f}"
                    self.counters["forwarded"] += 1
                    return web.Response(status=upstream.status, body=payload, headers=out)
            except (aiohttp.ClientConnectionError, TimeoutError) as failure:
                last = f"{target}: {failure or type(failure).__name__}"
        self.counters["upstream_failed"] += 1
        return error(502, f"no Ready replica of model {key[1]} answered ({last})")

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Shutting down: every held request is answered (503) before the loop ends."""
        self.closing = True
        for key in list(self._events):
            self._wake(key)
        for _ in range(50):
            if not any(self.waiting.values()):
                break
            await asyncio.sleep(0.02)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._session is not None:
            await self._session.close()

    def metrics(self) -> str:
        """Prometheus text: counters since start and requests waiting now."""
        lines = [
            "# TYPE lepton_activator_requests_total counter",
            *(
                f'lepton_activator_requests_total{{outcome="{name}"}} {value}'
                for name, value in sorted(self.counters.items())
            ),
            "# TYPE lepton_activator_waiting gauge",
            *(
                f'lepton_activator_waiting{{namespace="{ns}",model="{m}"}} {n}'
                for (ns, m), n in sorted(self.waiting.items())
            ),
        ]
        return "\n".join(lines) + "\n"


def _asked_timeout(request: web.Request) -> float | None:
    """A client's own limit on the wait, in seconds (``X-Lepton-Timeout-Seconds``)."""
    raw = request.headers.get("X-Lepton-Timeout-Seconds")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


class KubeOperator:
    """``Operator`` through the LeptonModel's annotations."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def demand(self, key: Key, at_s: float) -> bool:
        try:
            await self.kube.patch_annotations(*key, {DEMAND_ANNOTATION: f"{at_s:.3f}"})
        except ModelGone:
            return False
        return True

    async def report(self, key: Key, part: ReplicaBurst) -> None:
        """Read the report there is, merge this part in, write it back only if nobody
        wrote in between (the resourceVersion precondition: the other replica reports
        its part of the same burst at about the same time); else read again."""
        for _ in range(10):
            try:
                annotations, version = await self.kube.model_annotations(*key)
                merged = merge_burst(annotations.get(WAIT_ANNOTATION), part)
                await self.kube.patch_annotations(
                    *key, {WAIT_ANNOTATION: json.dumps(merged, sort_keys=True)}, version
                )
                return
            except ModelGone:
                return
            except Conflict:
                continue
        LOG.warning("the report of %s/%s lost 10 races; not written", *key)

    async def exists(self, key: Key) -> bool:
        return await self.kube.model_exists(*key)
