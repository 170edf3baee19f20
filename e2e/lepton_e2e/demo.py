"""``make demo``: the product end to end on the real local cluster, unattended.

Brings the cluster up, starts a real Prometheus, installs the chart with Helm, applies
``examples/minilm.yaml`` with the demo's patch (``DEMO_PATCH``, sized for two shared
cores), follows the real build, then drives a bounded load ramp (up past what one
replica carries within the SLO, down, quiet) against the real Triton pods through the
Service and records what the operator did: pool, replicas, p95 and spend over time. It
ends with a PNG and a one-screen summary, says how long each phase took, and tears
everything down, on Ctrl-C too; then it replays the planner on a day of traffic over
the CPU and L4 pools, the part a machine without a GPU cannot show live.

Everything the demo prints comes from the cluster (``status``, Deployments, Events)
or from what its clients measured; nothing is computed here but the plot's sums and
the share of sampled intervals within the SLO.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config as kube_config

from lepton_e2e import binaries, models, shipped_images
from lepton_e2e.capacity_check import Sample, served_capacity, steady_checks
from lepton_e2e.cluster import Cluster, state_root
from lepton_e2e.fixtures import (
    NAMESPACE_CACHE,
    Kube,
    installed_operator,
    model_namespace,
    namespace_cache,
    prometheus_for,
)
from lepton_e2e.load import ConstantLoad, sample_inputs, served_sample, service_targets
from lepton_operator.bench.__main__ import main as bench_main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "minilm.yaml"
TRACES = REPO / "e2e" / "traces"
NAMESPACE = "demo"
MODEL = "minilm"
RATE_WINDOW_S = 15
SAMPLE_INTERVAL_S = 5
# Real English sentences staged as the calibration data: the accuracy guard runs fp32
# over each of them with one thread, so 800 would take a minute of the demo.
CALIBRATION_SENTENCES = 200
DEMO_SLO_MS = 60.0  # why 60, not 40: under RAMP


def demo_pools() -> list[dict[str, Any]]:
    """The chart's default pools, the CPU pool given one CPU per replica and this
    cluster's provisioning delay."""
    values = yaml.safe_load((REPO / "charts" / "lepton-operator" / "values.yaml").read_text())
    pools: list[dict[str, Any]] = values["config"]["pools"]
    for pool in pools:
        if pool["name"] == "cpu-standard":
            pool.update(provisioningSeconds=10, resources={"cpu": "1", "memory": "4Gi"})
    return pools


# Two shared cores run Triton, Prometheus, the apiserver, the operator and the load
# generator here. The demo keeps the example's model, calibration data and accuracy
# guard, and changes what a five-minute run on this machine needs (a merge patch of the
# example, applied as one manifest so that one build runs): ONNX beside the fp32
# reference (ONNX Runtime int8 carries any load this machine can offer on one replica,
# so it would never show a scale-up), one CPU per replica (one runtime thread: two
# replicas use both cores), an SLO one replica meets at low load and not at the
# plateau, at most two replicas (one per core), a short scale-down window, and the CPU
# pool's provisioning delay of this cluster, whose nodes already exist. The GPU pool
# stays: its variants are reported "not built" here, for want of a GPU.
DEMO_PATCH: dict[str, Any] = {
    "optimization": {"variants": ["onnx"], "batchSizes": [1, 8]},
    "slo": {"p95LatencyMs": DEMO_SLO_MS},
    "scaling": {"minReplicas": 1, "maxReplicas": 2, "scaleDownStabilizationSeconds": 20},
    "pools": demo_pools(),
}
# (seconds, offered req/s): low, briefly (10 s: the planner learns nothing there, and a
# warm demo fits in 5 minutes with it shorter than the 20 s it was); a steady 20 req/s,
# which one replica carries, for long enough that the planner learns how much slower
# Triton serves here than the build profiled (its correction reads a p95 only once the
# summary's minute saw one steady load: the 15 s rate window plus 45 s of samples that
# agree); 40 req/s, past where the planner's model wants a second replica for a 60 ms
# SLO (28 to 52 req/s by the corrections seen), so that it starts before the plateau
# (one replica queues at 40 for those seconds: the samples over the SLO in a good run);
# a plateau of 50 req/s on two; low again; then quiet long enough to see the scale-down:
# the rate window, the peak floor (the pool's provisioning delay plus the replica's cold
# start: capacity given back takes that long to return), the stabilization window and a
# sample. Measured here with the replicas pinned (a quiet machine, Prometheus' p95): one
# replica 22 ms at 40 req/s, 28 to 34 ms at 60, 95 ms at 80; two replicas 23 ms at 60
# and 48 ms at 80. Three replicas on two cores ran slower than two (76 to 91 ms at 70
# req/s). The plateau was 60 req/s until 2026-12-07: on slower hours two replicas served
# it at 118 to 366 ms with 1.7 of the 2 cores busy (the two Triton stubs half a core
# each, the apiserver, the load generator and the rest 0.65): queueing at 85% of the
# machine. 50 leaves a sixth of that room. A 40 ms SLO, met in 97% of samples on a quiet
# hour, was missed in 27 to 100% of them on slower ones; a direct step from 40 to 60
# req/s scaled up only at 60, and Triton's p95 (a sliding summary, about the last minute
# here) kept the overload of those seconds through the plateau.
RAMP: tuple[tuple[float, float], ...] = (
    (10, 5.0),
    (65, 20.0),
    (30, 40.0),
    (60, 50.0),
    (20, 5.0),
    (50, 0.0),
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as ``kubectl patch --type=merge`` applies it."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def demo_manifest() -> dict[str, Any]:
    """examples/minilm.yaml with the demo's changes (DEMO_PATCH) merged in."""
    example = yaml.safe_load(EXAMPLE.read_text())
    patched: dict[str, Any] = merge_patch(example, {"spec": DEMO_PATCH})
    return patched


@dataclass
class Point:
    """One look at the cluster during the ramp."""

    t: float  # seconds since the ramp began
    offered_rps: float
    client_p95_ms: float | None
    live_rps: float | None
    live_p95_ms: float | None
    ready_by_pool: dict[str, int]
    decided: dict[str, Any]
    hourly_usd: float


@dataclass
class Demo:
    out: Path
    ramp: tuple[tuple[float, float], ...] = RAMP
    fresh_build: bool = False  # empty the kept builds first: the builder works again
    phases: list[tuple[str, float]] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        began = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - began
            self.phases.append((name, took))
            print(f"   ({name}: {took:.0f} s)", flush=True)


def _say(text: str) -> None:
    print("\n".join(f"   {line}" for line in text.splitlines()), flush=True)


def _status(kube: Kube) -> dict[str, Any]:
    status: dict[str, Any] = kube.get("lm", MODEL, NAMESPACE).get("status") or {}
    return status


def _wait_built_and_ready(kube: Kube, timeout: float = 1200) -> dict[str, Any]:
    """Follow the builds and the rollout, printing each change, until Ready."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        status = _status(kube)
        builds = ", ".join(f"{b['pool']} {b['phase']}" for b in status.get("builds") or [])
        line = f"phase {status.get('phase') or '-'}; builds: {builds or '-'}"
        decision = status.get("decision") or {}
        if decision:
            line += f"; decision: {decision.get('variant')} on {decision.get('pool')}"
        if line != last:
            _say(f"[{time.strftime('%H:%M:%S')}] {line}")
            last = line
        if status.get("phase") == "Ready":
            return status
        if status.get("phase") == "Failed":
            raise RuntimeError(f"the model failed: {json.dumps(status.get('conditions'))}")
        time.sleep(3)
    raise RuntimeError(f"not Ready after {timeout:.0f} s: {last}")


def _variants_table(status: dict[str, Any]) -> str:
    """``status.variants`` as a table: one row per (pool, variant) the build considered."""
    lines = [
        f"{'pool':<14}{'variant':<15}{'verdict':<10}{'accuracy':>9}{'batch':>6}{'p95 ms':>8}"
        f"{'req/s':>8}  reason"
    ]
    for row in status.get("variants") or []:
        accuracy = row.get("accuracy")
        measured = row.get("p95Ms") is not None
        verdict = "accepted" if row.get("accepted") else "rejected" if measured else "not built"
        lines.append(
            f"{row.get('pool', ''):<14}{row.get('variant', ''):<15}{verdict:<10}"
            f"{'' if accuracy is None else f'{accuracy:.4f}':>9}"
            f"{row.get('batchSize', '') if measured else '':>6}"
            f"{_fmt(row.get('p95Ms')):>8}{_fmt(row.get('throughputRps')):>8}"
            f"  {(row.get('reason') or '')[:70]}"
        )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}"


def _ready_by_pool(kube: Kube) -> dict[str, int]:
    ready: dict[str, int] = {}
    for deployment in kube.list("deployments", NAMESPACE, f"lepton.ai/model={MODEL}"):
        pool = deployment["metadata"].get("labels", {}).get("lepton.ai/pool", "?")
        ready[pool] = ready.get(pool, 0) + int(
            (deployment.get("status") or {}).get("readyReplicas") or 0
        )
    return ready


class Watcher:
    """Samples status and Deployments every few seconds while the load runs."""

    def __init__(self, kube: Kube, demo: Demo, began: float, offered: list[float]) -> None:
        self.kube, self.demo, self.began, self.offered = kube, demo, began, offered
        self.load: ConstantLoad | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        printed = 0.0
        while not self.stopping.wait(5):
            try:
                point = self._look()
            except Exception as error:  # a slow apiserver call is a gap, not a failure
                _say(f"(sample skipped: {error})")
                continue
            self.demo.points.append(point)
            if point.t - printed >= 15:
                printed = point.t
                _say(_point_line(point))

    def _look(self) -> Point:
        now = time.time()
        status = _status(self.kube)
        live = status.get("live") or {}
        client_p95 = None
        if self.load is not None:
            with contextlib.suppress(Exception):  # too few samples in the window
                client_p95 = self.load.report.p95_ms(now - RATE_WINDOW_S, now)
        return Point(
            t=now - self.began,
            offered_rps=self.offered[0],
            client_p95_ms=client_p95,
            live_rps=live.get("requestRate"),
            live_p95_ms=live.get("p95Ms"),
            ready_by_pool=_ready_by_pool(self.kube),
            decided=dict(status.get("decision") or {}),
            hourly_usd=float(status.get("hourlyCostUSD") or 0.0),
        )


def _point_line(p: Point) -> str:
    ready = " ".join(f"{pool}={n}" for pool, n in sorted(p.ready_by_pool.items())) or "-"
    return (
        f"t={p.t:4.0f}s offered {p.offered_rps:4.1f} req/s | Prometheus "
        f"{_fmt(p.live_rps) or '-':>5} req/s p95 {_fmt(p.live_p95_ms) or '-':>6} ms | "
        f"clients p95 {_fmt(p.client_p95_ms) or '-':>6} ms | ready {ready} | decided "
        f"{p.decided.get('replicas', '-')} on {p.decided.get('pool', '-')} | "
        f"${p.hourly_usd:.2f}/h"
    )


def _drive(kube: Kube, demo: Demo, status: dict[str, Any]) -> tuple[int, int]:
    """Runs the ramp; returns (requests answered, requests failed). The load follows the
    Service's ready endpoints (checked every 5 s), as kube-proxy would."""
    sample = served_sample(status, NAMESPACE, MODEL)
    offered = [0.0]
    watcher = Watcher(kube, demo, time.time(), offered)
    watcher.thread.start()
    answered = failed = 0
    try:
        for seconds, rate in demo.ramp:
            offered[0] = rate
            _say(f"-- offering {rate:g} req/s for {seconds:g} s")
            segment_end = time.monotonic() + seconds
            if rate <= 0:
                watcher.load = None
                time.sleep(seconds)
                continue
            with ConstantLoad(
                lambda: service_targets(kube, MODEL, NAMESPACE),
                sample["model"],
                sample_inputs(sample),
                rate,
                ["last_hidden_state"],
                workers=8,
            ) as load:
                watcher.load = load
                time.sleep(max(0.0, segment_end - time.monotonic()))
            answered += sum(s.ok for s in load.report.samples)
            failed += load.report.failed
    finally:
        watcher.stopping.set()
        watcher.thread.join(timeout=30)
    return answered, failed


def _plot(demo: Demo, path: Path, slo_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = demo.points
    t = [p.t for p in points]
    figure, (load, latency, replicas, spend) = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    load.step(t, [p.offered_rps for p in points], where="post", label="offered", color="black")
    load.plot(t, [p.live_rps for p in points], label="seen by Prometheus", marker=".")
    load.set_ylabel("req/s")
    load.legend(fontsize=8)
    load.set_title(f"make demo: MiniLM on the local cluster (SLO p95 {slo_ms:g} ms)")
    latency.plot(t, [p.live_p95_ms for p in points], label="p95, Prometheus", marker=".")
    latency.plot(t, [p.client_p95_ms for p in points], label="p95, clients", linestyle="--")
    latency.axhline(slo_ms, color="red", linewidth=0.8, label="SLO")
    latency.set_ylabel("ms (log)")
    latency.set_yscale("log")
    latency.legend(fontsize=8)
    pools = sorted({pool for p in points for pool in p.ready_by_pool} | {"cpu-standard"})
    for pool in pools:
        replicas.step(
            t, [p.ready_by_pool.get(pool, 0) for p in points], where="post", label=f"{pool} Ready"
        )
    replicas.step(
        t,
        [p.decided.get("replicas", 0) for p in points],
        where="post",
        linestyle=":",
        label="decided",
    )
    replicas.set_ylabel("replicas")
    replicas.legend(fontsize=8)
    total, cumulative = 0.0, [0.0]
    for before, after in itertools.pairwise(points):
        total += before.hourly_usd * (after.t - before.t) / 3600
        cumulative.append(total)
    spend.plot(t, cumulative, label="cumulative spend ($)")
    rate = spend.twinx()
    rate.step(t, [p.hourly_usd for p in points], where="post", color="grey", linewidth=0.8)
    rate.set_ylabel("$/h (grey)")
    spend.set_ylabel("$")
    spend.set_xlabel("seconds since the load began")
    spend.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _decision_events(kube: Kube) -> list[str]:
    events = kube.list("events", NAMESPACE)
    mine = [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == "LeptonModel"
        and e.get("reason") not in (None, "")
    ]
    mine.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return [f"{e.get('reason')}: {e.get('message')}" for e in mine]


def _namespace_cache(kube: Kube, fresh: bool) -> None:
    """The namespace's cache claim on a folder under the project's cache, kept between
    demos; ``fresh``: its builds emptied first."""
    kept = binaries.cache_root() / "demo-namespace-cache"
    if fresh:
        shutil.rmtree(kept / "builds", ignore_errors=True)
    namespace_cache(kube, NAMESPACE, kept)


def run(demo: Demo) -> int:
    cluster = Cluster()
    if cluster.is_up():
        print("a local cluster is already up; `make cluster-down` first", file=sys.stderr)
        return 1
    with contextlib.ExitStack() as stack:
        with demo.phase("the operator's and activator's images (built once per change)"):
            shipped_images.ensure_built()
        with demo.phase("cluster: a real kube-apiserver, scheduler, KWOK nodes"):
            bin_dir = binaries.ensure_built()
            stack.callback(cluster.down, True)
            kubeconfig = cluster.up()
            api = kube_config.new_client_from_config(str(kubeconfig))
            stack.callback(api.close)
            kube = Kube(kubeconfig=kubeconfig, bin_dir=bin_dir, api=api, runs_process_pods=True)
            _say(f"export KUBECONFIG={kubeconfig} PATH={bin_dir}:$PATH  # to look around")
            prometheus = prometheus_for(kube)
            prometheus.start()
            stack.callback(prometheus.stop)
            prometheus.wait_ready()
            _say(f"Prometheus 3 at {prometheus.url}, discovering Triton Services")
        with demo.phase("helm install charts/lepton-operator"):
            stack.enter_context(
                installed_operator(
                    kube,
                    "ghcr.io/lepton-ai/lepton-builder:0.1.0",
                    f"config.prometheus.url={prometheus.url}",
                    f"config.prometheus.rateWindow={RATE_WINDOW_S}s",
                    f"config.prometheus.sampleIntervalSeconds={SAMPLE_INTERVAL_S}",
                    "config.prometheus.timeoutSeconds=3",
                    uninstall=False,  # the cluster goes down as a whole at the end
                )
            )
            _say(kube.kubectl("get", "pods", "-n", "lepton-system").stdout.strip())
        with demo.phase("kubectl apply -f build/demo/minilm.yaml"):
            kube.kubectl("create", "namespace", NAMESPACE)
            model_namespace(kube, NAMESPACE)
            _namespace_cache(kube, demo.fresh_build)
            _say(
                "namespace demo: restricted Pod Security, PVC `models` with MiniLM-L6, and "
                f"`{NAMESPACE_CACHE}`, the namespace's source and build cache (kept between demos)"
            )
            models.copy_minilm(
                state_root() / "pvcs" / NAMESPACE / "models",
                "all-minilm-l6-v2",
                sentences=CALIBRATION_SENTENCES,
            )
            manifest = demo.out / "minilm.yaml"
            manifest.write_text(yaml.safe_dump(demo_manifest(), sort_keys=False))
            kube.kubectl("apply", "-n", NAMESPACE, "-f", str(manifest))
            _say(
                "examples/minilm.yaml with this merge patch (every replica here shares the "
                f"same two cores, and a short demo needs short windows):\n"
                f"{json.dumps({'spec': DEMO_PATCH})}"
            )
        with demo.phase("build, profile, deploy and canary (real builder, real Triton)"):
            status = _wait_built_and_ready(kube)
            print(kube.kubectl("get", "lm", "-n", NAMESPACE).stdout)
            print(_variants_table(status))
            for reused in (b for b in status.get("builds") or [] if b.get("reusedFrom")):
                _say(
                    f"{reused['pool']}: the build was reused from the namespace's build cache "
                    f"(made {reused['reusedFrom']}); `make demo DEMO_ARGS=--fresh-build` "
                    "builds afresh"
                )
            _say(f"decision: {status['decision']['reason']}")
        with demo.phase("load ramp through the Service (up, plateau, down, quiet)"):
            answered, failed = _drive(kube, demo, status)
        plot_path = demo.out / "demo.png"
        _plot(demo, plot_path, DEMO_SLO_MS)
        (demo.out / "demo.json").write_text(
            json.dumps([p.__dict__ for p in demo.points], indent=1) + "\n"
        )
        _summary(kube, demo, answered, failed, plot_path)
    print("\ncluster down; state removed.")
    with demo.phase("replay: a day of MiniLM traffic on both pools (the GPU's part)"):
        _replay_both_pools(demo.out)
    return 0


def _replay_both_pools(out: Path) -> None:
    """What this machine cannot show live: where a GPU pays. The operator's own planner
    replayed minute by minute on a day of traffic (``e2e/traces/diurnal.csv``) against
    its peers and the offline optimum, with MiniLM's CPU profile measured here and the
    L4 profile derived from H100 measurements (docs/planner.md)."""
    _say(
        "no GPU here: the planner replayed on a day of traffic, CPU and L4 pools "
        "(profiles: e2e/traces/, the L4's derived); the plot shows which pool it chose"
    )
    status = bench_main(
        [
            "replay",
            "--trace",
            str(TRACES / "diurnal.csv"),
            "--profiles",
            str(TRACES / "minilm-cpu-standard.json"),
            "--profiles",
            str(TRACES / "minilm-gpu-l4.derived.json"),
            "--pools",
            str(TRACES / "pools.yaml"),
            "--slo-ms",
            "100",
            "--json",
            str(out / "replay-diurnal.json"),
            "--plot",
            str(out / "replay-diurnal.png"),
        ]
    )
    if status != 0:
        raise RuntimeError(f"the replay failed (exit {status})")
    _say(f"plot: {out / 'replay-diurnal.png'}")


def _judged(points: list[Point]) -> list[tuple[float, Point]]:
    """The samples with a p95 to judge, each with it: Prometheus saw requests in its
    window; a window without requests has no p95 of its own."""
    return [
        (p.live_p95_ms, p) for p in points if p.live_p95_ms is not None and (p.live_rps or 0) > 0
    ]


def slo_share(points: list[Point], slo_ms: float) -> tuple[int, int]:
    """(samples within the SLO, samples measured), over the samples ``_judged``."""
    p95s = [p95 for p95, _ in _judged(points)]
    return sum(p95 <= slo_ms for p95 in p95s), len(p95s)


def slo_share_below_the_limit(
    points: list[Point], slo_ms: float, most_replicas: int
) -> tuple[int, int]:
    """``slo_share`` over the samples below the load the machine carries: a sample over
    the SLO with the most replicas the model allows Ready is past what they serve at
    that hour (or Triton's one-minute summary still holds such seconds), no fault of
    the plan; one over it with fewer Ready is the plan's (too few asked for, or asked
    for late and still starting) and counts."""
    below = [
        p95
        for p95, p in _judged(points)
        if p95 <= slo_ms or sum(p.ready_by_pool.values()) < most_replicas
    ]
    return sum(p95 <= slo_ms for p95 in below), len(below)


def _summary(kube: Kube, demo: Demo, answered: int, failed: int, plot_path: Path) -> None:
    points = demo.points
    peak_ready = max((sum(p.ready_by_pool.values()) for p in points), default=0)
    spent = sum(a.hourly_usd * (b.t - a.t) / 3600 for a, b in itertools.pairwise(points))
    within, measured = slo_share(points, DEMO_SLO_MS)
    print("\n== summary")
    _say(f"requests answered {answered}, failed {failed}")
    _say(
        f"replicas Ready: 1 -> peak {peak_ready} -> "
        f"{sum(points[-1].ready_by_pool.values()) if points else 0} after the load"
    )
    _say(
        f"p95 within the {DEMO_SLO_MS:g} ms SLO in {within} of {measured} samples "
        f"({within / max(measured, 1):.0%}; the operator's live p95, Triton's summaries "
        "through Prometheus, a sample every 5 s while requests were served)"
    )
    most = DEMO_PATCH["scaling"]["maxReplicas"]
    kept, below = slo_share_below_the_limit(points, DEMO_SLO_MS, most)
    _say(
        f"below the load the machine carries: within the SLO in {kept} of {below} samples "
        f"({kept / max(below, 1):.0%}; the other {measured - below} were over it with the "
        f"{most} replicas the demo allows Ready: past what {most} serve on these two "
        "shared cores at this hour, or Triton's one-minute summary still holding such "
        "seconds)"
    )
    _say(f"spend during the ramp ${spent:.4f} (Ready replicas x pool price)")
    _say_capacity_checks(kube, points)
    _say("what the operator said (Events on the LeptonModel):")
    for line in _decision_events(kube)[-12:]:
        _say(f"  {line[:150]}")
    _say(f"plot: {plot_path}  data: {plot_path.with_suffix('.json')}")
    _say("phases: " + "; ".join(f"{name.split(':')[0]} {took:.0f} s" for name, took in demo.phases))


def _say_capacity_checks(kube: Kube, points: list[Point]) -> None:
    """The operator's capacity model, uncorrected, against what Triton served at each
    steady step of the ramp (``capacity_check``): the error the planner's correction
    learns, stated."""
    status = kube.get("lm", MODEL, NAMESPACE).get("status") or {}
    capacity = served_capacity(kube, NAMESPACE, MODEL, status)
    samples = [
        Sample(p.offered_rps, p.live_rps, sum(p.ready_by_pool.values()), p.client_p95_ms)
        for p in points
    ]
    _say(
        f"the capacity model against real Triton (profile: a lone request "
        f"{capacity.base_p95_ms:.1f} ms, at most {capacity.max_rps:.1f} req/s a replica):"
    )
    for check in steady_checks(samples, capacity):
        _say(f"  {check.line(capacity)}")
    planner = status.get("planner") or {}
    _say(
        f"  the planner learned: latency x{planner.get('correction') or 1.0:.2f}"
        + "".join(
            f", {t['pool']} serving x{t.get('scale', 1.0):.2f} its profile"
            f" (seen serving x{t.get('proven', 0.0):.2f} of it within the SLO)"
            for t in planner.get("throughput") or []
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_e2e demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "demo")
    parser.add_argument(
        "--fresh-build",
        action="store_true",
        help="build MiniLM afresh instead of reusing an earlier demo's build",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # Ctrl-C and a TERM from CI both unwind through the ExitStack: load stops, the
    # chart is uninstalled, Prometheus and the cluster go down.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    demo = Demo(args.out, fresh_build=args.fresh_build)
    try:
        return run(demo)
    except KeyboardInterrupt:
        print("\ninterrupted: everything the demo started is stopped and removed", file=sys.stderr)
        return 130
    except (RuntimeError, AssertionError) as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    finally:
        print(yaml.safe_dump({"phases_seconds": {n: round(s) for n, s in demo.phases}}).strip())
