"""``lepton-operator``: validate the configuration, then run the kopf operator.

A bad configuration stops the process at once with a message naming the field (exit
2), instead of an operator that starts and fails on every object.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import logging
import os
import sys
import threading

import kopf
from kubernetes import client, config

from lepton_operator import handlers, metrics
from lepton_operator.config import ConfigError, OperatorConfig, load_config
from lepton_operator.election import LeaseElector
from lepton_operator.election import identity as election_identity


def _api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


@kopf.on.startup()
def _settings(settings: kopf.OperatorSettings, **_: object) -> None:
    # Progress and diff-base in annotations of our own prefix: status belongs to the
    # LeptonModel schema, and kopf's default status stanza would be pruned there.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="lepton.ai")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="lepton.ai", key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # Each watch event of an owned pod, Job or Deployment runs a handler that only
    # queues a key; kopf would log a line for every one of them.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    # Watch only what this operator made: the cluster's other pods and Jobs never reach
    # it (filtered by the apiserver, not in memory here).
    for api_version, plural in handlers.OWNED_KINDS:
        settings.watching.label_selectors[api_version, plural] = handlers.WATCHED_SELECTOR
    activator = handlers.activator_from_env()
    if activator is not None:  # only the activator's own slices, filtered by the apiserver
        settings.watching.label_selectors[handlers.SLICES] = handlers.activator_selector(activator)


class _Health(http.server.BaseHTTPRequestHandler):
    """/healthz answers while the process lives, holder or standby alike."""

    def do_GET(self) -> None:
        ok = self.path == "/healthz"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"")

    def log_message(self, *_: object) -> None:  # probes every 2 s would flood the log
        return


def serve_health(port: int) -> None:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), _Health)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()


def run(
    operator_config: OperatorConfig, metrics_port: int, health_port: int, standalone: bool = False
) -> None:
    """Serve health and metrics, wait for the lease (unless standalone), then operate."""
    api = _api_client()
    serve_health(health_port)
    metrics.serve(metrics_port)
    elector = None
    if not standalone:
        namespace = os.environ.get("POD_NAMESPACE", "default")
        elector = LeaseElector(
            client.CoordinationV1Api(api),
            namespace,
            operator_config.lease_name,
            election_identity(),
        )
        elector.wait_until_held()
        elector.keep_renewing(on_lost=lambda: os._exit(1))  # restart as a standby
    handlers.install(operator_config, api)
    namespaces = operator_config.watch_namespaces
    try:
        asyncio.run(
            kopf.operator(clusterwide=not namespaces, namespaces=namespaces, standalone=True)
        )
    finally:
        if elector is not None:
            elector.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lepton-operator", description=__doc__)
    parser.add_argument("--log-format", choices=["json", "plain"], default="json")
    parser.add_argument("--metrics-port", type=int, default=8080)
    parser.add_argument("--health-port", type=int, default=8081)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="no leader election: a single developer run, never with replicas",
    )
    args = parser.parse_args(argv)
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    try:
        operator_config = load_config()
    except ConfigError as error:
        print(f"lepton-operator: {error}", file=sys.stderr)
        return 2
    run(operator_config, args.metrics_port, args.health_port, args.standalone)
    return 0


if __name__ == "__main__":
    sys.exit(main())
