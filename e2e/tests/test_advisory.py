"""Advisory mode on the real local cluster (issue 11): a real build of the digits CNN,
served by a real tritonserver from the pinned variant, while the operator only
recommends; then switched to active under a bounded load.

What it shows: the recommendation reaches status and Events, and changes with the
spec, while the pinned Deployment keeps its resourceVersion (the operator wrote
nothing to it); switching to active applies the recommendation through the usual
rollout, and the load generator, calling the one model name a client knows and
following the Service's endpoints as kube-proxy would, sees no failed request.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_e2e import models
from lepton_e2e.fixtures import (
    Kube,
    installed_operator,
    models_claim,
    namespace_cache,
    suite_cache,
    wait_for,
)
from lepton_e2e.lanes import Lane
from lepton_e2e.load import (
    ConstantLoad,
    sample_inputs,
    served_sample,
    service_endpoints,
    steady_endpoints,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUILDER = "ghcr.io/lepton-ai/lepton-builder:0.1.0"
NAMESPACE = "advisory-e2e"
DEPLOYMENT = "digits-cpu-standard"
PINNED = {"variant": "torchscript", "pool": "cpu-standard", "replicas": 2}
LOAD_RPS = 4.0


@pytest.fixture(scope="module")
def operator(kube: Kube, lane: Lane) -> Iterator[None]:
    with installed_operator(kube, BUILDER, lane=lane):
        yield


def _digits() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(
        yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    )
    # Two shared cores run Triton, the builder, the operator and the load here.
    doc["spec"]["slo"] = {"p95LatencyMs": 200}
    doc["spec"]["mode"] = "advisory"
    doc["spec"]["pinned"] = dict(PINNED)
    return doc


def _status(kube: Kube) -> dict[str, Any]:
    status: dict[str, Any] = kube.get("lm", "digits", NAMESPACE).get("status") or {}
    return status


def _events(kube: Kube, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.list("events", NAMESPACE)
        if e["involvedObject"].get("kind") == "LeptonModel"
        and e["involvedObject"].get("name") == "digits"
        and e.get("reason") == reason
    ]


def _resource_version(kube: Kube) -> str:
    version: str = kube.get("deployment", DEPLOYMENT, NAMESPACE)["metadata"]["resourceVersion"]
    return version


@pytest.fixture(scope="module")
def advised(kube: Kube, operator: None) -> Iterator[dict[str, Any]]:
    """The digits model in advisory mode, its pinned serving Ready."""
    kube.kubectl("create", "namespace", NAMESPACE)
    try:
        claim = models_claim(kube, NAMESPACE)
        trained = models.train_digits(claim)
        # The suite's shared namespace cache: the other module that builds the digits
        # example reuses this build, or this one reuses its.
        namespace_cache(kube, NAMESPACE, suite_cache())
        assert trained.test_accuracy > 0.9
        kube.apply(_digits(), namespace=NAMESPACE)

        def ready() -> dict[str, Any] | None:
            status = _status(kube)
            assert status.get("phase") not in ("Failed", "Degraded"), status
            ok = status.get("phase") == "Ready" and status.get("recommendation")
            return status if ok else None

        yield wait_for(ready, timeout=600, interval=3, what="digits Ready on its pin")
    finally:
        kube.kubectl(
            *("delete", "lm", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=100s"),
            check=False,
        )
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_advisory_mode_recommends_while_the_pinned_deployment_stays_as_it_is(
    kube: Kube, advised: dict[str, Any]
) -> None:
    decision, recommendation = advised["decision"], advised["recommendation"]
    assert {k: decision[k] for k in PINNED} == PINNED
    assert decision["reason"].startswith("pinned by spec.pinned (advisory mode)")
    # One replica of the cheapest accepted variant meets a 200 ms SLO at no traffic:
    # half the pinned spend.
    assert recommendation["replicas"] == 1, recommendation
    assert recommendation["savingUSDPerHour"] == pytest.approx(0.34), recommendation
    (event,) = _events(kube, "Recommendation")
    assert f"of {recommendation['variant']} on cpu-standard" in event["message"]
    lm = kube.kubectl("get", "lm", "digits", "-n", NAMESPACE, "-o", "wide").stdout
    print(lm)
    assert "advisory" in lm and recommendation["variant"] in lm

    wait_for(steady_endpoints(kube, "digits", NAMESPACE), timeout=120, what="steady endpoints")
    before = _resource_version(kube)
    # A spec change that changes the recommendation (a floor of two replicas): a new
    # recommendation and its Event, and still not one write to the Deployment.
    kube.kubectl(
        *("patch", "lm", "digits", "-n", NAMESPACE, "--type=merge"),
        *("-p", json.dumps({"spec": {"scaling": {"minReplicas": 2}}})),
    )
    changed = wait_for(
        lambda: (lambda s: s if (s.get("recommendation") or {}).get("replicas") == 2 else None)(
            _status(kube)
        ),
        timeout=60,
        what="the recommendation of two replicas",
    )
    assert changed["recommendation"]["savingUSDPerHour"] == pytest.approx(0.0)
    wait_for(lambda: len(_events(kube, "Recommendation")) == 2, timeout=30, what="its Event")
    time.sleep(10)  # two more passes of the 5 s timer, were any under way
    assert _resource_version(kube) == before
    assert {k: _status(kube)["decision"][k] for k in PINNED} == PINNED
    kube.kubectl(
        *("patch", "lm", "digits", "-n", NAMESPACE, "--type=merge"),
        *("-p", json.dumps({"spec": {"scaling": {"minReplicas": 1}}})),
    )
    wait_for(
        lambda: (_status(kube).get("recommendation") or {}).get("replicas") == 1,
        timeout=60,
        what="the recommendation of one replica again",
    )
    assert _resource_version(kube) == before


def test_switching_to_active_applies_the_recommendation_with_no_failed_request(
    kube: Kube, advised: dict[str, Any]
) -> None:
    wait_for(steady_endpoints(kube, "digits", NAMESPACE), timeout=120, what="steady endpoints")
    status = _status(kube)
    recommended = status["recommendation"]
    reference = served_sample(status, NAMESPACE, "digits")
    # A client as a real one is: the one model name, "digits", whichever variant serves,
    # sent to the Service's ready endpoints as kube-proxy spreads them.
    assert reference["model"] == "digits"
    with ConstantLoad(
        lambda: service_endpoints(kube, "digits", NAMESPACE),
        "digits",
        sample_inputs(reference),
        LOAD_RPS,
        ["logits"],
    ) as load:
        time.sleep(3)
        switched = time.monotonic()
        # What a team does once it trusts the planner: mode active, the pin removed.
        kube.kubectl(
            *("patch", "lm", "digits", "-n", NAMESPACE, "--type=merge"),
            *("-p", json.dumps({"spec": {"mode": "active", "pinned": None}})),
        )

        def applied() -> dict[str, Any] | None:
            status = _status(kube)
            decision = status.get("decision") or {}
            done = (
                status.get("phase") == "Ready"
                and (decision.get("variant"), decision.get("replicas"))
                == (recommended["variant"], recommended["replicas"])
                and steady_endpoints(kube, "digits", NAMESPACE)() is not None
            )
            return status if done else None

        status = wait_for(applied, timeout=240, interval=2, what="the recommendation served")
        took = time.monotonic() - switched
        time.sleep(3)  # requests to the new pods only, before the load stops
    samples = load.report.samples
    print(
        f"advisory -> active: {recommended['variant']} x{recommended['replicas']} serving "
        f"{took:.0f} s after the switch; {load.report.failed} of {len(samples)} requests failed"
    )
    assert samples and load.report.failed == 0
    assert "recommendation" not in status
    assert all(c["type"] != "Recommended" for c in status["conditions"])
    assert not status["decision"]["reason"].startswith("pinned")
