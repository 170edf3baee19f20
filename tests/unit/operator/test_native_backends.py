"""The serving image's native Triton backends: configured once (images.tritonNativeBackends),
passed to each build Job, and part of what decides a build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from lepton_operator.api.spec import parse_spec
from lepton_operator.config import OperatorConfig
from lepton_operator.resources import build, names

CHART_VALUES = Path(__file__).resolve().parents[3] / "charts" / "lepton-operator" / "values.yaml"


def _request(job: dict[str, Any]) -> dict[str, Any]:
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    request: dict[str, Any] = json.loads(args[args.index("--request") + 1])
    return request


def test_the_default_is_the_production_images_backends(config):
    assert config.images.triton_native_backends == ["onnxruntime", "pytorch"]
    chart = OperatorConfig.model_validate(yaml.safe_load(CHART_VALUES.read_text())["config"])
    assert chart.images.triton_native_backends == list(build.PRODUCTION_NATIVE_BACKENDS)


def test_a_python_only_server_is_an_empty_list_and_typos_are_refused(config):
    raw = config.model_dump(mode="json", by_alias=True)
    raw["images"]["tritonNativeBackends"] = []
    assert OperatorConfig.model_validate(raw).images.triton_native_backends == []
    for wrong in (["onnx"], ["pytorch", "pytorch"], ["python"]):
        raw["images"]["tritonNativeBackends"] = wrong
        with pytest.raises(ValidationError, match="tritonNativeBackends"):
            OperatorConfig.model_validate(raw)


def test_the_build_job_tells_the_builder_the_serving_backends(spec, config):
    parsed = parse_spec(spec)
    pool = config.pools[0]
    job = build.job("minilm", "ns", parsed, pool, "abc123", "builder:1", 60, 1.0, ["pytorch"])
    assert _request(job)["servingBackends"] == ["pytorch"]
    both = build.job(
        "minilm", "ns", parsed, pool, "abc123", "builder:1",
        serving_backends=config.images.triton_native_backends,
    )  # fmt: skip
    assert _request(both)["servingBackends"] == ["onnxruntime", "pytorch"]


def test_without_native_backends_the_request_is_as_before(spec, config):
    parsed = parse_spec(spec)
    job = build.job("minilm", "ns", parsed, config.pools[0], "abc123", "builder:1")
    assert "servingBackends" not in _request(job)
    name = names.build_job("minilm", config.pools[0].name, "abc123")
    assert build.build_request("minilm", parsed, config.pools[0], "abc123", name) == _request(job)


def test_the_backends_decide_the_build_only_when_there_are_any(spec, config):
    parsed = parse_spec(spec)
    before = names.build_hash(parsed, config.pools, "builder:1")
    assert names.build_hash(parsed, config.pools, "builder:1", []) == before
    native = names.build_hash(parsed, config.pools, "builder:1", ["onnxruntime", "pytorch"])
    assert native != before
    assert names.build_hash(parsed, config.pools, "builder:1", ["pytorch", "onnxruntime"]) == (
        native
    )
    assert names.build_hash(parsed, config.pools, "builder:1", ["onnxruntime"]) != native
