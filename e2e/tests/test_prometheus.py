"""The harness's Prometheus finds Triton metrics endpoints the way a ServiceMonitor does:
Services labelled ``lepton.ai/component=triton``, port ``metrics``, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from lepton_e2e.fixtures import Kube, wait_for
from lepton_e2e.prometheus import PrometheusServer

pytestmark = pytest.mark.e2e

TOOLBOX = "e2e.lepton.local/toolbox:1"
PORT = 8002

# A Triton-like exposition, served with the text format's content type (Prometheus 3
# refuses a scrape whose Content-Type it does not know, such as octet-stream).
EXPORTER = """
import http.server

BODY = b'nv_inference_request_success{model="smoke__fp32",version="1"} 42\\n'

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.end_headers()
        self.wfile.write(BODY if self.path == "/metrics" else b"")

http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
""".replace("PORT", str(PORT))


def _restricted_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A process pod that passes restricted Pod Security, as the operator's pods do."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "exporter",
                    "image": TOOLBOX,
                    "command": ["python3", "-c", EXPORTER],
                    "ports": [{"name": "metrics", "containerPort": PORT}],
                    "readinessProbe": {
                        "httpGet": {"path": "/metrics", "port": "metrics"},
                        "periodSeconds": 1,
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def _service(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"app": "exporter"},
            "ports": [{"name": "metrics", "port": PORT, "targetPort": "metrics"}],
        },
    }


def test_prometheus_scrapes_only_triton_services_with_servicemonitor_labels(
    kube: Kube, namespace: str, prometheus: PrometheusServer
) -> None:
    assert kube.runs_process_pods, "needs the harness's pod runner (a real exporter process)"
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kube.apply(
        _restricted_pod("exporter-0", {"app": "exporter"}),
        _service("smoke-triton", {"lepton.ai/component": "triton"}),
        _service("smoke-plain", {}),
        namespace=namespace,
    )
    kube.kubectl(
        "wait", "pod/exporter-0", "-n", namespace, "--for=condition=Ready", "--timeout=60s"
    )

    up = wait_for(
        lambda: prometheus.query(f'up{{namespace="{namespace}"}} == 1'),
        timeout=60,
        what="the exporter's target up in Prometheus",
    )
    assert [series["metric"] for series in up] == [
        {
            "__name__": "up",
            "instance": up[0]["metric"]["instance"],
            "job": "triton",
            "namespace": namespace,
            "pod": "exporter-0",
            "service": "smoke-triton",
        }
    ]
    pod_ip = kube.get("pod", "exporter-0", namespace)["status"]["podIP"]
    assert up[0]["metric"]["instance"] == f"{pod_ip}:{PORT}"
    scraped = prometheus.query(f'nv_inference_request_success{{namespace="{namespace}"}}')
    assert [(s["metric"]["model"], s["value"][1]) for s in scraped] == [("smoke__fp32", "42")]

    # The unlabelled Service was discovered (same pod, same port name) and dropped by the
    # relabelling, so it never became a target.
    def dropped_plain() -> list[dict[str, Any]]:
        return [
            t
            for t in prometheus.targets("dropped")
            if t["discoveredLabels"].get("__meta_kubernetes_namespace") == namespace
            and t["discoveredLabels"].get("__meta_kubernetes_service_name") == "smoke-plain"
        ]

    assert wait_for(dropped_plain, timeout=30, what="smoke-plain discovered and dropped")
    assert not prometheus.query(f'up{{namespace="{namespace}",service="smoke-plain"}}')
