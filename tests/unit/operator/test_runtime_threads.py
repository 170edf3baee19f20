"""A replica's runtime threads come from its pool's CPU request (resources.threads)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from lepton_operator.api.spec import LeptonModelSpec, PoolSpec
from lepton_operator.config import OperatorConfig
from lepton_operator.resources import names
from lepton_operator.resources.threads import MAX_THREADS, cpu_cores, runtime_threads


@pytest.mark.parametrize(
    ("quantity", "cores"),
    [
        ("2", Decimal(2)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("+3", Decimal(3)),
        (".5", Decimal("0.5")),
        ("2e0", Decimal(2)),
        ("4k", Decimal(4000)),
        ("1Ki", Decimal(1024)),
        ("250000u", Decimal("0.25")),
        ("two", None),
        ("", None),
    ],
)
def test_cpu_quantities_read_in_cores(quantity: str, cores: Decimal | None) -> None:
    assert cpu_cores(quantity) == cores


def _pool(**resources: str) -> PoolSpec:
    return PoolSpec.model_validate({"name": "p", "hourlyPriceUSD": 1, "resources": resources})


@pytest.mark.parametrize(
    ("cpu", "threads"),
    [("2", 2), ("2500m", 2), ("500m", 1), ("1", 1), ("16", 16), ("1M", MAX_THREADS)],
)
def test_threads_are_the_cpu_request_rounded_down_at_least_one(cpu: str, threads: int) -> None:
    assert runtime_threads(_pool(cpu=cpu, memory="1Gi")) == threads


def test_a_pool_without_a_cpu_request_leaves_the_runtime_its_default() -> None:
    assert runtime_threads(_pool()) == 0
    assert runtime_threads(_pool(memory="4Gi")) == 0
    assert runtime_threads(_pool(cpu="0")) == 0


def test_a_pools_cpu_request_decides_the_build_and_its_memory_does_not(
    spec: dict[str, Any], config: OperatorConfig
) -> None:
    """The threads are in the build (profile and config.pbtxt): more CPUs build again."""
    parsed = LeptonModelSpec.model_validate(spec)
    pools = list(config.pools)
    assert any(runtime_threads(p) for p in pools)
    before = names.build_hash(parsed, pools, "builder:1")
    more_memory = [
        p.model_copy(update={"resources": {**p.resources, "memory": "64Gi"}}) for p in pools
    ]
    assert names.build_hash(parsed, more_memory, "builder:1") == before
    more_cpu = [p.model_copy(update={"resources": {**p.resources, "cpu": "8"}}) for p in pools]
    assert names.build_hash(parsed, more_cpu, "builder:1") != before
