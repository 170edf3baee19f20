"""`config.watchNamespaces`: kopf's namespace patterns, read the same by the config, the
chart's schema, kopf and the fleet sampler."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from lepton_operator.config import OperatorConfig
from lepton_operator.watched import are_names, watches

SCHEMA = Path(__file__).resolve().parents[3] / "charts" / "lepton-operator" / "values.schema.json"
ACCEPTED = [
    "team-a",
    "e2e-b-*",
    "!e2e-b-*",
    "team-*, !team-x",
    "team-*,!team-x,team-x1",
    "a?c",
    "*",
]
REFUSED = ["Team", "", "!", "a,,b", "-a", "a b", "team-a,", "team_a", "a/b", "x" * 254]


def _config(config: OperatorConfig, patterns: list[str]) -> OperatorConfig:
    raw = config.model_dump(mode="json", by_alias=True)
    return OperatorConfig.model_validate({**raw, "watchNamespaces": patterns})


@pytest.mark.parametrize(
    ("namespace", "patterns", "watched"),
    [
        ("anything", [], True),
        ("team-a", ["team-a"], True),
        ("team-ab", ["team-a"], False),
        ("e2e-b-1f", ["!e2e-b-*"], False),  # a leading exclusion: every namespace but those
        ("e2e-1f", ["!e2e-b-*"], True),
        ("team-y", ["team-*, !team-x"], True),
        ("team-x", ["team-*, !team-x"], False),
        ("other", ["team-*, !team-x"], False),
        ("team-x", ["team-*, !team-x", "team-x"], True),  # any item watching it is enough
        ("abc", ["a?c"], True),
        ("abbc", ["a?c"], False),
    ],
)
def test_kopf_decides_which_namespaces_are_watched(
    namespace: str, patterns: list[str], watched: bool
) -> None:
    assert watches(namespace, patterns) is watched


def test_only_plain_names_go_to_prometheus_as_names():
    assert are_names([]) and are_names(["team-a", "team-b"])
    assert not are_names(["team-a", "team-*"]) and not are_names(["!kube-system"])


def test_the_config_accepts_names_and_patterns_and_names_the_field_otherwise(config):
    for pattern in ACCEPTED:
        assert _config(config, [pattern]).watch_namespaces == [pattern]
    for pattern in REFUSED:
        with pytest.raises(ValidationError, match="watchNamespaces"):
            _config(config, [pattern])


def test_the_charts_schema_accepts_exactly_what_the_config_accepts():
    item = json.loads(SCHEMA.read_text())["properties"]["config"]["properties"]["watchNamespaces"]
    pattern = re.compile(item["items"]["pattern"])
    for accepted in ACCEPTED:
        assert pattern.search(accepted) and len(accepted) <= item["items"]["maxLength"]
    for refused in REFUSED:
        assert not (pattern.search(refused) and len(refused) <= item["items"]["maxLength"])
