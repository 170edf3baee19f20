"""The whole serving loop, real parts throughout: a real build of MiniLM, served by a
real tritonserver started from the Deployment's own pod template, canaried by the
operator through tritonclient, loaded through the Service's port mapping, scraped by a
real Prometheus through Kubernetes service discovery, and read back by the operator
with PromQL into ``status.live``; last, Triton's response cache turned on and its hits
seen in Triton's counters and in ``status.live.cacheHitRate``.
"""

from __future__ import annotations

import calendar
import copy
import json
import math
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lepton_e2e import models
from lepton_e2e.capacity_check import Check, served_capacity
from lepton_e2e.cluster import state_root
from lepton_e2e.fixtures import (
    Kube,
    crash_container,
    installed_operator,
    models_claim,
    wait_for,
)
from lepton_e2e.lanes import Lane, lane_of
from lepton_e2e.load import (
    ConstantLoad,
    infer,
    sample_inputs,
    served_sample,
    service_endpoints,
    service_targets,
    serving_pods,
    steady_endpoints,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUILDER = "ghcr.io/lepton-ai/lepton-builder:0.1.0"
NAMESPACE = lane_of(__file__).namespace("serving")  # watched by its lane's operator
RATE_WINDOW_S = 30
# cpu-standard's provisioningSeconds in the chart's default pools, which the tests install.
POOL_PROVISIONING_S = 60.0
LOAD_RPS = 6.0
POLL_S = 3.0  # how often the response-cache test reads the pods' hit counters
STEP_RPS = 40.0  # more than one replica carries within the scaling test's 40 ms here


@pytest.fixture(scope="module")
def operator(kube: Kube, prometheus: Any, lane: Lane) -> Iterator[None]:
    with installed_operator(
        kube,
        BUILDER,
        f"config.prometheus.url={prometheus.url}",
        f"config.prometheus.rateWindow={RATE_WINDOW_S}s",
        "config.prometheus.timeoutSeconds=3",
        lane=lane,
    ):
        yield


def _minilm() -> dict[str, Any]:
    doc = copy.deepcopy(yaml.safe_load((REPO / "examples" / "minilm.yaml").read_text()))
    doc["spec"]["model"]["uri"] = "pvc://models/minilm"
    doc["spec"]["optimization"] = {
        "variants": ["onnx", "onnx-int8"],
        "batchSizes": [1, 8],
        "calibrationUri": "pvc://models/minilm-calibration.npz",
        "accuracy": {"metric": "cosine", "tolerance": 0.99},
    }
    # Two shared cores run Triton, Prometheus, the operator and the load here.
    doc["spec"]["slo"] = {"p95LatencyMs": 250}
    doc["spec"]["pools"] = [
        {
            "name": "cpu-standard",
            "nodeSelector": {"lepton.ai/pool": "cpu-standard"},
            "hourlyPriceUSD": 0.34,
            "resources": {"cpu": "2", "memory": "4Gi"},
        }
    ]
    return doc


def _status(kube: Kube) -> dict[str, Any]:
    status: dict[str, Any] = kube.get("lm", "minilm", NAMESPACE).get("status") or {}
    return status


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


@pytest.fixture(scope="module")
def served(kube: Kube, operator: None) -> Iterator[dict[str, Any]]:
    kube.kubectl("create", "namespace", NAMESPACE)
    try:
        claim = models_claim(kube, NAMESPACE)
        models.copy_minilm(claim)
        kube.apply(_minilm(), namespace=NAMESPACE)

        def ready() -> dict[str, Any] | None:
            status = _status(kube)
            assert status.get("phase") not in ("Failed", "Degraded"), status
            return status if status.get("phase") == "Ready" else None

        yield wait_for(ready, timeout=600, interval=3, what="minilm Ready")
    finally:
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s")


def _reference(status: dict[str, Any]) -> dict[str, Any]:
    return served_sample(status, NAMESPACE, "minilm")


def test_the_chosen_variant_passed_its_canary_on_a_real_triton_pod(
    kube: Kube, served: dict[str, Any]
) -> None:
    canary = _condition(served, "CanaryPassed")
    assert (canary.get("status"), canary.get("reason")) == ("True", "CanaryPassed"), canary
    assert served["decision"]["variant"] in canary["message"]
    (pod,) = kube.list("pods", NAMESPACE, "lepton.ai/model=minilm,lepton.ai/component=triton")
    gate = next(c for c in pod["status"]["conditions"] if c["type"] == "lepton.ai/canary")
    assert gate["status"] == "True"
    assert pod["spec"]["containers"][0]["command"] == ["tritonserver"]


def test_the_service_answers_like_the_fp32_baseline(kube: Kube, served: dict[str, Any]) -> None:
    endpoints = service_endpoints(kube, "minilm", NAMESPACE)
    assert len(endpoints) == 1 and endpoints[0].endswith(":8000")
    reference = _reference(served)
    inputs = sample_inputs(reference)
    answer = infer(endpoints[0], reference["model"], inputs)["last_hidden_state"]
    baseline = reference["baseline:last_hidden_state"]
    mask = inputs["attention_mask"].astype(bool)
    got, want = answer[mask], baseline[mask]
    cosine = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert cosine.min() >= 0.99


def test_live_figures_agree_with_what_clients_measured(
    kube: Kube, served: dict[str, Any], prometheus: Any
) -> None:
    endpoints = service_endpoints(kube, "minilm", NAMESPACE)
    reference = _reference(served)
    inputs = sample_inputs(reference)
    with ConstantLoad(
        endpoints, reference["model"], inputs, LOAD_RPS, ["last_hidden_state"]
    ) as load:
        settle = load.start_time + 2 * RATE_WINDOW_S

        def observed_after_settling() -> dict[str, Any] | None:
            live = _status(kube).get("live") or {}
            stamp = live.get("time")
            if not stamp or _epoch(stamp) < settle or live.get("p95Ms") is None:
                return None
            return dict(live)

        live = wait_for(observed_after_settling, timeout=180, interval=2, what="status.live")
    at = _epoch(live["time"])
    client_rate = load.report.rate(at - RATE_WINDOW_S, at)
    client_p95 = load.report.p95_ms(at - 2 * RATE_WINDOW_S, at)
    print(f"client {client_rate:.2f} rps p95 {client_p95:.1f} ms; status.live {live}")
    status = _status(kube)
    _print_capacity_model_error(kube, status, client_rate, client_p95)
    assert load.report.failed == 0
    assert live["requestRate"] == pytest.approx(client_rate, rel=0.2)
    # Triton's own p95 (what status shows) leaves out what only the clients spend: HTTP
    # on both sides and, on a shared machine, the load generator's own scheduling. So
    # it may sit well below the clients' figure (71 ms against 96 ms seen, with other
    # work on the cores; 406 against 679 with a benchmark beside the suite) but never
    # far above it. The lower bound is there for a unit or a window read wrong (a
    # factor of 1,000, or an idle window's zero), not for the clients' own overhead.
    assert client_p95 / 4 <= live["p95Ms"] <= 1.2 * client_p95
    assert _condition(status, "MetricsAvailable").get("status") == "True"
    assert status["p95Ms"] == live["p95Ms"]  # the printer column shows what was observed


def _print_capacity_model_error(
    kube: Kube, status: dict[str, Any], rate: float, client_p95: float
) -> None:
    """Issue 25's check of the capacity model against real Triton
    (``capacity_check``): the operator's own model, uncorrected, predicts the p95 at the
    rate the clients sent on the Ready replicas; the clients measured what Triton
    served. A measurement, printed: the planner's latency correction exists because
    this error is not small on a shared machine."""
    capacity = served_capacity(kube, NAMESPACE, "minilm", status)
    ready = sum(int(n) for n in (status["live"].get("replicasByPool") or {}).values()) or 1
    check = Check(rate, ready, capacity.p95_ms(rate, ready), client_p95)
    print(
        f"capacity model: {check.line(capacity)}; the planner's correction "
        f"x{(status.get('planner') or {}).get('correction') or 1.0}"
    )
    assert math.isfinite(check.predicted_ms) and check.predicted_ms > 0


def _reaction_s(prometheus: Any, status: dict[str, Any], since: float) -> float | None:
    """Seconds from Prometheus first holding the load the scale-up was decided on (the
    rate of the sample the decision was made with, within 5%: rate() read at other
    instants differs by its extrapolation) to the decision: what the operator adds to
    Prometheus's own rate window. The decision's time is stamped to the second, floored,
    so the range runs 2 s past it."""
    decided = _epoch(status["decision"]["time"])
    rates = [r for t, r in (status.get("planner") or {}).get("rates") or [] if t <= decided + 1]
    if not rates:
        return None
    promql = (
        f'sum(rate(nv_inference_request_success{{namespace="{NAMESPACE}",model="minilm"}}'
        f"[{RATE_WINDOW_S}s]))"
    )
    held = prometheus.query_range(promql, since, decided + 2)
    seen = [t for t, v in held if v >= rates[-1] * 0.95]
    return max(decided - seen[0], 0.0) if seen else None


def test_traffic_scales_the_real_deployment_up_and_back_down(
    kube: Kube, served: dict[str, Any], prometheus: Any
) -> None:
    """The live planner on real figures: Triton's metrics through Prometheus, a real
    Deployment scaled, real pods canaried; reaction times are printed.

    The load is one a single replica cannot carry within the SLO on this machine. Since
    the guard judges token states by their mean (issue 24), MiniLM serves as onnx, whose
    one replica carried 25 req/s at p95 46 ms (the planner, corrected x2.3, predicted
    50 ms): within the 100 ms SLO this test once set, so no scale-up came; on a quiet
    machine even a 40 ms SLO held at 25 req/s (predicted 39.8 ms). So: a 40 ms SLO, met
    at rest by one replica, and a 40 req/s step (predicted about 54 ms on one onnx
    replica as corrected then, more on fp32).
    (At rest an SLO no count can meet keeps one replica since bfbcdba; it once kept the
    pool's whole room.)"""
    kube.kubectl(
        "patch",
        "lm",
        "minilm",
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        '{"spec": {"slo": {"p95LatencyMs": 40}, "scaling": {"minReplicas": 1, '
        '"maxReplicas": 3, "scaleDownStabilizationSeconds": 30}}}',
    )
    # The previous test's load may have left a second replica (its p95 on a busy CI
    # machine can push the corrected model over); settling back to one takes the rate
    # window, the peak floor (the pool's 60 s provisioning delay) and the 30 s
    # stabilization window.
    wait_for(
        lambda: (
            _status(kube).get("observedGeneration")
            == kube.get("lm", "minilm", NAMESPACE)["metadata"]["generation"]
            and _status(kube)["decision"]["replicas"] == 1
            and _deployment_ready_replicas(kube, served) == 1
        ),
        timeout=240,
        interval=2,
        what="the new SLO taken, one replica",
    )
    # The new SLO may have moved the plan to another variant, and the load may move it
    # again: Triton serves each variant under its own name, so the load follows the
    # Service's endpoints and asks each pod for the model it serves.
    wait_for(steady_endpoints(kube, "minilm", NAMESPACE), timeout=120, what="steady endpoints")
    reference = _reference(_status(kube))
    inputs = sample_inputs(reference)

    def ready_replicas() -> int:
        return _deployment_ready_replicas(kube, served)

    serving_before = {p["metadata"]["name"] for p in serving_pods(kube, "minilm", NAMESPACE)}
    with ConstantLoad(
        lambda: service_targets(kube, "minilm", NAMESPACE),
        reference["model"],
        inputs,
        STEP_RPS,
        ["last_hidden_state"],
        workers=8,
    ) as load:
        try:
            decided_up = (
                wait_for(
                    lambda: _status(kube)["decision"]["replicas"] >= 2 and time.time(),
                    timeout=120,
                    interval=1,
                    what="a scale-up decision",
                )
                - load.start_time
            )
        except AssertionError as error:
            # Seen only in whole-suite CI runs, never alone: say what the planner saw.
            status = _status(kube)
            raise AssertionError(
                f"{error}; load: {len(load.report.samples)} requests, "
                f"{load.report.failed} failed; decision: {status.get('decision')}; "
                f"live: {status.get('live')}; planner: {status.get('planner')}"
            ) from error
        reaction = _reaction_s(prometheus, _status(kube), load.start_time)
        up = (
            wait_for(
                lambda: ready_replicas() >= 2 and time.time(),
                timeout=240,  # a cold start of fp32 MiniLM on two busy cores
                interval=1,
                what="a second Ready replica",
            )
            - load.start_time
        )
        scaled = _status(kube)["decision"]
        # The operator's part of the scale-up: the new pod, made in the decision's pass,
        # against the moment the test saw the decision (polled each second).
        created = min(
            _epoch(p["metadata"]["creationTimestamp"])
            for p in serving_pods(kube, "minilm", NAMESPACE)
            if p["metadata"]["name"] not in serving_before
        )
        acted = created - (load.start_time + decided_up)
    stopped = time.time()
    # The peak floor holds the load of the last cold start: the pool's 60 s provisioning
    # delay plus the variant's load time, or the cold start observed when longer (a busy
    # machine starts Triton slower).
    lead = _longest_cold_start_s(_status(kube), POOL_PROVISIONING_S)
    down_bound = RATE_WINDOW_S + lead + 30 + 30
    down = (
        wait_for(
            lambda: _status(kube)["decision"]["replicas"] == 1 and time.time(),
            timeout=down_bound + 30,
            interval=1,
            what="the scale-down decision",
        )
        - stopped
    )
    wait_for(
        lambda: ready_replicas() == 1 and len(service_endpoints(kube, "minilm", NAMESPACE)) == 1,
        timeout=60,
        what="one replica left behind the Service",
    )
    print(
        f"scale-up decided {decided_up:.0f} s after the load began, "
        f"{reaction if reaction is None else round(reaction, 1)} s after Prometheus first "
        "held the load it was decided on (bound: a 15 s sampling interval + 5 s, and 2 s "
        f"for the decision's 1 s clock); a new pod {acted:.0f} s after the decision, "
        f"Ready {up:.0f} s after the load began; "
        f"scale-down decided {down:.0f} s after it stopped (bound {down_bound:.0f} s, cold "
        f"start {lead:.0f} s); decision at load: {scaled}"
    )
    assert load.report.failed == 0
    # One evaluation = the rate window Prometheus needs (30 s) + a refresh (15 s) + a
    # pass (5 s); the pool's provisioning delay is 60 s (nodes are simulated here).
    assert decided_up <= RATE_WINDOW_S + 15 + 5 + 15
    assert reaction is not None and reaction <= 15 + 5 + 2
    # The pod is made in the decision's pass (stamped to the second, the decision seen
    # within a 1 s poll); its cold start is the cluster's and the machine's (35-150 s
    # measured here), printed, not asserted.
    assert -3 <= acted <= 5
    # Within the rate window, the peak floor (the load of the last cold start: capacity
    # released takes that long to come back) and the 30 s stabilization window (and a
    # refresh and a pass) after the load stops: 40-112 s measured. No lower bound: once
    # two replicas serve well, the observed latency can correct the model so far that one
    # replica is already preferred while the load runs, and the window then started
    # before the load stopped (seen on CI: decided 25 s after). The window itself is
    # unit-tested on the planner, and the wake-ups that let it age with no traffic too.
    assert down <= down_bound
    assert "req/s" in scaled["reason"]


def _longest_cold_start_s(status: dict[str, Any], provisioning_s: float) -> float:
    """The longest cold start the planner may hold a peak for: per accepted variant, the
    provisioning delay plus its load time, or the cold start observed on the cluster."""
    observed = [
        float(c["seconds"]) for c in status.get("coldStarts") or [] if c["pool"] == "cpu-standard"
    ]
    declared = [
        provisioning_s + float(v.get("loadSeconds") or 0.0)
        for v in status.get("variants") or []
        if v.get("accepted") and v.get("pool") == "cpu-standard"
    ]
    return max([provisioning_s, *declared, *observed])


def test_prometheus_down_leaves_serving_untouched_and_is_reported(
    kube: Kube, served: dict[str, Any], prometheus: Any
) -> None:
    # Load goes only to pods that stay: the previous test's scale-down may still be
    # draining one, and a client of a terminating pod measures the harness, not us.
    endpoints = wait_for(
        steady_endpoints(kube, "minilm", NAMESPACE), timeout=120, what="steady endpoints"
    )
    reference = _reference(_status(kube))
    inputs = sample_inputs(reference)
    with ConstantLoad(endpoints, reference["model"], inputs, 2.0, ["last_hidden_state"]) as load:
        wait_for(
            lambda: (
                _status(kube).get("phase") == "Ready"
                and _status(kube)["decision"]["replicas"] == _status(kube).get("replicas")
            ),
            timeout=120,
            interval=2,
            what="a settled decision",
        )
        prometheus.stop()
        try:
            down = wait_for(
                lambda: (
                    _condition(_status(kube), "MetricsAvailable").get("status") == "False"
                    and _condition(_status(kube), "MetricsAvailable")
                ),
                timeout=60,
                what="MetricsAvailable=False",
            )
            assert down["reason"] == "PrometheusUnreachable", down
            # What serves now is what the last pass with metrics decided; a pass that
            # still read Prometheus may land after stop(), so the decision to hold is
            # the one in place when the first pass found Prometheus gone.
            went = _epoch(down["lastTransitionTime"])
            # A second pass without metrics, so "held" covers more than one.
            status = wait_for(
                lambda: _epoch(_status(kube)["live"]["time"]) > went and _status(kube),
                timeout=90,
                interval=2,
                what="a second pass without metrics",
            )
            # Held: no scale-down (nor up) on missing data.
            decision = status["decision"]
            assert _epoch(decision["time"]) < went, (decision, down)
            assert status["phase"] == "Ready" and status["replicas"] == decision["replicas"]
        finally:
            prometheus.start()
            prometheus.wait_ready()
        wait_for(
            lambda: _condition(_status(kube), "MetricsAvailable").get("status") == "True",
            timeout=90,
            what="MetricsAvailable=True again",
        )
    assert load.report.samples and load.report.failed == 0
    # MetricsAvailable=False has its own Warning Event, with the cause as its reason.
    events = [(e.get("type"), e.get("reason")) for e in kube.list("events", NAMESPACE)]
    assert ("Warning", "PrometheusUnreachable") in events


def _container_story(kube: Kube, pod_name: str) -> str:
    """What a pod's containers and endpoints look like now, with the tail of its
    Triton's log: what a timed-out restart leaves to read once the cluster is gone."""
    pod = kube.get("pod", pod_name, NAMESPACE)
    statuses = [
        {k: c.get(k) for k in ("name", "ready", "restartCount", "state", "lastState")}
        for c in pod["status"].get("containerStatuses") or []
    ]
    log = state_root() / "pods" / f"{NAMESPACE}_{pod_name}" / "triton.log"
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
    endpoints = steady_endpoints(kube, "minilm", NAMESPACE)()
    runner_log = state_root() / "logs" / "pod-runner.log"
    runner = [
        line
        for line in (
            runner_log.read_text(errors="replace") if runner_log.exists() else ""
        ).splitlines()
        if pod_name in line
    ][-10:]
    return (
        f"phase {pod['status'].get('phase')} ({pod['status'].get('reason')}: "
        f"{pod['status'].get('message')}); containers {statuses}; steady endpoints "
        f"{endpoints}; the pod runner on it: {runner}; the end of triton.log: {tail}"
    )


def test_a_triton_process_killed_under_load_is_restarted_and_the_other_replica_serves(
    kube: Kube, served: dict[str, Any]
) -> None:
    """One of two replicas' tritonserver is SIGKILLed (a segfault, the OOM killer) under
    a bounded load sent as a Service client would: the container restarts in place, the
    other replica answers throughout, and requests fail only while the dead one is still
    listed as an endpoint. The operator keeps its variant and pool: a crash is not a new
    plan (it may add a replica while one is down, as it would for any lost capacity)."""
    kube.kubectl(
        "patch", "lm", "minilm", "-n", NAMESPACE, "--type=merge",
        "-p", '{"spec": {"scaling": {"minReplicas": 2}}}',
    )  # fmt: skip
    try:
        wait_for(
            lambda: len(steady_endpoints(kube, "minilm", NAMESPACE)() or []) == 2,
            timeout=240,
            interval=2,
            what="two steady replicas",
        )
        before = _status(kube)
        pods = {p["metadata"]["name"]: p for p in serving_pods(kube, "minilm", NAMESPACE)}
        victim = sorted(pods)[0]
        reference = _reference(_status(kube))
        rate = 4.0
        with ConstantLoad(
            lambda: service_targets(kube, "minilm", NAMESPACE),
            reference["model"],
            sample_inputs(reference),
            rate,
            ["last_hidden_state"],
        ) as load:
            time.sleep(5)
            killed = time.time()
            crash_container(NAMESPACE, victim, "triton")

            def back() -> dict[str, Any] | None:
                try:
                    pod = kube.get("pod", victim, NAMESPACE)
                except AssertionError as error:
                    # Seen once in a whole-suite run: the victim deleted, not restarted
                    # (a rollout?). Say what the operator had decided.
                    status = _status(kube)
                    raise AssertionError(
                        f"{error}; decision: {status.get('decision')}; before: "
                        f"{before.get('decision')}; builds: {status.get('builds')}"
                    ) from error
                statuses = pod["status"].get("containerStatuses") or []
                restarted = any(c.get("restartCount", 0) >= 1 for c in statuses)
                # Its own endpoint listed again. The planner may have added a replica
                # while one was down (seen: three endpoints, the victim's among them).
                endpoints = steady_endpoints(kube, "minilm", NAMESPACE)() or []
                listed = any(e.split(":")[0] == pod["status"].get("podIP") for e in endpoints)
                return pod if restarted and listed else None

            try:
                wait_for(back, timeout=180, interval=1, what="the killed container back in service")
            except AssertionError as error:
                raise AssertionError(f"{error}; {_container_story(kube, victim)}") from error
            recovered = time.time()
            time.sleep(5)
        serving_after = {p["metadata"]["name"] for p in serving_pods(kube, "minilm", NAMESPACE)}
        # Phase Deploying while one replica restarts; back to Ready once the operator's
        # next pass sees both (seconds later on a busy machine: 5 s was not always enough).
        after = wait_for(
            lambda: (status := _status(kube))["phase"] == "Ready" and status,
            timeout=90,
            interval=2,
            what="the model Ready again after the restart",
        )
    finally:
        kube.kubectl(
            "patch", "lm", "minilm", "-n", NAMESPACE, "--type=merge",
            "-p", '{"spec": {"scaling": {"minReplicas": 1}}}',
        )  # fmt: skip
        # Settled again, so the next test starts from a steady model: one replica, or
        # two while the planner holds the second by expected cost (the load just sent
        # and the previous test's step are rises that may recur; seen on CI at 6b0c231).
        _wait_settled(kube)
    samples = load.report.samples
    failed = [s for s in samples if not s.ok]
    # Requests fail only until the endpoint controller drops the dead pod and the
    # client follows (1 s here): at most what the victim's share of 10 s would be.
    bound = int(rate / 2 * 10)
    # The survivor answered in every 2-second window while the victim was away.
    gaps = [
        t
        for t in range(int(killed), int(recovered), 2)
        if not any(s.ok for s in load.report.window(t, t + 2))
    ]
    print(
        f"\ntriton SIGKILLed on {victim} under {rate:g} req/s: {len(failed)} of "
        f"{len(samples)} requests failed (bound {bound}), back in service after "
        f"{recovered - killed:.1f} s, windows without an answer: {len(gaps)}"
    )
    assert len(failed) <= bound
    assert not gaps, gaps
    assert all(s.done < recovered for s in failed), "failures after recovery"
    # Restarted in place, not replaced: both pods still serve (a replica the planner
    # added while one was down may serve beside them); variant, pool and phase unchanged.
    assert set(pods) <= serving_after, (set(pods), serving_after)
    assert after["phase"] == "Ready"
    assert (after["decision"]["variant"], after["decision"]["pool"]) == (
        before["decision"]["variant"],
        before["decision"]["pool"],
    )


def _wait_settled(kube: Kube, timeout: float = 240) -> list[str]:
    """Wait until the operator has taken the spec's generation and the Service lists
    exactly as many steady replicas as its decision names; on timeout say what the
    decision was and why."""

    def settled() -> list[str] | None:
        model = kube.get("lm", "minilm", NAMESPACE)
        status = model.get("status") or {}
        if status.get("observedGeneration") != model["metadata"]["generation"]:
            return None
        endpoints = steady_endpoints(kube, "minilm", NAMESPACE)()
        wanted = (status.get("decision") or {}).get("replicas")
        return endpoints if endpoints is not None and len(endpoints) == wanted else None

    try:
        endpoints: list[str] = wait_for(
            settled, timeout=timeout, interval=2, what="the model settled again"
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; decision: {_status(kube).get('decision')}") from error
    return endpoints


def _deployment_ready_replicas(kube: Kube, served: dict[str, Any]) -> int:
    deployment = f"minilm-{served['decision']['pool']}"
    status = kube.get("deployment", deployment, NAMESPACE).get("status") or {}
    return int(status.get("readyReplicas") or 0)


def _epoch(stamp: str) -> float:
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def test_a_pod_that_answers_wrongly_never_serves_and_the_model_rolls_back(
    kube: Kube, served: dict[str, Any]
) -> None:
    """A served artifact goes bad on the volume (as a botched copy or a bad rebuild
    would); the next pod to load it fails its canary, never gets traffic, and the
    operator falls back to the next-best variant, saying so in status and Events."""
    status = _status(kube)
    bad = status["decision"]["variant"]
    folder = (
        state_root() / "pvcs" / NAMESPACE / "minilm-models" / status["buildHash"] / "cpu-standard"
    )
    _perturb(folder / bad / "minilm" / "1")
    # However many replicas the planner keeps now (the previous tests' load may have
    # left two), replacing one brings up a pod that loads the bad artifact.
    old = wait_for(
        lambda: serving_pods(kube, "minilm", NAMESPACE) or None, timeout=60, what="a serving pod"
    )[0]
    kube.kubectl("delete", "pod", old["metadata"]["name"], "-n", NAMESPACE, "--wait=false")

    def rolled_back() -> dict[str, Any] | None:
        """Served by another variant whose new pod passed its canary. Phase Ready alone
        can come first: during the rolling update, pods loaded before the artifact went
        bad still count as Ready (seen on CI with two replicas)."""
        current = _status(kube)
        decision = current.get("decision") or {}
        if decision.get("variant") == bad or current.get("phase") != "Ready":
            return None
        if _condition(current, "CanaryPassed").get("status") != "True":
            return None
        return current

    status = wait_for(rolled_back, timeout=300, interval=2, what="a rollback to another variant")
    (failure,) = status["canaryFailures"]
    assert (failure["variant"], failure["pool"]) == (bad, "cpu-standard")
    assert "relative L2" in failure["message"]
    events = [(e["type"], e["reason"], e["message"]) for e in kube.list("events", NAMESPACE)]
    assert any(t == "Warning" and r == "CanaryMismatch" and bad in m for t, r, m in events)
    assert any(t == "Warning" and r == "RolledBack" and bad in m for t, r, m in events)
    # The replacement passed its own canary (rolled_back waits for it), and only pods of
    # the new variant serve.
    passed = _condition(status, "CanaryPassed")["message"]
    assert passed.startswith(f"{status['decision']['variant']} on cpu-standard: "), passed

    variant = status["decision"]["variant"]

    def only_the_new_variant_serves() -> bool:
        pods = [
            p
            for p in kube.list(
                "pods", NAMESPACE, "lepton.ai/model=minilm,lepton.ai/component=triton"
            )
            if not p["metadata"].get("deletionTimestamp")
        ]
        if not pods or any(
            p["metadata"]["annotations"]["lepton.ai/variant"] != variant for p in pods
        ):
            return False
        ready = serving_pods(kube, "minilm", NAMESPACE)
        endpoints = sorted(service_endpoints(kube, "minilm", NAMESPACE))
        return bool(ready) and endpoints == sorted(f"{p['status']['podIP']}:8000" for p in ready)

    wait_for(
        only_the_new_variant_serves,
        timeout=120,
        what="the failed pods replaced and the Service sending only to the new variant",
    )


def _perturb(version: Path) -> None:
    """Scale the largest weight of the served artifact (ONNX or TorchScript): the model
    still loads and answers, wrongly."""
    if (version / "model.onnx").exists():
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(version / "model.onnx"))
        largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        weights = numpy_helper.to_array(largest)
        largest.CopyFrom(numpy_helper.from_array(weights * 3 + 0.5, largest.name))
        onnx.save(model, str(version / "model.onnx"))
        return
    import torch

    module = torch.jit.load(str(version / "model.pt"))
    with torch.no_grad():
        largest = max(module.parameters(), key=lambda t: t.numel())
        largest.mul_(3).add_(0.5)
    torch.jit.save(module, str(version / "model.pt"))


def _cache_hits(kube: Kube) -> dict[str, float]:
    """Triton's own count of response-cache hits for minilm, per serving pod: the hit
    summary's count (Triton exports no hits counter with summaries on)."""
    pattern = re.compile(
        r'^nv_cache_hit_summary_per_model_count\{[^}]*model="minilm"[^}]*\} (\S+)$', re.M
    )
    hits: dict[str, float] = {}
    for pod in serving_pods(kube, "minilm", NAMESPACE):
        url = f"http://{pod['status']['podIP']}:8002/metrics"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                text = answer.read().decode()
        except OSError:
            continue  # a pod going as it is read: its last reading stands
        hits[pod["metadata"]["name"]] = sum(float(m.group(1)) for m in pattern.finditer(text))
    return hits


class CacheHits:
    """Hits counted per pod while a load runs, read again on every poll: a pod the
    planner removes mid-load (a scale-down, which the test does not forbid) takes its
    counter with it, and its hits up to its last reading still count."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.before = _cache_hits(kube)
        self.last = dict(self.before)

    def poll(self) -> None:
        self.last |= _cache_hits(self.kube)

    @property
    def gone(self) -> int:
        """Pods read during the load that no longer serve."""
        return len(
            set(self.last)
            - {p["metadata"]["name"] for p in serving_pods(self.kube, "minilm", NAMESPACE)}
        )

    def since_start(self) -> float:
        return sum(n - self.before.get(pod, 0.0) for pod, n in self.last.items())


def test_the_response_cache_answers_repeats_and_status_shows_the_hit_rate(
    kube: Kube, served: dict[str, Any]
) -> None:
    """Last, as it changes serving: the cache turned on (issue 12), the pods roll with
    one, repeated requests are answered from it (Triton's own counters rise), and status
    shows the hit rate that the planner takes off the load it sizes for."""
    cache_mb = 16
    kube.kubectl(
        *("patch", "lm", "minilm", "-n", NAMESPACE, "--type=merge"),
        *(
            "-p",
            json.dumps(
                {
                    "spec": {
                        "serving": {"responseCache": True, "responseCacheMB": cache_mb},
                    }
                }
            ),
        ),
    )
    flag = f"--cache-config=local,size={cache_mb * 2**20}"  # with --model-config-name=cached

    def rolled() -> list[str] | None:
        pods = serving_pods(kube, "minilm", NAMESPACE)
        cached = pods and all(flag in p["spec"]["containers"][0]["args"] for p in pods)
        return steady_endpoints(kube, "minilm", NAMESPACE)() if cached else None

    wait_for(rolled, timeout=240, interval=2, what="the serving pods rolled with a cache")
    counted = CacheHits(kube)
    reference = _reference(_status(kube))
    with ConstantLoad(
        lambda: service_endpoints(kube, "minilm", NAMESPACE),
        "minilm",
        sample_inputs(reference),  # the same request again and again
        LOAD_RPS,
        ["last_hidden_state"],
    ) as load:

        def hit_rate() -> dict[str, Any] | None:
            counted.poll()
            status = _status(kube)
            rate = (status.get("live") or {}).get("cacheHitRate")
            return status if rate is not None and rate >= 0.5 else None

        status = wait_for(hit_rate, timeout=180, interval=POLL_S, what="status.live.cacheHitRate")
    counted.poll()
    hits = counted.since_start()
    samples = load.report.samples
    print(
        f"response cache: {hits:.0f} hits of {len(samples)} requests sent to "
        f"{len(counted.last)} pod(s), {counted.gone} gone during the load; status "
        f"cacheHitRate {status['live']['cacheHitRate']}, requestRate "
        f"{status['live'].get('requestRate')}; {load.report.failed} failed"
    )
    assert load.report.failed == 0
    # All but the first request to each pod (and the canary's) were answered from
    # memory; a pod gone mid-load loses the hits after its last reading (one poll).
    lost = counted.gone * math.ceil(LOAD_RPS * POLL_S)
    assert hits >= len(samples) - 2 * len(counted.last) - 2 - lost
    assert "answered from Triton's response cache need no replica" in (status["decision"]["reason"])
