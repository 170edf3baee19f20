"""Names and labels of everything the operator creates, derived from the spec.

Names come from hashes of what decides an object, never from randomness, so a
retried or restarted reconcile finds the object it made before instead of making a
second one, and a spec change that alters the build yields new names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from lepton_operator.api.spec import COMPRESSED_VARIANTS, LeptonModelSpec, PoolSpec
from lepton_operator.constants import COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL, MODEL_LABEL
from lepton_operator.resources.threads import runtime_threads


def stable_hash(*parts: Any, length: int = 10) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def build_hash(
    spec: LeptonModelSpec,
    pools: list[PoolSpec],
    builder_image: str,
    serving_backends: Sequence[str] = (),
) -> str:
    """What decides the build: the model, the optimization, the target hardware and the
    builder. SLO, budget and scaling are left out: changing them never rebuilds. A
    repository other than the PVC counts too (the artifacts must be written there), and
    only when set, so the hashes of existing PVC builds stay as they were. So do the
    serving image's native Triton backends (each config.pbtxt names its backend), only
    when there are any: python-backend builds keep their hashes. The pools' CPU
    requests count as the threads each build profiles and serves with
    (resources.threads): a pool given more or fewer CPUs is built again for them."""
    where = [spec.repository.model_dump(mode="json", by_alias=True)] if spec.repository else []
    threads = {p.name: n for p in pools if (n := runtime_threads(p))}
    if threads:
        where.append({"threads": threads})
    if serving_backends:
        where.append({"servingBackends": sorted(set(serving_backends))})
    optimization = spec.optimization.model_dump(mode="json", by_alias=True)
    if not set(optimization.get("variants") or ()) & set(COMPRESSED_VARIANTS):
        # Only pruned and distilled variants train: without them the training time
        # decides nothing, and builds made before it existed keep their hashes.
        optimization.pop("trainingSeconds", None)
    if not optimization.get("servingSearch"):
        optimization.pop("servingSearch", None)  # off: as before the field existed
    if (optimization.get("accuracy") or {}).get("labels") is None:
        optimization.get("accuracy", {}).pop("labels", None)  # likewise
    return stable_hash(
        spec.model.model_dump(mode="json", by_alias=True),
        optimization,
        sorted(
            (p.name, p.accelerator.model_dump(mode="json") if p.accelerator else None)
            for p in pools
        ),
        builder_image,
        *where,
    )


def build_job(model: str, pool: str, build: str) -> str:
    return f"{model}-b-{stable_hash(build, pool, length=8)}"


def report_configmap(job: str) -> str:
    return f"{job}-report"


def builder_account(model: str) -> str:
    return f"{model}-builder"


def model_volume(model: str) -> str:
    return f"{model}-models"


def serving_deployment(model: str, pool: str) -> str:
    return f"{model}-{pool}"


def service(model: str) -> str:
    return model


def repository_path(build: str, pool: str) -> str:
    """Where a build writes its Triton model repository on the model volume."""
    return f"{build}/{pool}"


def labels(model: str, component: str, **extra: str) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        "app.kubernetes.io/part-of": "lepton",
        MODEL_LABEL: model,
        COMPONENT_LABEL: component,
        **extra,
    }


def owned_selector(model: str, component: str) -> str:
    """Label selector of the objects of one component that this operator made for a model."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{MODEL_LABEL}={model},{COMPONENT_LABEL}={component}"
