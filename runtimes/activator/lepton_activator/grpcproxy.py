"""Triton's gRPC API at zero: hold the call like an HTTP request, then pass it through.

A generic handler (grpcio's ``grpc.aio`` server) takes every method as a stream of raw
request messages to a stream of raw responses, with no (de)serialization: a unary call
is a stream of one message each way on the wire, so one shape serves Triton's unary
methods and ``ModelStreamInfer`` alike, and no proto of Triton's is needed here. The
first request message names the model (``routing.grpc_route``); while the model has no
Ready replica the call waits in ``Activator.hold`` (the HTTP path's queue, timeout,
demand signal and report), then goes to a Ready replica's gRPC port over a ``grpc.aio``
channel, messages relayed as they come both ways, metadata and status as the replica
gave them. The activator's own answers take gRPC codes (``holding.grpc_code``): a full
queue RESOURCE_EXHAUSTED, an outwaited timeout DEADLINE_EXCEEDED, a deleted model
NOT_FOUND, shutting down UNAVAILABLE. A held call's initial metadata carries
``x-lepton-activator-wait-ms``, as a held HTTP answer carries its header.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]

from lepton_activator.holding import grpc_code
from lepton_activator.routing import GRPC_PORT_NAME, Key, grpc_route
from lepton_activator.server import Activator, Answer

LOG = logging.getLogger(__name__)
WAIT_METADATA = "x-lepton-activator-wait-ms"
# The client's deadline travels as the call's own timeout, never as metadata.
_NOT_FORWARDED = ("grpc-", ":")
_NOT_FORWARDED_KEYS = frozenset({"user-agent", "te", "content-type", "host"})
MAX_MESSAGE = 64 * 2**20  # as the HTTP path's body limit
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]


def forwardable(metadata: Any) -> list[tuple[str, str | bytes]]:
    """The client's metadata that goes on to the replica: not gRPC's own (``grpc-*``,
    pseudo-headers) and not what the channel sets itself."""
    return [
        (str(key), value)
        for key, value in metadata or ()
        if not str(key).startswith(_NOT_FORWARDED) and str(key) not in _NOT_FORWARDED_KEYS
    ]


class GrpcProxy(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method, raw bytes in and out, through ``Activator``'s hold."""

    bound_port: int = 0

    def __init__(self, activator: Activator) -> None:
        self.activator = activator
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._rr: dict[Key, int] = defaultdict(int)
        self._closing: set[asyncio.Future[None]] = set()

    def service(self, handler_call_details: Any) -> Any:
        method = str(handler_call_details.method)

        async def relay(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
            async for response in self.call(method, requests, context):
                yield response

        return grpc.stream_stream_rpc_method_handler(relay)

    async def call(
        self, method: str, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[bytes]:
        counters = self.activator.counters
        first: bytes | None = None
        async for message in requests:
            first = message
            break
        found = grpc_route(self.activator.table, method, first)
        if found.key is None:
            counters["unrouted"] += 1
            await context.abort(getattr(grpc.StatusCode, grpc_code(found.status)), found.message)
            return
        key = found.key
        arrived = self.activator.clock()
        waited_ms: float | None = None
        if not self.activator.table.backends(key):
            try:
                _, waited_s = await self.activator.hold(key, arrived, context.time_remaining())
            except Answer as answer:
                code = grpc_code(answer.status, answer.message)
                await context.abort(getattr(grpc.StatusCode, code), answer.message)
                return
            waited_ms = waited_s * 1000
        backends = self.activator.table.backends(key, GRPC_PORT_NAME)
        if not backends:
            counters["upstream_failed"] += 1
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"model {key[1]} has a Ready replica but no gRPC port in its Service",
            )
            return
        target = backends[self._rr[key] % len(backends)]
        self._rr[key] += 1

        async def outgoing() -> AsyncIterator[bytes]:
            if first is not None:
                yield first
            async for message in requests:
                yield message

        upstream = self.channel(target).stream_stream(method)(
            outgoing(),
            metadata=forwardable(context.invocation_metadata()),
            timeout=context.time_remaining(),
        )
        try:
            initial = forwardable(await upstream.initial_metadata())
            if waited_ms is not None:
                initial.append((WAIT_METADATA, f"{waited_ms:.1f}"))
            await context.send_initial_metadata(initial)
            async for response in upstream:
                yield response
            context.set_trailing_metadata(tuple(forwardable(await upstream.trailing_metadata())))
            counters["forwarded"] += 1
        except grpc.aio.AioRpcError as failure:
            if failure.code() == grpc.StatusCode.UNAVAILABLE:
                counters["upstream_failed"] += 1
                details = f"replica {target} of model {key[1]}: {failure.details()}"
            else:  # the replica's own answer, relayed as it is
                counters["forwarded"] += 1
                details = failure.details() or ""
            context.set_trailing_metadata(tuple(forwardable(failure.trailing_metadata())))
            await context.abort(failure.code(), details)
        finally:
            if not upstream.done():  # the client went away: so does the replica's call
                upstream.cancel()

    def channel(self, target: str) -> grpc.aio.Channel:
        """One channel per replica address, kept (HTTP/2 multiplexes the calls); those of
        replicas no longer Ready are closed when a new one opens."""
        if target not in self._channels:
            live = {
                address
                for info in self.activator.table.slices.values()
                for address in info.ready_grpc
            }
            for old in [t for t in self._channels if t not in live]:
                self._spawn_close(self._channels.pop(old))
            self._channels[target] = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        return self._channels[target]

    def _spawn_close(self, channel: grpc.aio.Channel) -> None:
        # A grace period: calls still running on it finish (a replica draining).
        task = asyncio.ensure_future(channel.close(grace=30.0))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        for task in list(self._closing):
            task.cancel()


async def start(activator: Activator, port: int, host: str = "0.0.0.0") -> tuple[Any, GrpcProxy]:
    """The gRPC server on ``host:port`` (0: any free port, read back from the proxy's
    ``bound_port``)."""
    proxy = GrpcProxy(activator)
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    server.add_generic_rpc_handlers((proxy,))
    proxy.bound_port = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, proxy
