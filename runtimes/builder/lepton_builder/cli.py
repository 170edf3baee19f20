"""``lepton-build``: the build Job's entry point, and a developer's.

In a Job it reads the request from ``--request`` (JSON, as the operator passes it) and
hands the report back through the report ConfigMap named in the request. By hand,
``--request @request.json --report-file report.json`` does the same on a laptop.
A model that cannot be loaded exits 1 with the reason as the termination message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lepton_builder.build import Settings, build
from lepton_builder.loading import SOURCES_ROOT, LoadError
from lepton_builder.profiling import Budget
from lepton_builder.request import BuildRequest
from lepton_builder.upload import upload_repository

TERMINATION_LOG = Path("/dev/termination-log")


def _fail(message: str) -> int:
    print(f"lepton-build: {message}", file=sys.stderr)
    with contextlib.suppress(OSError):  # not in a pod
        TERMINATION_LOG.write_text(message[:4000])
    return 1


def write_report_configmap(name: str, report: dict[str, Any]) -> None:
    """Update the report ConfigMap the operator created (the only one our Role allows)."""
    from kubernetes import client, config

    config.load_incluster_config()
    namespace = os.environ["POD_NAMESPACE"]
    client.CoreV1Api().patch_namespaced_config_map(
        name, namespace, {"data": {"report.json": json.dumps(report)}}
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lepton-build", description=__doc__)
    parser.add_argument("--request", required=True, help="JSON, or @path to a JSON file")
    parser.add_argument("--report-file", type=Path, help="write the report here too")
    parser.add_argument("--profile-seconds", type=float, default=2.0)
    parser.add_argument("--min-iterations", type=int, default=20)
    parser.add_argument("--calibration-samples", type=int, default=64)
    parser.add_argument(
        "--dynamic-dim",
        type=int,
        default=128,
        help="length used for -1 dimensions of generated inputs",
    )
    parser.add_argument("--threads", type=int, default=0, help="0: the runtime's default")
    parser.add_argument("--sources-root", type=Path, default=SOURCES_ROOT)
    parser.add_argument(
        "--search-seconds",
        type=float,
        default=3.0,
        help="serving search: seconds per load level of each configuration",
    )
    parser.add_argument(
        "--tritonserver",
        default=None,
        help="serving search: the server to run (default: tritonserver on PATH, else the "
        "nvidia-pytriton wheel's)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    text = Path(args.request[1:]).read_text() if args.request.startswith("@") else args.request
    try:
        request = BuildRequest.model_validate(json.loads(text))
    except (ValidationError, json.JSONDecodeError) as error:
        return _fail(f"invalid build request: {error}")
    settings = Settings(
        budget=Budget(seconds=args.profile_seconds, min_iterations=args.min_iterations),
        calibration_samples=args.calibration_samples,
        dynamic_dim=args.dynamic_dim,
        threads=args.threads,
        sources_root=args.sources_root,
        search_seconds=args.search_seconds,
        tritonserver=args.tritonserver,
    )
    try:
        report = build(request, settings)
    except LoadError as error:
        return _fail(str(error))
    if request.upload:
        try:
            count = upload_repository(Path(request.repository), request.upload.uri)
        except Exception as error:  # any S3 failure fails the build, with its reason
            return _fail(f"uploading the repository to {request.upload.uri}: {error}")
        logging.getLogger(__name__).info("uploaded %d files to %s", count, request.upload.uri)
        report["repository"] = request.upload.uri
    if args.report_file:
        args.report_file.write_text(json.dumps(report, indent=2))
    if request.report_config_map and os.environ.get("KUBERNETES_SERVICE_HOST"):
        write_report_configmap(request.report_config_map, report)
    if not args.report_file and not request.report_config_map:
        json.dump(report, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
