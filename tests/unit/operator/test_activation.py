"""Scale from zero on the operator's side: the demand signal, the replica floor, the
Service's route to the activator, the held burst's report, the revisit that ends the
floor, and the pass the activator's annotation starts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from lepton_operator.activation import (
    MIN_HOLD_S,
    ActivatorRef,
    activation_status,
    cold_start_s,
    demand,
    floor_replicas,
    held_burst,
    routes_to_activator,
    too_cold,
    warm_reason,
    weigh_zero,
    zero_reason,
)
from lepton_operator.api.spec import Scaling, parse_spec
from lepton_operator.api.status import LeptonModelStatus, read_status, status_wire
from lepton_operator.controller import Controller, slim
from lepton_operator.reconcile import Reconciler
from lepton_operator.reconcile.state import PassState
from lepton_operator.resources import serving
from lepton_operator.resources.activator import activator_slice, ready_addresses, slice_name
from lepton_operator.revisit import revisit_after
from lepton_operator.timestamps import format_time

DEMAND = "lepton.ai/demand-at"
WAIT = "lepton.ai/activator-wait"


def test_demand_holds_a_replica_for_the_idle_window_at_least_a_minute() -> None:
    signal = demand({DEMAND: "1000.5"}, scale_down_window_s=300)
    assert signal is not None and signal.until_s == 1300.5
    short = demand({DEMAND: "1000"}, scale_down_window_s=10)
    assert short is not None and short.until_s == 1000 + MIN_HOLD_S
    assert demand({}, 300) is None
    assert demand({DEMAND: "soon"}, 300) is None  # hand-written nonsense fails nothing
    assert demand({DEMAND: "nan"}, 300) is None


def test_the_floor_is_one_replica_while_demand_holds_on_a_model_that_may_go_to_zero() -> None:
    signal = demand({DEMAND: "1000"}, 60)
    assert floor_replicas(0, True, signal, 1010) == 1
    assert floor_replicas(0, True, signal, 1060) == 0  # the hold is over
    assert floor_replicas(0, True, None, 1010) == 0
    assert floor_replicas(2, True, signal, 1010) == 2  # never lowers the spec's own
    assert floor_replicas(0, False, signal, 1010) == 0


def test_the_service_goes_to_the_activator_only_at_zero_and_only_when_one_runs() -> None:
    assert routes_to_activator(True, 0, ["10.0.0.5"])
    assert not routes_to_activator(True, 1, ["10.0.0.5"])  # replicas Ready: straight there
    assert not routes_to_activator(False, 0, ["10.0.0.5"])  # may not go to zero
    assert not routes_to_activator(True, 0, [])  # no activator runs


def test_the_activator_slice_joins_the_models_service_on_its_http_and_grpc_ports() -> None:
    slices = [
        {
            "endpoints": [
                {"addresses": ["10.0.0.6"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.5"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.7"], "conditions": {"ready": False}},
            ]
        }
    ]
    addresses = ready_addresses(slices)
    assert addresses == ["10.0.0.5", "10.0.0.6"]
    obj = activator_slice("digits", "ml", addresses, 8000)
    labels = obj["metadata"]["labels"]
    assert obj["metadata"]["name"] == slice_name("digits") == "digits-activator"
    assert labels["kubernetes.io/service-name"] == "digits"
    # Not the EndpointSlice controller's: it leaves the slice alone.
    assert labels["endpointslice.kubernetes.io/managed-by"] == "lepton-operator"
    assert labels["lepton.ai/component"] == "activator"
    # Triton's HTTP and gRPC both reach the activator (gRPC on the port after HTTP's),
    # under the Service's own port names, which is how kube-proxy pairs them.
    assert obj["ports"] == [
        {"name": "http", "port": 8000, "protocol": "TCP"},
        {"name": "grpc", "port": 8001, "protocol": "TCP"},
    ]
    service_ports = {p["name"] for p in serving.service("digits", "ml")["spec"]["ports"]}
    assert {p["name"] for p in obj["ports"]} <= service_ports
    assert [e["addresses"] for e in obj["endpoints"]] == [["10.0.0.5"], ["10.0.0.6"]]


def test_the_held_burst_reaches_status_and_a_bad_report_is_ignored() -> None:
    report = {"at": 1000, "held": 20, "p50Ms": 9000, "p95Ms": 14000, "maxMs": 15000}
    burst = held_burst({WAIT: json.dumps({**report, "timedOut": 0, "refused": 0})})
    assert burst is not None and burst.held == 20 and burst.p95_ms == 14000
    assert held_burst({WAIT: "{"}) is None
    assert held_burst({WAIT: json.dumps({"held": 1})}) is None
    status = activation_status(True, demand({DEMAND: "1000"}, 60), {WAIT: json.dumps(report)})
    dumped = status.model_dump(by_alias=True, exclude_none=True)
    assert dumped["routedToActivator"] is True
    assert dumped["demandAt"] == format_time(1000.0)
    assert dumped["holdUntil"] == format_time(1060.0)
    assert dumped["lastBurst"]["p50Ms"] == 9000


def test_a_pass_is_asked_for_when_the_demand_hold_ends() -> None:
    status = LeptonModelStatus.model_validate(
        {
            "phase": "Ready",
            "activation": {"routedToActivator": False, "holdUntil": format_time(1060.0)},
        }
    )
    assert revisit_after(status, 1000.0) == 60.5
    assert revisit_after(status, 1070.0) is None


class _Writer:
    def patch_model_status(self, *_: Any) -> None:
        return None

    def post_event(self, *_: Any) -> None:
        return None


def _model(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "digits", "namespace": "ml", "generation": 3}
    if annotations:
        meta["annotations"] = {**annotations, "unrelated": "x"}
    return {"metadata": meta, "spec": {}, "status": {"observedGeneration": 3}}


def test_the_activators_annotation_starts_a_pass_at_once_and_a_status_write_does_not() -> None:
    controller = Controller(object(), _Writer(), sampler=None)  # type: ignore[arg-type]
    controller.model_event(None, _model())
    controller.queue._pop_due()
    controller.queue.done(("ml", "digits"))
    controller.model_event("MODIFIED", _model())  # a status write: nothing new
    assert len(controller.queue) == 0
    controller.model_event("MODIFIED", _model({DEMAND: "1000.0"}))
    assert len(controller.queue) == 1  # demand arrived: the pass runs now
    controller.queue._pop_due()
    controller.queue.done(("ml", "digits"))
    controller.model_event("MODIFIED", _model({DEMAND: "1000.0"}))
    assert len(controller.queue) == 0  # the same signal again is no news
    assert slim(_model({DEMAND: "1"}))["metadata"]["annotations"] == {DEMAND: "1"}


def test_a_cold_start_longer_than_a_request_may_wait_keeps_one_warm_replica() -> None:
    # Declared: provisioning plus load time; observed when longer (the planner's lead).
    assert cold_start_s(60.0, 4.5, []) == 64.5
    assert cold_start_s(5.0, 2.0, [12.0, 9.0]) == 12.0
    assert too_cold(12.0, 10) and not too_cold(12.0, 15) and not too_cold(12.0, None)
    assert floor_replicas(0, True, None, 0.0, too_cold=True) == 1
    assert floor_replicas(0, False, None, 0.0, too_cold=True) == 0  # not a zero model
    assert "maxColdStartSeconds 10 s" in warm_reason(12.0, 10)


def _load(pattern: list[tuple[float, float]], interval: float = 15.0) -> list[list[float]]:
    """[time, req/s] samples every ``interval`` s: (seconds, rate) runs in order."""
    samples, t = [], 0.0
    for seconds, rate in pattern:
        for _ in range(int(seconds // interval)):
            t += interval
            samples.append([t, rate])
    return samples


def test_zero_is_weighed_against_a_warm_replica_over_the_remembered_load() -> None:
    # Two bursts of 10 req/s for 5 min, 20 min apart; idle window 5 min, cold start 60 s.
    bursts = _load([(300, 10.0), (1200, 0.0), (300, 10.0), (1200, 0.0), (300, 10.0)])
    weighed = weigh_zero(bursts, idle_window_s=300, cold_s=60)
    assert weighed.wakes == 2  # the first burst found the replica of the memory's start
    # Each wake: 60 s of 10 req/s wait, of 3 x 300 s x 10 req/s in all.
    assert weighed.cold_share == pytest.approx(2 * 600 / 9000)
    assert weighed.saved_s == pytest.approx(2 * (1200 - 300 - 60))
    assert not weighed.costs_more

    # Gaps of 6 min: zero for 1 min, then a 60 s cold start paid for: nothing saved.
    short = _load([(300, 10.0), (360, 0.0), (300, 10.0), (360, 0.0), (300, 10.0)])
    weighed = weigh_zero(short, idle_window_s=300, cold_s=60)
    assert weighed.wakes == 2 and weighed.costs_more
    assert floor_replicas(0, True, None, 0.0, too_cold=weighed.costs_more) == 1
    assert "2 idle gaps" in zero_reason(weighed, 60)
    # One short gap is an event, not yet a pattern: zero stays allowed.
    once = weigh_zero(_load([(300, 10.0), (360, 0.0), (300, 10.0)]), 300, 60)
    assert once.wakes == 1 and once.saved_s <= 0 and not once.costs_more


def test_steady_or_missing_load_never_counts_as_a_wake() -> None:
    steady = weigh_zero(_load([(3600, 2.0)]), idle_window_s=300, cold_s=60)
    assert (steady.wakes, steady.cold_share, steady.costs_more) == (0, 0.0, False)
    assert weigh_zero([], 300, 60).wakes == 0
    idle = weigh_zero(_load([(3600, 0.0)]), 300, 60)
    assert (idle.wakes, idle.costs_more) == (0, False)  # nothing to weigh: zero it is
    # Samples missing while at zero (no Triton to scrape) are quiet, not load.
    sparse = [[0.0, 5.0], [15.0, 5.0], [30.0, 5.0], [1830.0, 5.0], [1845.0, 5.0]]
    weighed = weigh_zero(sparse, idle_window_s=300, cold_s=60)
    assert weighed.wakes == 1 and weighed.saved_s == pytest.approx(1800 - 15 - 300 - 60)


def test_status_shows_what_zero_costs_the_slo() -> None:
    weighed = weigh_zero(
        _load([(300, 10.0), (1200, 0.0), (300, 10.0)]), idle_window_s=300, cold_s=60
    )
    status = activation_status(False, None, {}, weighed)
    assert status.wakes == 1 and status.cold_share == pytest.approx(600 / 6000)


def test_the_spec_takes_a_cold_start_limit_only_within_bounds() -> None:
    scaling = Scaling.model_validate(
        {"minReplicas": 0, "scaleToZero": True, "maxColdStartSeconds": 30}
    )
    assert scaling.max_cold_start_seconds == 30
    assert Scaling.model_validate({}).max_cold_start_seconds is None
    with pytest.raises(ValidationError):
        Scaling.model_validate({"maxColdStartSeconds": -1})


class _SliceKube:
    """What the routing step asks of Kubernetes: the activator's slices, and apply, get
    and delete of the model's own slice."""

    def __init__(self, activator_ready: list[str]) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.activator = {
            "metadata": {"labels": {"kubernetes.io/service-name": "lepton-activator"}},
            "endpoints": [
                {"addresses": [a], "conditions": {"ready": True}} for a in activator_ready
            ],
        }

    def list_labelled(self, api_version: str, kind: str, namespace: str, selector: str) -> list:
        assert (kind, namespace, selector) == (
            "EndpointSlice",
            "lepton-system",
            "kubernetes.io/service-name=lepton-activator",
        )
        return [self.activator]

    def apply(self, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        labels = {**obj["metadata"]["labels"]}
        meta = {
            **obj["metadata"],
            "labels": labels,
            "ownerReferences": [{"uid": owner["metadata"]["uid"]}],
        }
        self.objects[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = {
            **obj,
            "metadata": meta,
        }
        return obj

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))

    def delete_owned(self, obj: dict[str, Any], owner_uid: str) -> bool:
        assert obj["kind"] == "EndpointSlice"
        return self.objects.pop((obj["metadata"]["namespace"], obj["metadata"]["name"])) is not None


def _route(
    kube: _SliceKube, config: Any, raw_spec: dict[str, Any], ready: int, status: dict
) -> None:
    reconciler = Reconciler(
        kube,  # type: ignore[arg-type]
        config,
        clock=lambda: "2026-12-05T00:00:00Z",
        activator=ActivatorRef("lepton-system", "lepton-activator", 8000),
    )
    body = {
        "metadata": {"name": "digits", "namespace": "ml", "uid": "uid-1", "annotations": {}},
        "spec": raw_spec,
    }
    state = PassState.start(read_status(status), 1, "2026-12-05T00:00:00Z")
    reconciler._route(body, parse_spec(raw_spec), ready, None, state)
    status.clear()
    status.update(status_wire(state.status))


def test_at_zero_the_service_points_at_the_activator_and_leaves_it_once_ready(spec, config):
    raw = {**spec, "scaling": {"minReplicas": 0, "scaleToZero": True}}
    kube = _SliceKube(["10.244.0.7", "10.244.0.8"])
    status: dict[str, Any] = {}
    _route(kube, config, raw, 0, status)
    [(key, made)] = kube.objects.items()
    assert key == ("ml", "digits-activator")
    assert [e["addresses"] for e in made["endpoints"]] == [["10.244.0.7"], ["10.244.0.8"]]
    assert status["activation"] == {"routedToActivator": True}
    _route(kube, config, raw, 1, status)  # a replica is Ready: straight to it
    assert kube.objects == {}
    assert status["activation"] == {"routedToActivator": False}


def test_without_scale_to_zero_or_a_running_activator_nothing_points_at_it(spec, config):
    kube = _SliceKube([])
    status: dict[str, Any] = {}
    _route(kube, config, {**spec, "scaling": {"minReplicas": 0, "scaleToZero": True}}, 0, status)
    assert kube.objects == {} and status["activation"] == {"routedToActivator": False}
    kube = _SliceKube(["10.244.0.7"])
    status = {"activation": {"routedToActivator": True}}
    _route(kube, config, {**spec, "scaling": {"minReplicas": 1}}, 0, status)
    assert kube.objects == {} and "activation" not in status  # switched off: cleaned up
