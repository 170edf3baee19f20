"""``lepton-activator``: start the watch, the request ports (Triton's HTTP and gRPC) and
the admin port.

SIGTERM (a rollout, a drained node) answers every held request with 503 before the
process ends, so no client hangs on a connection that will never be answered; the
chart's two replicas mean a retry finds the other one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from lepton_activator import grpcproxy
from lepton_activator.holding import Limits
from lepton_activator.kube import KubeClient
from lepton_activator.routing import Table
from lepton_activator.server import Activator, KubeOperator

LOG = logging.getLogger("lepton_activator")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lepton-activator", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="Triton HTTP requests")
    parser.add_argument(
        "--grpc-port", type=int, default=8001, help="Triton gRPC requests (0: none)"
    )
    parser.add_argument("--admin-port", type=int, default=9091, help="/healthz, /metrics")
    parser.add_argument("--queue-limit", type=int, default=100, help="held requests per model")
    parser.add_argument("--timeout-seconds", type=float, default=300.0)
    parser.add_argument("--demand-refresh-seconds", type=float, default=5.0)
    parser.add_argument("--kube-url", help="apiserver URL (default: in-cluster)")
    parser.add_argument("--token-file", type=Path, help="bearer token with --kube-url")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    kube = KubeClient(args.kube_url, args.token_file) if args.kube_url else KubeClient()
    table = Table()
    limits = Limits(args.queue_limit, args.timeout_seconds, args.demand_refresh_seconds)
    activator = Activator(table, limits, KubeOperator(kube))
    synced = asyncio.Event()

    def replace(items: list[dict[str, object]]) -> None:
        activator.changed(table.replace(items))

    def event(kind: str, obj: dict[str, object]) -> None:
        key = table.remove(obj) if kind == "DELETED" else table.put(obj)
        if key is not None:
            activator.changed({key})

    async def mark_synced() -> None:
        synced.set()

    async def healthz(_: web.Request) -> web.Response:
        # Ready once the first listing is in: before it, every request would wait.
        if not synced.is_set():
            return web.Response(status=503, text="waiting for the first EndpointSlice list\n")
        return web.Response(text="ok\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=activator.metrics(), content_type="text/plain")

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_route("*", "/{tail:.*}", activator.handle)
    admin = web.Application()
    admin.router.add_get("/healthz", healthz)
    admin.router.add_get("/metrics", metrics)
    runners = [web.AppRunner(app, access_log=None), web.AppRunner(admin, access_log=None)]
    for runner in runners:
        await runner.setup()
    await web.TCPSite(runners[0], port=args.port).start()
    await web.TCPSite(runners[1], port=args.admin_port).start()
    grpc_server = None
    if args.grpc_port:
        grpc_server, proxy = await grpcproxy.start(activator, args.grpc_port)
    watch = asyncio.create_task(kube.watch_slices(replace, event, mark_synced))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    LOG.info(
        "activator on :%d (gRPC :%d, admin :%d), %s",
        args.port,
        args.grpc_port,
        args.admin_port,
        limits,
    )
    await stop.wait()
    LOG.info("stopping: answering %d held request(s)", sum(activator.waiting.values()))
    await activator.close()
    if grpc_server is not None:
        await grpc_server.stop(1.0)  # held calls were answered UNAVAILABLE just above
        await proxy.close()
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    for runner in runners:
        await runner.cleanup()
    await kube.close()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(parse(argv)))


if __name__ == "__main__":
    main()
