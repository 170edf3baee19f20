"""Pools file -> KWOK Node objects."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lepton_e2e.netns import Network
from lepton_e2e.pools import Pool, load_pools, node_manifest


def test_shipped_pools_have_a_cpu_and_a_tainted_gpu_pool():
    pools = {pool.name: pool for pool in load_pools()}
    assert set(pools) >= {"cpu-standard", "gpu-l4"}
    gpu = node_manifest(pools["gpu-l4"], "gpu-l4-0")
    assert gpu["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert gpu["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    ]
    assert gpu["metadata"]["labels"]["lepton.ai/pool"] == "gpu-l4"
    assert gpu["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert "nvidia.com/gpu" not in node_manifest(pools["cpu-standard"], "c")["status"]["capacity"]


def test_a_typo_in_the_pools_file_is_rejected():
    with pytest.raises(ValidationError, match="hourlyPrice"):
        Pool.model_validate({"name": "x", "count": 1, "capacity": {}, "hourlyPrice": 1})


def test_pod_addresses_stay_inside_the_network_and_off_the_gateway():
    network = Network(bridge="b", cidr="10.244.0.0/16")
    assert network.gateway == "10.244.0.1"
    assert network.pod_address(0) == "10.244.1.1"
    with pytest.raises(ValueError, match="outside"):
        network.pod_address(70_000)
