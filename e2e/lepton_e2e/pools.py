"""Node pools of the local cluster, declared in ``e2e/cluster/pools.yaml``.

KWOK only simulates what a Node object says, so a pool is nothing but Node objects
with the right capacity, labels, taints and price. Rendering them is pure, so the
unit tests check the shapes without a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

POOL_LABEL = "lepton.ai/pool"
PRICE_ANNOTATION = "lepton.ai/hourly-price-usd"
KWOK_MANAGED_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_MANAGED_VALUE = "fake"
DEFAULT_POOLS_FILE = Path(__file__).resolve().parents[1] / "cluster" / "pools.yaml"


class Taint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    value: str = ""
    effect: str


class Pool(BaseModel):
    """One simulated node pool: ``count`` identical nodes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    count: int = Field(ge=1, le=500)
    capacity: dict[str, str]
    hourly_price_usd: float = Field(alias="hourlyPriceUSD", ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)

    def node_names(self) -> list[str]:
        return [f"{self.name}-{index}" for index in range(self.count)]


class PoolsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pools: list[Pool]


def load_pools(path: Path = DEFAULT_POOLS_FILE) -> list[Pool]:
    return PoolsFile.model_validate(yaml.safe_load(path.read_text())).pools


def node_manifest(pool: Pool, node_name: str) -> dict[str, Any]:
    """The Node object KWOK will keep Ready for one member of ``pool``."""
    labels = {
        "kubernetes.io/hostname": node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        POOL_LABEL: pool.name,
        **pool.labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "labels": labels,
            "annotations": {
                KWOK_MANAGED_ANNOTATION: KWOK_MANAGED_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
                PRICE_ANNOTATION: f"{pool.hourly_price_usd}",
            },
        },
        "spec": {"taints": [taint.model_dump() for taint in pool.taints]},
        "status": {
            "capacity": dict(pool.capacity),
            "allocatable": dict(pool.capacity),
        },
    }


def node_manifests(pools: list[Pool]) -> list[dict[str, Any]]:
    return [node_manifest(pool, name) for pool in pools for name in pool.node_names()]
