"""Shared data for the operator's unit tests: a valid spec and an operator config."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lepton_operator.config import OperatorConfig

VALID_SPEC: dict[str, Any] = {
    "model": {
        "uri": "pvc://models/minilm",
        "format": "safetensors",
        "inputs": [
            {"name": "input_ids", "dtype": "int64", "shape": [-1]},
            {"name": "attention_mask", "dtype": "int64", "shape": [-1]},
        ],
        "outputs": [{"name": "last_hidden_state", "dtype": "fp32", "shape": [-1, 384]}],
    },
    "slo": {"p95LatencyMs": 50},
}

CONFIG: dict[str, Any] = {
    "prometheus": {"url": "http://prometheus:9090"},
    "images": {"builder": "example/builder:1", "triton": "example/triton:1"},
    "pools": [
        {
            "name": "cpu-standard",
            "nodeSelector": {"lepton.ai/pool": "cpu-standard"},
            "hourlyPriceUSD": 0.34,
            "resources": {"cpu": "2", "memory": "4Gi"},
        },
        {
            "name": "gpu-l4",
            "nodeSelector": {"lepton.ai/pool": "gpu-l4"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "accelerator": {"resource": "nvidia.com/gpu", "count": 1, "type": "nvidia-l4"},
            "hourlyPriceUSD": 0.81,
        },
    ],
}


@pytest.fixture
def spec() -> dict[str, Any]:
    return copy.deepcopy(VALID_SPEC)


@pytest.fixture
def config() -> OperatorConfig:
    return OperatorConfig.model_validate(copy.deepcopy(CONFIG))
