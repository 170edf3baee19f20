"""Which nodes each pool can place pods on (issue 26: prerequisites checked, not assumed)."""

from __future__ import annotations

from typing import Any

from lepton_operator.api.spec import PoolSpec
from lepton_operator.preflight import (
    PoolNodes,
    nodes_verdict,
    places_on,
    pool_nodes,
    slim_node,
    slim_storage_class,
    storage_verdict,
)

CPU = PoolSpec.model_validate(
    {
        "name": "cpu-standard",
        "nodeSelector": {"lepton.ai/pool": "cpu-standard"},
        "hourlyPriceUSD": 0.34,
    }
)
GPU = PoolSpec.model_validate(
    {
        "name": "gpu-l4",
        "nodeSelector": {"lepton.ai/pool": "gpu-l4"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "accelerator": {"resource": "nvidia.com/gpu", "count": 1, "type": "nvidia-l4"},
        "hourlyPriceUSD": 0.81,
    }
)


def _node(
    name: str,
    labels: dict[str, str],
    taints: list[dict[str, str]] | None = None,
    gpus: str | None = None,
    cordoned: bool = False,
) -> dict[str, Any]:
    """A Node as the apiserver returns it, through the operator's slim copy; a cordoned
    one with the taint the node controller adds to it (as a real cluster's has)."""
    allocatable = {"cpu": "8", "memory": "32Gi", **({"nvidia.com/gpu": gpus} if gpus else {})}
    cordon = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    return slim_node(
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "taints": (taints or []) + (cordon if cordoned else []),
                "unschedulable": cordoned,
            },
            "status": {"allocatable": allocatable},
        }
    )


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def test_a_pool_places_on_the_nodes_it_selects_and_whose_taints_it_tolerates() -> None:
    gpu_node = _node("g1", {"lepton.ai/pool": "gpu-l4"}, [GPU_TAINT], gpus="1")
    assert places_on(GPU, gpu_node)
    assert not places_on(CPU, gpu_node)  # another pool's label
    tainted_cpu = _node("c1", {"lepton.ai/pool": "cpu-standard"}, [GPU_TAINT])
    assert not places_on(CPU, tainted_cpu)  # selected, but a taint it does not tolerate
    soft = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    assert places_on(CPU, _node("c2", {"lepton.ai/pool": "cpu-standard"}, [soft]))


def test_equal_tolerations_compare_the_value() -> None:
    pool = PoolSpec.model_validate(
        {
            "name": "p",
            "tolerations": [{"key": "team", "value": "ml", "effect": "NoSchedule"}],
            "hourlyPriceUSD": 1,
        }
    )
    assert places_on(pool, _node("a", {}, [{"key": "team", "value": "ml", "effect": "NoSchedule"}]))
    assert not places_on(
        pool, _node("b", {}, [{"key": "team", "value": "x", "effect": "NoSchedule"}])
    )


def test_counts_cordons_and_accelerators_per_pool() -> None:
    nodes = [
        _node("c1", {"lepton.ai/pool": "cpu-standard"}),
        _node("c2", {"lepton.ai/pool": "cpu-standard"}, cordoned=True),
        _node("g1", {"lepton.ai/pool": "gpu-l4"}, [GPU_TAINT], gpus="4"),
    ]
    assert pool_nodes([CPU, GPU], nodes) == [
        PoolNodes("cpu-standard", nodes=2, cordoned=1, accelerators=None),
        PoolNodes("gpu-l4", nodes=1, cordoned=0, accelerators=4),
    ]
    ok, reason, _ = nodes_verdict(pool_nodes([CPU, GPU], nodes))
    assert (ok, reason) == (True, "PoolsHaveNodes")


def test_a_pool_without_a_schedulable_node_is_named() -> None:
    """The chart's default pools on a cluster without GPU nodes, and a GPU pool whose
    nodes have no GPU to allocate, and a CPU pool whose only node is cordoned."""
    nodes = [
        _node("c1", {"lepton.ai/pool": "cpu-standard"}, cordoned=True),
        _node("g1", {"lepton.ai/pool": "gpu-l4"}, [GPU_TAINT], gpus="0"),
    ]
    ok, reason, message = nodes_verdict(pool_nodes([CPU, GPU], nodes))
    assert (ok, reason) == (False, "PoolWithoutNodes")
    assert "cpu-standard, gpu-l4" in message
    ok, _, message = nodes_verdict(pool_nodes([CPU, GPU], []))
    assert not ok and "cpu-standard, gpu-l4" in message


def _class(name: str, default: bool = False, mode: str = "Immediate") -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    body = {
        "metadata": {"name": name, "annotations": annotations},
        "provisioner": "ebs.csi.aws.com",
        "volumeBindingMode": mode,
    }
    return slim_storage_class(body)


def test_the_build_volume_is_checked_against_the_storage_classes() -> None:
    gp3, standard = _class("gp3", mode="WaitForFirstConsumer"), _class("standard", True)
    ok, reason, message = storage_verdict("gp3", [gp3, standard], "Pending", "m-models")
    assert (ok, reason) == (True, "StorageClassFound") and "WaitForFirstConsumer" in message
    ok, reason, message = storage_verdict("fast", [gp3, standard], "Pending", "m-models")
    assert (ok, reason) == (False, "StorageClassNotFound")
    assert "fast" in message and "gp3, standard" in message and "m-models" in message
    assert storage_verdict("", [gp3, standard], "Pending", "m")[:2] == (
        True,
        "DefaultStorageClass",
    )
    assert storage_verdict("", [gp3], "Pending", "m")[:2] == (False, "NoDefaultStorageClass")
    # Bound is bound: a volume provisioned by hand binds a claim no class serves.
    assert storage_verdict("", [], "Bound", "m")[:2] == (True, "VolumeBound")
    assert storage_verdict("fast", [], "Bound", "m")[:2] == (True, "VolumeBound")
