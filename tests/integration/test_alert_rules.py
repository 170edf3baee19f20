"""The chart's alert rules and dashboard, checked by the real Prometheus tooling.

``promtool`` (built from the same Prometheus 3 module as the e2e Prometheus) parses the
rules and runs their unit tests (rules/tests.yaml: series in, alerts out, at the times
and with the text a person reads). The dashboard's queries have no promtool command of
their own, so each is parsed by turning it into a recording rule.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_e2e import binaries

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "lepton-operator"
RULES = CHART / "rules" / "lepton-models.rules.yaml"
DASHBOARD = CHART / "dashboards" / "lepton-models.json"

# Grafana's template variables, replaced by what they expand to.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$namespace": "team-a",
    "$model": ".+",
}


@pytest.fixture(scope="module")
def promtool() -> Path:
    return binaries.ensure_tool(binaries.PROMTOOL)


def run(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_rules_are_valid(promtool):
    result = run(promtool, "check", "rules", RULES.name, cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool):
    result = run(promtool, "test", "rules", "tests.yaml", cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_a_broken_rule_is_caught(promtool, tmp_path):
    """The check above can fail: a typo in PromQL is reported with the rule's name."""
    rules = yaml.safe_load(RULES.read_text())
    rules["groups"][1]["rules"][0]["expr"] = "max by (namespace (lepton_model_phase)"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", "broken.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "LeptonModelOverBudget" in result.stdout + result.stderr


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    queries += [
        (f"annotation {a['name']}", a["expr"])
        for a in dashboard["annotations"]["list"]
        if a.get("expr")
    ]
    return queries


def test_every_dashboard_query_parses(promtool, tmp_path):
    queries = dashboard_queries()
    assert len(queries) >= 10
    rules = []
    for index, (_title, expr) in enumerate(queries):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    result = run(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboard_read_only_metrics_the_operator_exports():
    """A renamed metric must fail here, not leave a panel empty or an alert silent."""
    from lepton_operator import metrics

    exported = set()
    for family in (*metrics.PER_MODEL, metrics.RECONCILE_SECONDS, metrics.BUILD_SECONDS):
        for described in family.describe():
            suffixes = {
                "counter": ("_total",),
                "gauge": ("",),
                "histogram": ("_bucket", "_sum", "_count"),
            }[described.type]
            exported |= {described.name + suffix for suffix in suffixes}
    rules = yaml.safe_load(RULES.read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    texts = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    texts += [expr for _title, expr in dashboard_queries()]
    dashboard = json.loads(DASHBOARD.read_text())
    texts += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for text in texts for name in re.findall(r"\blepton_[a-z0-9_:]+", text)}
    assert used - recorded <= exported, sorted(used - recorded - exported)
    assert {"lepton_model_observed_p95_ms", "lepton_model_slo_p95_ms"} <= used
