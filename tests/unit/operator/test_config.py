"""The operator's configuration: validated once at start, errors name the field."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from lepton_operator.__main__ import main
from lepton_operator.config import ConfigError, OperatorConfig, load_config
from lepton_operator.election import may_hold
from lepton_operator.resources.build import BUILD_DEADLINE_SECONDS

CHART_VALUES = Path(__file__).resolve().parents[3] / "charts" / "lepton-operator" / "values.yaml"


def test_the_charts_default_config_is_valid():
    config = OperatorConfig.model_validate(yaml.safe_load(CHART_VALUES.read_text())["config"])
    assert {p.name for p in config.pools} == {"cpu-standard", "gpu-l4"}
    assert config.pool("gpu-l4").accelerator.resource == "nvidia.com/gpu"


def test_a_typo_names_the_field(tmp_path, config):
    raw = config.model_dump(mode="json", by_alias=True)
    raw["pools"][0]["hourlyPrice"] = raw["pools"][0].pop("hourlyPriceUSD")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"pools\.0\.hourlyPriceUSD: Field required"):
        load_config(path)


def test_duplicate_pools_and_unreadable_files_are_errors(tmp_path, config):
    raw = config.model_dump(mode="json", by_alias=True)
    raw["pools"].append(raw["pools"][0])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="repeated: cpu-standard"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_the_operator_exits_2_on_a_bad_config_without_starting(tmp_path, monkeypatch, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("pools: []\n")
    monkeypatch.setenv("LEPTON_CONFIG", str(path))
    assert main(["--log-format", "plain"]) == 2
    assert "operator config" in capsys.readouterr().err


def test_a_lease_is_taken_when_free_ours_or_expired_and_never_from_a_live_holder():
    now = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.UTC)
    fresh = now - datetime.timedelta(seconds=5)
    stale = now - datetime.timedelta(seconds=16)
    assert may_hold(None, None, 15, "a", now)
    assert may_hold("a", fresh, 15, "a", now)
    assert not may_hold("b", fresh, 15, "a", now)
    assert may_hold("b", stale, 15, "a", now)


def test_the_build_deadline_defaults_to_three_hours_and_the_chart_agrees(config):
    chart = OperatorConfig.model_validate(yaml.safe_load(CHART_VALUES.read_text())["config"])
    assert config.builds.deadline_seconds == BUILD_DEADLINE_SECONDS == 3 * 3600
    assert chart.builds.deadline_seconds == BUILD_DEADLINE_SECONDS
    raw = config.model_dump(mode="json", by_alias=True)
    raw["builds"] = {"deadlineSeconds": 0}
    with pytest.raises(ValueError, match=r"builds\.deadlineSeconds"):
        OperatorConfig.model_validate(raw)


def test_the_source_cache_claim_is_a_kubernetes_name_or_empty(tmp_path, config):
    chart = OperatorConfig.model_validate(yaml.safe_load(CHART_VALUES.read_text())["config"])
    assert chart.builds.source_cache_claim == config.builds.source_cache_claim
    raw = config.model_dump(mode="json", by_alias=True)
    for off in ("", "team-a.cache"):
        raw["builds"] = {"sourceCacheClaim": off}
        assert OperatorConfig.model_validate(raw).builds.source_cache_claim == off
    raw["builds"] = {"sourceCacheClaim": "Source_Cache"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"builds\.sourceCacheClaim"):
        load_config(path)
