"""Scale benchmark: the operator with 100, then 1,000 LeptonModels on the real apiserver.

What is real: kube-apiserver, etcd, controller-manager, scheduler, the operator installed
by its chart (two replicas, one Lease holder, RBAC enforced) and every request it makes.
What is not: the builds. A process per build would swamp two cores, so the build Jobs
run the gated builder image (``GATED_BUILDER_IMAGE``): KWOK runs their pods, this
benchmark plays the builder by writing ``fixture_builder``'s fixed report into each
Job's report ConfigMap, and only then lets KWOK complete the pod. Triton pods are
KWOK's too. The figures are the operator's, on fixture reports, said so in the output.

A real Prometheus (the harness's) is the operator's, so its fleet sampler runs as in
production; no model has traffic (KWOK's Triton exports nothing).

Measured per stage (the operator's Lease holder), the issue's names in brackets:
- create -> first decision, and build report written -> the decision that uses it
  while the stage's models are created (``createReportToDecisionP99S``): from this
  benchmark writing the report (it plays the builder) to the watch seeing the first
  decision;
- build report written -> decision in the settled fleet (``reportToDecisionP50S``/
  ``P99S``): 30 models added one each 2 s to the stage's settled fleet, each from its
  report written to its first decision (the fleet is at its size, not being created);
- settled, every model decided and nothing changing: API requests per second
  (``settledApiRps``: the apiserver's own count of requests it dispatched for the
  operator's ServiceAccount, routed apart by a FlowSchema of ours) and PromQL queries
  per sampling interval (``promQueriesPerInterval``: Prometheus's own count of
  ``/api/v1/query`` requests over the operator's count of fleet samples);
- single changes (``singleChangeP50S``/``P99S``): 30 SLO changes, one model each, 2 s
  apart, each from the patch returning to the watch seeing a decision made for it;
- a burst (``burstAllDecidedS``): one SLO change to every model at once, until the last
  is decided; ``burstAllWrittenS``: until the apiserver took the last decision's status
  write (its managedFields time, to the second), the operator's share of it;
- the operator's resident memory (``rssMB``: its ``process_resident_memory_bytes``,
  peak of samples every 2 s).
Benchmarks print figures; they do not pass or fail on them. Run with ``make bench-scale``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

from lepton_e2e import binaries, pass_breakdown, shipped_images
from lepton_e2e.cluster import GATED_BUILDER_IMAGE, REPORT_WRITTEN_ANNOTATION, Cluster
from lepton_e2e.fixture_builder import fixture_report
from lepton_e2e.fixtures import (
    OPERATOR_NAMESPACE,
    SIMULATED_TRITON,
    Kube,
    installed_operator,
    model_namespace,
    prometheus_for,
)
from lepton_e2e.images import repository
from lepton_e2e.pools import Pool, node_manifests
from lepton_e2e.prometheus import PrometheusServer

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "lepton.ai", "v1alpha1", "leptonmodels"
NODE_PODS = 110  # Kubernetes' default pods per node


def bench_pool(models: int) -> Pool:
    """The benchmark's simulated nodes: room for every model's Triton pod and a build
    pod each, with a fifth to spare (24 nodes for 1,000 models, 66 for 3,000; a 3,000
    stage on 24 once left 360 models Pending for a node, so a stage's figures would
    measure a full cluster, not the operator)."""
    return Pool.model_validate(
        {
            "name": "bench-cpu",
            "count": max(24, math.ceil(models * 2 * 1.2 / NODE_PODS)),
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": str(NODE_PODS)},
            "hourlyPriceUSD": 0.34,
        }
    )


BENCH_POOL = bench_pool(1000)
FLOW_SCHEMA = "lepton-operator-bench"
SLO_BEFORE_MS, SLO_AFTER_MS = 20, 30


# ---- the models ------------------------------------------------------------------------
def bench_model(name: str) -> dict[str, Any]:
    """examples/digits.yaml on the benchmark's own pool, with requests small enough for
    1,000 replicas to schedule on simulated nodes."""
    document: dict[str, Any] = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    document["metadata"] = {"name": name}
    document["spec"]["slo"]["p95LatencyMs"] = SLO_BEFORE_MS
    document["spec"]["pools"] = [
        {
            "name": BENCH_POOL.name,
            "nodeSelector": {"lepton.ai/pool": BENCH_POOL.name},
            "hourlyPriceUSD": BENCH_POOL.hourly_price_usd,
            "provisioningSeconds": 60,
            "resources": {"cpu": "10m", "memory": "32Mi"},
        }
    ]
    return document


def model_names(total: int, namespaces: int, prefix: str = "m-") -> list[tuple[str, str]]:
    """(namespace, name) of model ``i``, spread round-robin over the namespaces."""
    return [(f"scale-{i % namespaces:02d}", f"{prefix}{i:04d}") for i in range(total)]


# ---- playing the builder -----------------------------------------------------------------
def _is_gated_builder(pod: dict[str, Any]) -> bool:
    return any(
        repository(c.get("image", "")) == GATED_BUILDER_IMAGE
        for c in pod["spec"].get("containers", [])
    )


def write_report_and_release(
    core: client.CoreV1Api, pod: dict[str, Any], reports: dict[tuple[str, str], float]
) -> None:
    """What the builder would do (write the report), then let KWOK complete the pod;
    ``reports`` gets when each model's report was written."""
    args = pod["spec"]["containers"][0]["args"]
    request = json.loads(args[args.index("--request") + 1])
    namespace = pod["metadata"]["namespace"]
    core.patch_namespaced_config_map(
        request["reportConfigMap"],
        namespace,
        {"data": {"report.json": json.dumps(fixture_report(request))}},
    )
    model = (pod["metadata"].get("labels") or {}).get("lepton.ai/model", "")
    reports.setdefault((namespace, model), time.time())
    core.patch_namespaced_pod(
        pod["metadata"]["name"],
        namespace,
        {"metadata": {"annotations": {REPORT_WRITTEN_ANNOTATION: "true"}}},
    )


def play_builder(
    api: client.ApiClient, stop: threading.Event, reports: dict[tuple[str, str], float]
) -> None:
    core = client.CoreV1Api(api)
    done: set[str] = set()
    while not stop.is_set():
        stream = watch.Watch()
        try:
            for event in stream.stream(
                core.list_pod_for_all_namespaces,
                label_selector="lepton.ai/component=builder",
                timeout_seconds=30,
            ):
                pod = api.sanitize_for_serialization(event["object"])
                uid = pod["metadata"]["uid"]
                if (
                    uid in done
                    or event["type"] == "DELETED"
                    or not _is_gated_builder(pod)
                    or not pod["spec"].get("nodeName")
                ):
                    continue
                write_report_and_release(core, pod, reports)
                done.add(uid)
                if stop.is_set():
                    break
        except Exception as error:  # the watch ends and restarts; the run goes on
            print(f"builder stand-in: {error}", file=sys.stderr)
            time.sleep(1)


# ---- watching decisions ------------------------------------------------------------------
def status_written_at(meta: dict[str, Any]) -> float | None:
    """When the apiserver took the last write of the object's status (its managedFields'
    time, to the second): where the decision was made, apart from this benchmark's own
    watch catching up."""
    times = [
        datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
        for entry in meta.get("managedFields") or []
        if entry.get("subresource") == "status" and entry.get("time")
    ]
    return max(times, default=None)


@dataclass
class Decisions:
    """When the watch first saw a decision for each model's generation, and when the
    apiserver had taken the write that made it."""

    seen: dict[tuple[str, str, int], float] = field(default_factory=dict)
    written: dict[tuple[str, str, int], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, obj: dict[str, Any], at: float) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        generation = int(meta.get("generation", 0))
        decision = status.get("decision") or {}
        slo = (obj.get("spec") or {}).get("slo", {}).get("p95LatencyMs")
        fresh = status.get("observedGeneration") == generation
        if fresh and f"p95 {slo:g} ms" in decision.get("reason", ""):
            key = (meta["namespace"], meta["name"], generation)
            written = status_written_at(meta)
            with self.lock:
                if key not in self.seen and written is not None:
                    self.written[key] = written
                self.seen.setdefault(key, at)

    def at(self, namespace: str, name: str, generation: int) -> float | None:
        with self.lock:
            return self.seen.get((namespace, name, generation))

    def written_at(self, namespace: str, name: str, generation: int) -> float | None:
        with self.lock:
            return self.written.get((namespace, name, generation))


def watch_decisions(api: client.ApiClient, decisions: Decisions, stop: threading.Event) -> None:
    custom = client.CustomObjectsApi(api)
    while not stop.is_set():
        stream = watch.Watch()
        try:
            for event in stream.stream(
                custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, timeout_seconds=30
            ):
                decisions.record(event["object"], time.time())
                if stop.is_set():
                    break
        except Exception as error:
            print(f"decision watch: {error}", file=sys.stderr)
            time.sleep(1)


# ---- the operator's footprint ------------------------------------------------------------
def _operator_metrics(core: client.CoreV1Api) -> list[str]:
    pods = core.list_namespaced_pod(
        OPERATOR_NAMESPACE, label_selector="app.kubernetes.io/name=lepton-operator"
    ).items
    texts = []
    for pod in pods:
        ip = pod.status.pod_ip if pod.status else None
        if ip:
            # Generous: at 3,000 models on two cores a busy operator's metrics page once
            # took over 5 s to answer, and that ended the stage.
            with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=30) as response:
                texts.append(response.read().decode())
    return texts


def _sample(text: str, name: str) -> float:
    values = re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
    return sum(float(v) for v in values)


def _leader_text(core: client.CoreV1Api) -> str:
    """The metrics page of the replica that reconciles (the other only waits for the
    Lease): the one that has run the most passes."""
    texts = _operator_metrics(core)
    return max(texts, key=lambda t: _sample(t, "lepton_reconcile_duration_seconds_count"))


def _leader_metric(core: client.CoreV1Api, name: str) -> float:
    return _sample(_leader_text(core), name)


def pass_snapshot(core: client.CoreV1Api) -> pass_breakdown.Snapshot | None:
    try:
        return pass_breakdown.snapshot(_leader_text(core))
    except Exception as error:  # a busy operator's page: the breakdown is extra
        print(f"pass breakdown: {error}", file=sys.stderr)
        return None


def leader_memory_bytes(core: client.CoreV1Api) -> float:
    return _leader_metric(core, "process_resident_memory_bytes")


def fleet_samples(core: client.CoreV1Api) -> float:
    """How many times the operator has read every model's figures (one interval each)."""
    return _leader_metric(core, "lepton_fleet_samples_total")


def prometheus_queries(prometheus: PrometheusServer) -> float:
    """Instant queries Prometheus has answered, from its own /metrics (the harness's
    Prometheus does not scrape itself)."""
    with urllib.request.urlopen(f"{prometheus.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = r'^prometheus_http_requests_total\{[^}]*handler="/api/v1/query"[^}]*\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def operator_requests(kube: Kube) -> float:
    """Requests the apiserver dispatched for the operator's ServiceAccount so far."""
    text = kube.kubectl("get", "--raw", "/metrics").stdout
    pattern = (
        r"^apiserver_flowcontrol_dispatched_requests_total\{[^}]*"
        rf'flow_schema="{FLOW_SCHEMA}"[^}}]*\}} (\S+)$'
    )
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def flow_schema(account: str) -> dict[str, Any]:
    """Routes exactly the operator's requests, so the apiserver counts them apart."""
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": FLOW_SCHEMA},
        "spec": {
            "priorityLevelConfiguration": {"name": "workload-high"},
            "matchingPrecedence": 500,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {
                                "name": account,
                                "namespace": OPERATOR_NAMESPACE,
                            },
                        }
                    ],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": ["*"],
                            "resources": ["*"],
                            "clusterScope": True,
                            "namespaces": ["*"],
                        }
                    ],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }


class MemorySampler:
    """The peak of the leader's resident memory, sampled every 2 s in the background."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(2):
            try:
                self.peak = max(self.peak, leader_memory_bytes(self.core))
            except Exception as error:
                print(f"memory sample: {error}", file=sys.stderr)

    def __enter__(self) -> MemorySampler:
        self.peak = leader_memory_bytes(self.core)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- one stage -----------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


@dataclass
class Phase:
    latencies: list[float]
    seconds: float
    requests: float
    peak_memory_bytes: float
    missing: int
    passes: dict[str, Any] = field(default_factory=dict)
    # to the apiserver taking the status write (1 s resolution), not to this watch
    written: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ok = self.latencies
        return {
            **({"passes": self.passes} if self.passes else {}),
            "decided": len(ok),
            "missing": self.missing,
            "p50_s": round(percentile(ok, 50), 3) if ok else None,
            "p99_s": round(percentile(ok, 99), 3) if ok else None,
            "max_s": round(max(ok), 3) if ok else None,
            "written_p99_s": round(percentile(self.written, 99), 3) if self.written else None,
            "written_max_s": round(max(self.written), 3) if self.written else None,
            "seconds": round(self.seconds, 1),
            "api_rps": round(self.requests / self.seconds, 1),
            "peak_memory_mb": round(self.peak_memory_bytes / 2**20, 1),
        }


def measure(
    kube: Kube,
    core: client.CoreV1Api,
    decisions: Decisions,
    act: Callable[[], dict[tuple[str, str], tuple[float, int]]],
    timeout: float,
) -> Phase:
    """Run ``act`` (returns, per model, when it acted and the generation to wait for)
    and wait until every model has a decision for it, or ``timeout``."""
    requests_before, started = operator_requests(kube), time.time()
    passes_before = pass_snapshot(core)
    with MemorySampler(core) as memory:
        acted = act()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(decisions.at(ns, n, g) for (ns, n), (_, g) in acted.items()):
                break
            time.sleep(1)
    seconds = time.time() - started
    latencies, written = [], []
    for (namespace, name), (at, generation) in acted.items():
        seen = decisions.at(namespace, name, generation)
        if seen is not None:
            latencies.append(max(0.0, seen - at))
        taken = decisions.written_at(namespace, name, generation)
        if taken is not None:
            written.append(taken - int(at))  # both to the second
    passes_after = pass_snapshot(core)
    return Phase(
        latencies=latencies,
        seconds=seconds,
        requests=operator_requests(kube) - requests_before,
        peak_memory_bytes=memory.peak,
        missing=len(acted) - len(latencies),
        written=written,
        passes=(
            pass_breakdown.breakdown(passes_before, passes_after)
            if passes_before and passes_after
            else {}
        ),
    )


def create_models(
    custom: client.CustomObjectsApi, names: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[float, int]]:
    acted = {}
    for namespace, name in names:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, bench_model(name))
        acted[(namespace, name)] = (time.time(), 1)
    return acted


def change_slo(
    custom: client.CustomObjectsApi, names: list[tuple[str, str]], slo_ms: int
) -> dict[tuple[str, str], tuple[float, int]]:
    acted = {}
    for namespace, name in names:
        changed: Any = custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"slo": {"p95LatencyMs": slo_ms}}}
        )
        acted[(namespace, name)] = (time.time(), int(changed["metadata"]["generation"]))
    return acted


@dataclass
class Settled:
    api_rps: float
    prom_queries_per_interval: float | None


def passes(core: client.CoreV1Api) -> float:
    """Reconcile passes the Lease holder has run so far."""
    return _leader_metric(core, "lepton_reconcile_duration_seconds_count")


def _busy_passes(core: client.CoreV1Api) -> float:
    """``passes``, or NaN (never equal: still busy) when the operator is too busy to
    answer in time."""
    try:
        return passes(core)
    except OSError:  # urllib's URLError and timeouts
        return math.nan


def wait_settled(kube: Kube, timeout: float = 600, still_s: float = 15) -> None:
    """Until every model is Ready and the operator ran no pass for ``still_s``: a model
    with a decision may still be rolling out, and those passes are not the settled
    cost."""
    deadline = time.monotonic() + timeout
    last, since = _busy_passes(kube.core), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(3)
        phases = kube.kubectl(
            "get", "lm", "-A", "-o", "jsonpath={.items[*].status.phase}", check=False
        ).stdout.split()
        now = _busy_passes(kube.core)
        if now != last:
            last, since = now, time.monotonic()
        if phases and set(phases) == {"Ready"} and time.monotonic() - since >= still_s:
            return
    print("  (not every model settled in time; measuring anyway)", file=sys.stderr)


def settled(kube: Kube, prometheus: PrometheusServer, seconds: float) -> Settled:
    """With every model settled: the operator's API requests per second, and the PromQL
    queries of each of its fleet samples."""
    wait_settled(kube)
    requests, queries = operator_requests(kube), prometheus_queries(prometheus)
    samples = fleet_samples(kube.core)
    time.sleep(seconds)
    intervals = fleet_samples(kube.core) - samples
    asked = prometheus_queries(prometheus) - queries
    return Settled(
        api_rps=round((operator_requests(kube) - requests) / seconds, 2),
        prom_queries_per_interval=round(asked / intervals, 1) if intervals else None,
    )


def single_changes(
    custom: client.CustomObjectsApi,
    decisions: Decisions,
    names: list[tuple[str, str]],
    count: int,
    gap_s: float,
    timeout: float,
) -> list[float]:
    """``count`` SLO changes to one model each, ``gap_s`` apart, spread over the fleet;
    the seconds from each patch to its decision (each waited for, up to ``timeout``)."""
    latencies = []
    step = max(len(names) // count, 1)
    for i, (namespace, name) in enumerate(names[::step][:count]):
        slo = 1000 + i  # a value no earlier decision was made for
        changed: Any = custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"slo": {"p95LatencyMs": slo}}}
        )
        at, generation = time.time(), int(changed["metadata"]["generation"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and decisions.at(namespace, name, generation) is None:
            time.sleep(0.01)
        seen = decisions.at(namespace, name, generation)
        if seen is not None:
            latencies.append(max(seen - at, 0.0))
        time.sleep(gap_s)
    return latencies


def late_builds(
    custom: client.CustomObjectsApi,
    decisions: Decisions,
    reports: dict[tuple[str, str], float],
    names: list[tuple[str, str]],
    gap_s: float,
    timeout: float,
) -> list[float]:
    """New models ``names``, ``gap_s`` apart, into a settled fleet: the seconds from
    this benchmark writing each one's build report to the watch seeing the decision that
    uses it (a model's first, made only once its build reported)."""
    for namespace, name in names:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, bench_model(name))
        time.sleep(gap_s)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(decisions.at(*key, 1) for key in names):
        time.sleep(0.5)
    return reports_to_decisions(reports, decisions, names)


def reports_to_decisions(
    reports: dict[tuple[str, str], float], decisions: Decisions, names: list[tuple[str, str]]
) -> list[float]:
    """Per model of ``names`` whose report was written and first decision seen: the
    seconds between the two."""
    return [
        seen - reports[key]
        for key in names
        if key in reports and (seen := decisions.at(*key, 1)) is not None
    ]


def _quantiles(values: list[float], name: str) -> dict[str, float | None]:
    return {
        f"{name}P50S": _round(percentile(values, 50)) if values else None,
        f"{name}P99S": _round(percentile(values, 99)) if values else None,
    }


# ---- the run --------------------------------------------------------------------------------
@dataclass
class Bench:
    kube: Kube
    prometheus: PrometheusServer
    namespaces: int
    timeout: float
    quiet_seconds: float
    reports: dict[tuple[str, str], float]
    results: list[dict[str, Any]] = field(default_factory=list)

    def stage(self, created: int, total: int, decisions: Decisions) -> None:
        custom = client.CustomObjectsApi(self.kube.api)
        everyone = model_names(total, self.namespaces)
        new = everyone[created:]
        say = functools.partial(print, file=sys.stderr)
        say(f"stage {total}: creating {len(new)} LeptonModels")
        create = measure(
            self.kube, self.kube.core, decisions, lambda: create_models(custom, new), self.timeout
        )
        say(f"  create: {create.summary()}")
        report_to_decision = reports_to_decisions(self.reports, decisions, new)
        quiet = settled(self.kube, self.prometheus, self.quiet_seconds)
        say(f"  settled: {quiet}")
        with MemorySampler(self.kube.core) as memory:
            late = model_names(30, self.namespaces, prefix=f"late-{total}-")
            reported = late_builds(custom, decisions, self.reports, late, 2.0, 120.0)
            say(f"  late builds: {len(reported)} of 30 decided after their reports")
            singles = single_changes(custom, decisions, everyone, 30, 2.0, 60.0)
            say(f"  single changes: {len(singles)} decided of 30")
            burst = measure(
                self.kube,
                self.kube.core,
                decisions,
                lambda: change_slo(custom, everyone, SLO_AFTER_MS + total),
                self.timeout,
            )
            say(f"  burst: {burst.summary()}")
        rss = max(memory.peak, create.peak_memory_bytes, burst.peak_memory_bytes)
        self.results.append(
            {
                "models": total,
                **_quantiles(singles, "singleChange"),
                "singleChangesDecided": len(singles),
                "burstAllDecidedS": _round(max(burst.latencies)) if burst.latencies else None,
                "burstUndecided": burst.missing,
                "burstAllWrittenS": _round(max(burst.written)) if burst.written else None,
                **_quantiles(reported, "reportToDecision"),
                "lateBuildsDecided": len(reported),
                **_quantiles(report_to_decision, "createReportToDecision"),
                "settledApiRps": quiet.api_rps,
                "promQueriesPerInterval": quiet.prom_queries_per_interval,
                "rssMB": round(rss / 2**20, 1),
                "rssKBPerModel": round(rss / 1024 / total, 1),
                "create": create.summary(),
                "burst": burst.summary(),
            }
        )


def _round(value: float) -> float:
    return round(value, 3)


@dataclass
class Environment:
    kube: Kube
    stop: threading.Event
    decisions: Decisions
    reports: dict[tuple[str, str], float] = field(default_factory=dict)


def _kube() -> Kube:
    bin_dir = binaries.ensure_built()
    shipped_images.ensure_built()  # the runner starts the chart's pods from them
    cluster = Cluster()
    kubeconfig = cluster.config.kubeconfig if cluster.is_up() else cluster.up()
    return Kube(
        kubeconfig=kubeconfig,
        bin_dir=bin_dir,
        api=config.new_client_from_config(str(kubeconfig)),
        runs_process_pods=True,
    )


def _prepare(kube: Kube, namespaces: int, models: int) -> None:
    kube.apply(*node_manifests([bench_pool(models)]))
    for index in range(namespaces):
        name = f"scale-{index:02d}"
        kube.kubectl("create", "namespace", name)
        model_namespace(kube, name)


def _delete_models(kube: Kube, namespaces: int, timeout: float = 600) -> None:
    """Delete the models (they carry no finalizer of the operator's, so they go at
    once; one left by an older operator is cleared by hand after ``timeout``, saying
    so, so the namespaces can go)."""
    for index in range(namespaces):
        kube.kubectl("delete", "namespace", f"scale-{index:02d}", "--wait=false", check=False)
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while time.monotonic() < deadline:
        out = kube.kubectl("get", "lm", "-A", "-o", "name", check=False)
        left = out.stdout.split() if out.returncode == 0 else []
        if not left:
            return
        time.sleep(5)
    print(f"{len(left)} models outlived {timeout:.0f} s; lifting their finalizers", file=sys.stderr)
    custom = client.CustomObjectsApi(kube.api)
    listed: Any = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    for item in listed["items"]:
        meta = item["metadata"]
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            meta["namespace"],
            PLURAL,
            meta["name"],
            {"metadata": {"finalizers": None}},
        )


def _clean(kube: Kube, namespaces: int, models: int) -> None:
    for index in range(namespaces):
        kube.kubectl("delete", "namespace", f"scale-{index:02d}", "--wait=false", check=False)
    kube.kubectl("delete", "flowschema", FLOW_SCHEMA, check=False)
    names = [n["metadata"]["name"] for n in node_manifests([bench_pool(models)])]
    kube.kubectl("delete", "node", *names, "--wait=false", check=False)


def _threads(env: Environment) -> Iterator[threading.Thread]:
    yield threading.Thread(
        target=play_builder, args=(env.kube.api, env.stop, env.reports), daemon=True
    )
    yield threading.Thread(
        target=watch_decisions, args=(env.kube.api, env.decisions, env.stop), daemon=True
    )


def run(
    sizes: list[int],
    namespaces: int,
    timeout: float,
    quiet_seconds: float,
    out: Path | None = None,
) -> Bench:
    """The stages in order; with ``out``, the JSON is written after each, so a later
    stage stopped by hand leaves the earlier ones' figures."""
    kube = _kube()
    env = Environment(kube=kube, stop=threading.Event(), decisions=Decisions())
    prometheus = prometheus_for(kube)
    bench = Bench(
        kube=kube,
        prometheus=prometheus,
        namespaces=namespaces,
        timeout=timeout,
        quiet_seconds=quiet_seconds,
        reports=env.reports,
    )
    _prepare(kube, namespaces, max(sizes))
    threads = list(_threads(env))
    try:
        with (
            prometheus,
            installed_operator(
                kube,
                f"{GATED_BUILDER_IMAGE}:1",
                f"config.images.triton={SIMULATED_TRITON}",
                f"config.prometheus.url={prometheus.url}",
            ),
        ):
            (pod, *_) = kube.list(
                "pods", OPERATOR_NAMESPACE, "app.kubernetes.io/name=lepton-operator"
            )
            kube.apply(flow_schema(pod["spec"]["serviceAccountName"]))
            for thread in threads:
                thread.start()
            created = 0
            try:
                for total in sizes:
                    bench.stage(created, total, env.decisions)
                    created = total
                    if out is not None:
                        write_results(out, bench.results)
            finally:
                _delete_models(kube, namespaces)
    finally:
        env.stop.set()
        _clean(kube, namespaces, max(sizes))
    return bench


def table(results: list[dict[str, Any]]) -> str:
    """The docs' table (Markdown)."""
    rows = [
        "| models | single change→decision p50 / p99 (s) | burst: all decided (s) "
        "| report→decision p50 / p99 (s): settled; while creating "
        "| settled API req/s | PromQL per interval "
        "| operator RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        undecided = f" ({r['burstUndecided']} undecided)" if r["burstUndecided"] else ""
        rows.append(
            f"| {r['models']} | {r['singleChangeP50S']} / {r['singleChangeP99S']} "
            f"| {r['burstAllDecidedS']}{undecided} "
            f"| {r['reportToDecisionP50S']} / {r['reportToDecisionP99S']}; "
            f"{r['createReportToDecisionP50S']} / {r['createReportToDecisionP99S']} "
            f"| {r['settledApiRps']} | {r['promQueriesPerInterval']} | {r['rssMB']} |"
        )
    return "\n".join(rows)


def write_results(out: Path, results: list[dict[str, Any]]) -> None:
    out.write_text(json.dumps({"builds": "fixture reports", "stages": results}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="cumulative model counts")
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=1200, help="per phase, seconds")
    parser.add_argument("--quiet-seconds", type=float, default=60)
    parser.add_argument("--out", type=Path, default=Path("docs/bench/scale.json"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    bench = run(sizes, args.namespaces, args.timeout, args.quiet_seconds, args.out)
    write_results(args.out, bench.results)
    print("builds: fixture reports written by the benchmark (KWOK-run build pods)")
    print(table(bench.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
