"""``lepton-operator``: validate the configuration, then run the kopf operator.

A bad configuration stops the process at once with a message naming the field (exit
2), instead of an operator that starts and fails on every object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import socket
import sys

import kopf
from kubernetes import client, config

from lepton_operator import handlers, metrics
from lepton_operator.config import ConfigError, OperatorConfig, load_config


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
    settings.execution.max_workers = 8
    settings.watching.server_timeout = 300
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # probes every 2 s


def peering_priority(pod_name: str) -> int:
    """A priority of this replica's own: kopf freezes peers of equal priority, so each
    replica gets a distinct one derived from its pod name, and the highest acts."""
    return int(hashlib.sha256(pod_name.encode()).hexdigest()[:7], 16)


def run(
    operator_config: OperatorConfig, metrics_port: int, health_port: int, standalone: bool = False
) -> None:
    handlers.install(operator_config, _api_client())
    metrics.serve(metrics_port)
    namespaces = operator_config.watch_namespaces
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=standalone,
            priority=peering_priority(os.environ.get("POD_NAME", socket.gethostname())),
            peering_name=None if standalone else operator_config.peering,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lepton-operator", description=__doc__)
    parser.add_argument("--log-format", choices=["json", "plain"], default="json")
    parser.add_argument("--metrics-port", type=int, default=8080)
    parser.add_argument("--health-port", type=int, default=8081)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: for a single developer run, never with replicas",
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
