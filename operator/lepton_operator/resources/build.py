"""The objects of a build: the Job per target pool and what it needs.

The builder writes its report into a ConfigMap the operator created for it, through a
ServiceAccount whose Role may update only those ConfigMaps (by name): the narrowest
grant that lets a Job hand back a result larger than a termination message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from lepton_operator.api.spec import LeptonModelSpec, PoolSpec
from lepton_operator.constants import BUILD_HASH_LABEL, POOL_LABEL
from lepton_operator.report import REPORT_KEY
from lepton_operator.resources import names
from lepton_operator.resources.repository import MODELS_MOUNT, credential_env, local_path, s3_uri
from lepton_operator.resources.security import (
    container_security_context,
    pod_security_context,
    pool_placement,
)
from lepton_operator.resources.sources import source_env
from lepton_operator.resources.threads import runtime_threads

__all__ = ["MODELS_MOUNT"]  # re-exported: the mount both the builder and Triton use

BUILD_DEADLINE_SECONDS = 3 * 3600  # the default of the config's builds.deadlineSeconds
BUILD_REQUEST_VERSION = 1
# The native Triton backends of the production serving image (NGC Triton) that serve the
# builder's artifacts: ONNX on onnxruntime, TorchScript on pytorch. The default of the
# config's images.tritonNativeBackends.
NativeBackend = Literal["onnxruntime", "pytorch"]
PRODUCTION_NATIVE_BACKENDS: tuple[NativeBackend, ...] = ("onnxruntime", "pytorch")


def device(pool: PoolSpec) -> str:
    return "cuda" if pool.accelerator else "cpu"


def build_request(
    model: str,
    spec: LeptonModelSpec,
    pool: PoolSpec,
    build: str,
    job: str,
    serving_backends: Sequence[str] = (),
    source_cache_claim: str | None = None,
) -> dict[str, Any]:
    """Everything the builder needs, passed as one JSON argument (versioned).

    With an S3 repository, ``upload`` names where the builder copies the repository it
    wrote to scratch; builders that predate it ignore the key, so the version stays 1.
    ``sourceCache`` is where the builder keeps downloaded sources by content, so a
    rebuild does not download them again: the namespace's cache claim
    (``source_cache_claim``, mounted by ``job``) where the namespace has one, else a
    folder on the model's volume, else (an S3 repository: no volume) nothing.
    ``buildCache``, on the namespace's claim only, is where it keeps finished builds
    by their inputs' bytes, the builder and the hardware, so the same build is reused.
    ``servingBackends``: the native Triton backends of the serving image, which the
    builder's config.pbtxt names where they serve an artifact (the python backend
    otherwise); absent when there are none, as before the key existed.
    """
    s3 = spec.repository.s3 if spec.repository else None
    request: dict[str, Any] = {
        "requestVersion": BUILD_REQUEST_VERSION,
        "modelName": model,
        "pool": pool.name,
        "device": device(pool),
        "model": spec.model.model_dump(mode="json", by_alias=True, exclude_none=True),
        "optimization": spec.optimization.model_dump(mode="json", by_alias=True, exclude_none=True),
        "repository": local_path(build, pool.name, s3),
        "reportConfigMap": names.report_configmap(job),
        # What the serving search scores at; not in the build's hash: an SLO changed
        # later re-plans from the same measured levels instead of rebuilding.
        "latencyTargetMs": spec.slo.p95_latency_ms,
    }
    if serving_backends:
        request["servingBackends"] = sorted(set(serving_backends))
    if s3:
        request["upload"] = {"uri": s3_uri(s3, build, pool.name)}
    if source_cache_claim:
        request["sourceCache"] = NAMESPACE_SOURCE_CACHE
        request["buildCache"] = NAMESPACE_BUILD_CACHE
    elif not s3:
        request["sourceCache"] = SOURCE_CACHE
    return request


SOURCES_MOUNT = "/sources"
# Beside the build folders (<buildHash>/<pool>/) on the model's volume; Triton never
# reads it (its --model-repository is a variant's own folder).
SOURCE_CACHE = f"{MODELS_MOUNT}/.source-cache"
NAMESPACE_SOURCE_CACHE = "/source-cache"  # the namespace's cache claim, where it has one
# Finished builds kept by what decides them (the builder's buildcache), only on the
# namespace's claim: a model's own volume already holds its current build.
NAMESPACE_BUILD_CACHE = f"{NAMESPACE_SOURCE_CACHE}/builds"


def source_claims(spec: LeptonModelSpec) -> list[str]:
    """PVCs named by pvc:// URIs of the model and its calibration data, in order."""
    claims: list[str] = []
    for uri in (spec.model.uri, spec.optimization.calibration_uri):
        if uri and uri.startswith("pvc://"):
            claim = uri.removeprefix("pvc://").split("/", 1)[0]
            if claim not in claims:
                claims.append(claim)
    return claims


def resources(pool: PoolSpec) -> dict[str, Any]:
    requests = dict(pool.resources)
    limits: dict[str, str] = {}
    if "memory" in requests:
        limits["memory"] = requests["memory"]
    if pool.accelerator:
        limits[pool.accelerator.resource] = str(pool.accelerator.count)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _threads_args(pool: PoolSpec) -> list[str]:
    """Profile and serve with the pool's CPU request in threads (resources.threads)."""
    threads = runtime_threads(pool)
    return ["--threads", str(threads)] if threads else []


def job(
    model: str,
    namespace: str,
    spec: LeptonModelSpec,
    pool: PoolSpec,
    build: str,
    image: str,
    deadline_seconds: int = BUILD_DEADLINE_SECONDS,
    search_seconds_per_level: float | None = None,
    serving_backends: Sequence[str] = (),
    source_cache_claim: str | None = None,
) -> dict[str, Any]:
    """The build Job of one pool. ``search_seconds_per_level``: how long the serving
    search measures each load level (the builder's own default when None).
    ``serving_backends``: the serving image's native Triton backends (the config's
    images.tritonNativeBackends; none: every variant on the python backend).
    ``source_cache_claim``: the namespace's source cache claim, mounted read-write at
    ``NAMESPACE_SOURCE_CACHE``, where the namespace has one."""
    name = names.build_job(model, pool.name, build)
    labels = names.labels(model, "builder", **{POOL_LABEL: pool.name, BUILD_HASH_LABEL: build})
    request = build_request(model, spec, pool, build, name, serving_backends, source_cache_claim)
    cache_mount = (
        [{"name": "source-cache", "mountPath": NAMESPACE_SOURCE_CACHE}]
        if source_cache_claim
        else []
    )
    cache_volume = (
        [{"name": "source-cache", "persistentVolumeClaim": {"claimName": source_cache_claim}}]
        if source_cache_claim
        else []
    )
    claims = source_claims(spec)
    s3 = spec.repository.s3 if spec.repository else None
    # With S3 the repository is written to /tmp and uploaded: no model volume at all.
    models_mount = [] if s3 else [{"name": "models", "mountPath": MODELS_MOUNT}]
    models_volume = (
        []
        if s3
        else [{"name": "models", "persistentVolumeClaim": {"claimName": names.model_volume(model)}}]
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": names.builder_account(model),
                    "securityContext": pod_security_context(),
                    **pool_placement(
                        pool.node_selector,
                        [t.model_dump(exclude_none=True) for t in pool.tolerations],
                    ),
                    "containers": [
                        {
                            "name": "builder",
                            "image": image,
                            "args": [
                                "--request",
                                json.dumps(request, sort_keys=True),
                                *(
                                    ["--search-seconds", f"{search_seconds_per_level:g}"]
                                    if search_seconds_per_level is not None
                                    else []
                                ),
                                *_threads_args(pool),
                            ],
                            "env": [
                                {
                                    "name": "POD_NAMESPACE",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                                },
                                *credential_env(s3),
                                *source_env(spec.model),
                            ],
                            "resources": resources(pool),
                            "securityContext": container_security_context(),
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "volumeMounts": [
                                *models_mount,
                                *cache_mount,
                                {"name": "tmp", "mountPath": "/tmp"},
                                # pvc://<claim>/<path> is read at /sources/<claim>/<path>.
                                *(
                                    {
                                        "name": f"source-{i}",
                                        "readOnly": True,
                                        "mountPath": f"{SOURCES_MOUNT}/{claim}",
                                    }
                                    for i, claim in enumerate(claims)
                                ),
                            ],
                        }
                    ],
                    "volumes": [
                        *models_volume,
                        *cache_volume,
                        {"name": "tmp", "emptyDir": {}},
                        *(
                            {
                                "name": f"source-{i}",
                                "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
                            }
                            for i, claim in enumerate(claims)
                        ),
                    ],
                },
            },
        },
    }


def report_configmap(model: str, namespace: str, job_name: str, build: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.report_configmap(job_name),
            "namespace": namespace,
            "labels": names.labels(model, "build-report", **{BUILD_HASH_LABEL: build}),
        },
        "data": {REPORT_KEY: ""},
    }


def builder_service_account(model: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": names.builder_account(model),
            "namespace": namespace,
            "labels": names.labels(model, "builder"),
        },
    }


def builder_role(model: str, namespace: str, report_configmaps: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": names.builder_account(model),
            "namespace": namespace,
            "labels": names.labels(model, "builder"),
        },
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": sorted(report_configmaps),
                "verbs": ["get", "update", "patch"],
            }
        ],
    }


def builder_role_binding(model: str, namespace: str) -> dict[str, Any]:
    account = names.builder_account(model)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": account,
            "namespace": namespace,
            "labels": names.labels(model, "builder"),
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }


def model_volume_claim(model: str, namespace: str, size: str, storage_class: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": names.model_volume(model),
            "namespace": namespace,
            "labels": names.labels(model, "model-repository"),
        },
        "spec": spec,
    }
