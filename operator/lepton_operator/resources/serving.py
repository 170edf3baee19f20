"""Triton serving objects: a Deployment per (model, pool) and one Service per model.

Triton is told the device explicitly through the model's config.pbtxt (written by the
builder) and loads only the chosen variant (explicit model control), so what runs is
the planner's decision and never Triton's silent CPU fallback.
"""

from __future__ import annotations

from typing import Any

from lepton_operator.api.spec import PoolSpec, S3Repository
from lepton_operator.constants import (
    ANNOTATION_TRITON_MODEL,
    ANNOTATION_VARIANT,
    COMPONENT_LABEL,
    GATE,
    GRPC_PORT,
    HTTP_PORT,
    METRICS_PORT,
    MODEL_LABEL,
    POOL_LABEL,
)
from lepton_operator.resources import names
from lepton_operator.resources.build import resources
from lepton_operator.resources.repository import MODELS_MOUNT, credential_env, serving_path
from lepton_operator.resources.security import (
    container_security_context,
    pod_security_context,
    pool_placement,
)


def selector(model: str, pool: str) -> dict[str, str]:
    return {MODEL_LABEL: model, POOL_LABEL: pool, COMPONENT_LABEL: "triton"}


def selector_string(model: str, pool: str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector(model, pool).items()))


def service_selector(model: str) -> dict[str, str]:
    """Every pool's Ready pods: a pool change shifts traffic pod by pod as the new pods
    pass their canary, and the old pool keeps serving until it is drained."""
    return {MODEL_LABEL: model, COMPONENT_LABEL: "triton"}


CACHED_CONFIG = "cached"  # the builder's configs/cached.pbtxt: the response cache on


def triton_args(
    repository: str, triton_model: str, response_cache_bytes: int | None = None
) -> list[str]:
    """The server's flags. The response cache is switched here: the model's
    ``configs/cached.pbtxt`` (written by the builder beside ``config.pbtxt``) enables it
    and the server gets a cache to use (``runtimes/triton/README.md``)."""
    cache = []
    if response_cache_bytes:
        cache = [
            f"--model-config-name={CACHED_CONFIG}",
            f"--cache-config=local,size={response_cache_bytes}",
        ]
    return [
        f"--model-repository={repository}",
        "--model-control-mode=explicit",
        f"--load-model={triton_model}",
        "--strict-readiness=true",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
        "--allow-metrics=true",
        # Triton exports only counters by default; summaries give p50/p95/p99.
        "--metrics-config=summary_latencies=true",
        *cache,
    ]


def deployment(
    model: str,
    namespace: str,
    pool: PoolSpec,
    replicas: int,
    image: str,
    build: str,
    triton_model: str,
    variant: str,
    s3: S3Repository | None = None,
    response_cache_bytes: int | None = None,
) -> dict[str, Any]:
    """With ``s3`` Triton reads the build's repository from the bucket (credentials from
    the Secret's environment) and the pod mounts no model volume."""
    labels = {
        **names.labels(model, "triton", **{POOL_LABEL: pool.name}),
        **selector(model, pool.name),
    }
    repository = serving_path(build, pool.name, s3, variant)
    models_mount = [] if s3 else [{"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True}]
    models_volume = (
        []
        if s3
        else [
            {
                "name": "models",
                "persistentVolumeClaim": {
                    "claimName": names.model_volume(model),
                    "readOnly": True,
                },
            }
        ]
    )
    env = credential_env(s3)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.serving_deployment(model, pool.name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_VARIANT: variant, "lepton.ai/build-hash": build},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(model, pool.name)},
            # Never fewer Ready replicas than asked for while rolling.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                        ANNOTATION_VARIANT: variant,
                        ANNOTATION_TRITON_MODEL: triton_model,
                    },
                },
                "spec": {
                    # Not Ready, so no traffic, until the operator's canary inference
                    # got the builder's recorded answer from this very pod.
                    "readinessGates": [{"conditionType": GATE}],
                    "securityContext": pod_security_context(),
                    **pool_placement(
                        pool.node_selector,
                        [t.model_dump(exclude_none=True) for t in pool.tolerations],
                    ),
                    "containers": [
                        {
                            "name": "triton",
                            "image": image,
                            "command": ["tritonserver"],
                            "args": triton_args(repository, triton_model, response_cache_bytes),
                            **({"env": env} if env else {}),
                            "ports": [
                                {"name": "http", "containerPort": HTTP_PORT},
                                {"name": "grpc", "containerPort": GRPC_PORT},
                                {"name": "metrics", "containerPort": METRICS_PORT},
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/v2/health/ready", "port": "http"},
                                "periodSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/v2/health/live", "port": "http"},
                                "initialDelaySeconds": 30,
                                "periodSeconds": 10,
                            },
                            "resources": resources(pool),
                            "securityContext": container_security_context(),
                            "volumeMounts": [
                                *models_mount,
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        *models_volume,
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def service(model: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.service(model),
            "namespace": namespace,
            "labels": names.labels(model, "triton"),
        },
        "spec": {
            "selector": service_selector(model),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }


def service_monitor(model: str, namespace: str, extra_labels: dict[str, str]) -> dict[str, Any]:
    """For clusters whose Prometheus is run by the Prometheus Operator; it compiles to
    the same endpoint discovery as the scrape annotations on the pods."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": names.service(model),
            "namespace": namespace,
            "labels": {**names.labels(model, "triton"), **extra_labels},
        },
        "spec": {
            "selector": {"matchLabels": names.labels(model, "triton")},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}],
        },
    }
