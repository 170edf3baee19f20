"""docs/argocd/health.lua on recorded LeptonModel statuses, in Lua 5.1 and 5.4.

Each fixture in fixtures/ is one LeptonModel as the apiserver would hand it to Argo CD
(status written by the operator's reconcile pass; how each was made is its first
comment), the moment it is judged at (``now``), and the health Argo CD must show.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_operator.api.spec import parse_spec
from lepton_operator.api.status import ConditionType, LeptonModelStatus, Phase

HERE = Path(__file__).resolve().parent
SCRIPT = (HERE.parents[2] / "docs" / "argocd" / "health.lua").read_text()
FIXTURES = sorted((HERE / "fixtures").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _fixture(name: str) -> dict[str, Any]:
    return _load(HERE / "fixtures" / f"{name}.yaml")


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_recorded_status_maps_to_its_health(path, run_health):
    fixture = _load(path)
    assert run_health(fixture["object"], fixture["now"]) == fixture["health"]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixtures_are_shaped_as_the_operator_writes_them(path):
    """The API models forbid unknown fields: a fixture with a key the operator does not
    write (or a renamed one) fails here, not silently in the Lua."""
    obj = _load(path)["object"]
    assert (obj["apiVersion"], obj["kind"]) == ("lepton.ai/v1alpha1", "LeptonModel")
    parse_spec(obj["spec"])
    if "status" not in obj:
        return
    status = LeptonModelStatus.model_validate(obj["status"])
    assert status.phase in set(Phase)
    assert {c.type for c in status.conditions} <= {t.value for t in ConditionType}
    assert status.observed_generation is not None
    assert status.observed_generation <= obj["metadata"]["generation"]


def test_every_health_state_is_covered():
    states = {_load(path)["health"]["status"] for path in FIXTURES}
    assert states == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_the_script_reads_only_phases_and_conditions_the_operator_writes():
    phases = set(re.findall(r'phase [~=]= "(\w+)"', SCRIPT))
    kinds = set(re.findall(r'(?:current|any_generation)\("(\w+)"\)', SCRIPT))
    assert phases == {p.value for p in Phase}
    assert kinds == {t.value for t in ConditionType}


@pytest.mark.parametrize(
    ("since", "now", "scale_up_window", "expected"),
    [
        # The window is 300 s plus spec.scaling.scaleUpStabilizationSeconds.
        ("2026-11-24T00:00:30Z", "2026-11-24T00:05:29Z", 0, "Progressing"),
        ("2026-11-24T00:00:30Z", "2026-11-24T00:05:30Z", 0, "Degraded"),
        ("2026-11-24T00:00:30Z", "2026-11-24T00:10:29Z", 300, "Progressing"),
        ("2026-11-24T00:00:30Z", "2026-11-24T00:10:30Z", 300, "Degraded"),
        # Across a year, into a leap day, and out of a plain February.
        ("2026-12-31T23:57:01Z", "2027-01-01T00:02:00Z", 0, "Progressing"),
        ("2026-12-31T23:57:00Z", "2027-01-01T00:02:00Z", 0, "Degraded"),
        ("2028-02-29T23:56:01Z", "2028-03-01T00:01:00Z", 0, "Progressing"),
        ("2028-02-29T23:56:00Z", "2028-03-01T00:01:00Z", 0, "Degraded"),
        ("2027-02-28T23:56:00Z", "2027-03-01T00:01:00Z", 0, "Degraded"),
        ("2027-02-28T23:56:01Z", "2027-03-01T00:01:00Z", 0, "Progressing"),
    ],
)
def test_an_slo_miss_degrades_only_past_its_window(
    since, now, scale_up_window, expected, run_health
):
    obj = _fixture("slo-missed-recently")["object"]
    _condition(obj, "SLOMet")["lastTransitionTime"] = since
    obj["spec"]["scaling"]["scaleUpStabilizationSeconds"] = scale_up_window
    result = run_health(obj, now)
    assert result["status"] == expected
    assert result["message"].startswith("PredictedOverSLO: no option meets p95 50 ms")
    assert f"since {since}" in result["message"]


def test_the_window_reads_argo_cds_real_clock(run_health):
    obj = _fixture("slo-missed-recently")["object"]
    _condition(obj, "SLOMet")["lastTransitionTime"] = "2000-01-01T00:00:00Z"
    assert run_health(obj)["status"] == "Degraded"
    _condition(obj, "SLOMet")["lastTransitionTime"] = "2999-01-01T00:00:00Z"
    assert run_health(obj)["status"] == "Progressing"


def test_a_degraded_cause_outranks_a_pause(run_health):
    """spec.replicas 0 pauses serving, not a failed build or an invalid spec."""
    for name in ("build-failed", "no-gpu-pool", "no-plan-over-budget"):
        fixture = _fixture(name)
        obj = copy.deepcopy(fixture["object"])
        obj["spec"]["replicas"] = 0
        obj["spec"]["scaling"].update(minReplicas=0, scaleToZero=True)
        assert run_health(obj, fixture["now"]) == fixture["health"]


def test_within_budget_false_without_overspend_is_judged_as_the_slo_miss(run_health):
    """The operator also writes WithinBudget=False when no option meets the SLO at any
    price (slo-missed-* fixtures, $0.68/h of $5.00/h): that is an SLO miss with its
    window, not overspend; overspend (over-budget) is Degraded at once."""
    fixture = _fixture("slo-missed-recently")
    within = _condition(fixture["object"], "WithinBudget")
    assert within["status"] == "False"
    assert run_health(fixture["object"], fixture["now"])["status"] == "Progressing"


def test_conditions_of_an_older_generation_are_not_read(run_health):
    fixture = _fixture("over-budget")
    obj = fixture["object"]
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] = 2
    for condition in obj["status"]["conditions"]:
        if condition["type"] != "WithinBudget":
            condition["observedGeneration"] = 2
    # What is left is the SLO miss (since 00:00:30), still inside its window at 00:05:00.
    result = run_health(obj, fixture["now"])
    assert result["status"] == "Progressing"
    assert result["message"].startswith("PredictedOverSLO: the budget $0.70/h cannot meet")


def test_an_unknown_phase_is_unknown_not_healthy(run_health):
    obj = _fixture("ready")["object"]
    obj["status"]["phase"] = "Hibernating"
    assert run_health(obj) == {"status": "Unknown", "message": "Unknown phase Hibernating"}


@pytest.mark.parametrize(
    "script",
    [
        'return string.format("%d", 1)',
        'return ("x"):upper()',
        "return math.floor(1.5)",
        'return io.open("/etc/hostname")',
        'return os.getenv("HOME")',
        'return require("string").rep("x", 2)',
    ],
)
def test_the_sandbox_has_argo_cds_libraries_only(script, run_script):
    """What makes the tests above trustworthy: a script that needs a library Argo CD
    does not open fails here too."""
    with pytest.raises(Exception) as raised:
        run_script(script, {})
    assert raised.typename == "LuaError"
