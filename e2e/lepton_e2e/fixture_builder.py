"""A stand-in for the builder image in lifecycle tests: a fixed report, said to be one.

It takes the same ``--request`` argument as the real builder, runs as a real process
pod with the Job's ServiceAccount, writes a marker into the model volume and hands
its report back through the report ConfigMap, so everything around the build (RBAC,
volumes, the report's path into status) is the production path. Only the figures are
fixed: each variant's ``reason`` says "fixture". A model URI with the query
``fixture-build-seconds=N`` makes the build take N seconds, for tests that act mid-build;
``fixture-fail=<message>`` makes it fail after that time as the real builder fails (exit
1, the message as its termination message), for the fault tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from kubernetes import client, config

TERMINATION_LOG = Path("/dev/termination-log")

CPU_VARIANTS: list[dict[str, Any]] = [
    {"name": "fp32", "status": "accepted", "accuracy": 1.0, "p95": 24.0, "rps": 45.0},
    {
        "name": "int8-dynamic",
        "status": "rejected",
        "accuracy": 0.9377,
        "p95": 10.0,
        "rps": 105.0,
        "reason": "fixture: cosine 0.9377 below the guard 0.99",
    },
    {"name": "onnx-int8", "status": "accepted", "accuracy": 0.9932, "p95": 9.0, "rps": 118.0},
]
GPU_VARIANTS: list[dict[str, Any]] = [
    {"name": "fp16", "status": "accepted", "accuracy": 0.9999, "p95": 4.9, "rps": 1900.0},
    {"name": "torch-compile", "status": "accepted", "accuracy": 0.9999, "p95": 2.2, "rps": 4950.0},
]


def fixture_report(request: dict[str, Any]) -> dict[str, Any]:
    variants = GPU_VARIANTS if request["device"] == "cuda" else CPU_VARIANTS
    return {
        "schemaVersion": 1,
        "pool": request["pool"],
        "device": request["device"],
        "accuracyMetric": request["optimization"]["accuracy"]["metric"],
        "repository": request["repository"],
        "variants": [
            {
                "name": v["name"],
                "status": v["status"],
                "reason": v.get("reason", "fixture report (e2e), not measured"),
                "accuracy": v["accuracy"],
                "sizeBytes": 90_000_000,
                "tritonModel": request["modelName"],
                "profiles": [
                    {
                        "batchSize": 1,
                        "p50Ms": v["p95"] * 0.8,
                        "p95Ms": v["p95"],
                        "p99Ms": v["p95"] * 1.2,
                        "throughputRps": v["rps"],
                    }
                ],
            }
            for v in variants
        ],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line the operator gives a build Job, as lepton-build takes it; what
    only the real builder uses (the serving search's pace, the threads) is accepted and
    ignored."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--request", required=True)
    parser.add_argument("--search-seconds", type=float)
    parser.add_argument("--threads", type=int)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    request = json.loads(args.request)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(request["model"]["uri"]).query)
    time.sleep(float(query.get("fixture-build-seconds", ["0"])[0]))
    if "fixture-fail" in query:
        message = query["fixture-fail"][0]
        print(f"fixture builder: {message}", file=sys.stderr)
        TERMINATION_LOG.write_text(message)
        return 1
    repository = Path(request["repository"])
    repository.mkdir(parents=True, exist_ok=True)
    (repository / "FIXTURE").write_text("written by lepton_e2e.fixture_builder\n")
    report = fixture_report(request)
    config.load_incluster_config()
    core = client.CoreV1Api()
    namespace = os.environ["POD_NAMESPACE"]
    core.patch_namespaced_config_map(
        request["reportConfigMap"], namespace, {"data": {"report.json": json.dumps(report)}}
    )
    print(f"fixture report written to {namespace}/{request['reportConfigMap']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
