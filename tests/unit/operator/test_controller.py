"""The event-driven core with fakes for the cluster: what starts a pass, what a pass writes,
and that one model's passes never overlap or repeat their Events."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from lepton_operator.api.status import Phase, read_status
from lepton_operator.controller import Controller, ModelStore, status_changes
from lepton_operator.live.sample import LiveSample, MetricsUnavailable
from lepton_operator.reconcile import Event, Outcome
from lepton_operator.sampler import FleetSampler

KEY = ("ml", "minilm")


def _model(generation: int = 1, status: dict[str, Any] | None = None, rv: int = 10) -> dict:
    return {
        "apiVersion": "lepton.ai/v1alpha1",
        "kind": "LeptonModel",
        "metadata": {
            "namespace": KEY[0],
            "name": KEY[1],
            "uid": "u1",
            "generation": generation,
            "resourceVersion": str(rv),
        },
        "spec": {},
        "status": status or {},
    }


class Index(dict):  # type: ignore[type-arg]
    """kopf's index shape: key -> a store of the values indexed under it."""

    def put(self, body: dict[str, Any]) -> None:
        self[(body["metadata"]["namespace"], body["metadata"]["name"])] = [copy.deepcopy(body)]


class Writer:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []
        self.events: list[tuple[str, str]] = []
        self.rv = 100
        self.last_status: dict[str, Any] = {}

    def patch_model_status(
        self, namespace: str, name: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        self.patches.append(changes)
        self.rv += 1
        status = {**self.last_status, **changes}
        self.last_status = {k: v for k, v in status.items() if v is not None}
        return _model(status=self.last_status, rv=self.rv)

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        self.events.append((type_, reason))


class Reconciler:
    """Becomes Ready once, telling it once; raises while ``failing``."""

    def __init__(self) -> None:
        self.passes = 0
        self.failing = 0
        self.running = 0
        self.overlaps = 0

    def reconcile(self, body: dict[str, Any]) -> Outcome:
        self.running += 1
        self.overlaps += self.running > 1
        try:
            self.passes += 1
            if self.failing:
                self.failing -= 1
                raise RuntimeError("apiserver hiccup")
            status = read_status(body["status"])
            events = [] if status.phase == "Ready" else [Event("Normal", "Available", "ok")]
            status.phase = Phase.READY
            return Outcome(status=status, events=events)
        finally:
            self.running -= 1


def _controller(
    forget: Callable[[str, str], None] | None = None,
) -> tuple[Controller, Index, Writer, Reconciler]:
    index, writer, reconciler = Index(), Writer(), Reconciler()
    controller = Controller(reconciler, writer, sampler=None, forget=forget)  # type: ignore[arg-type]
    controller.store.bind(index)
    return controller, index, writer, reconciler


def test_only_a_new_generation_or_a_first_sight_queues_a_pass() -> None:
    controller, _, _, _ = _controller()
    controller.model_event(None, _model(1))  # listed at start
    assert len(controller.queue) == 1
    controller.queue._pop_due()
    controller.queue.done(KEY)
    controller.model_event("MODIFIED", _model(1, {"phase": "Ready"}))  # our own status write
    assert len(controller.queue) == 0
    controller.model_event("MODIFIED", _model(2))  # the user changed the spec
    assert len(controller.queue) == 1
    controller.model_event("DELETED", _model(2))
    assert len(controller.queue) == 0


def test_a_deleted_model_is_forgotten_by_what_caches_its_objects() -> None:
    forgotten: list[tuple[str, str]] = []
    controller, _, _, _ = _controller(lambda namespace, name: forgotten.append((namespace, name)))
    controller.model_event(None, _model(1))
    controller.model_event("DELETED", _model(1))
    assert forgotten == [KEY]


def test_an_owned_object_queues_its_model_and_a_stranger_nothing() -> None:
    controller, _, _, _ = _controller()
    controller.owned_event("ml", {"lepton.ai/model": "minilm", "lepton.ai/component": "triton"})
    controller.owned_event("ml", {"app": "someone-else"})
    assert len(controller.queue) == 1 and controller.queue._pop_due()[0] == KEY


def test_an_owned_event_that_changes_nothing_a_pass_reads_starts_no_pass() -> None:
    gone: list[tuple[str, str]] = []
    writer, reconciler = Writer(), Reconciler()
    controller = Controller(
        reconciler,  # type: ignore[arg-type]
        writer,
        sampler=None,
        owned_gone=lambda namespace, name: gone.append((namespace, name)),
    )
    labels = {"lepton.ai/model": "minilm"}

    def queued() -> bool:
        key, _ = controller.queue._pop_due()
        if key is not None:
            controller.queue.done(key)
        return key == KEY

    controller.owned_event("ml", labels, uid="job-0", view=None)  # made, nothing to say
    assert not queued()
    controller.owned_event("ml", labels, uid="job-1", view="a")  # first sight
    assert queued()
    controller.owned_event("ml", labels, uid="job-1", view="a")  # its active-pod count
    assert not queued()
    controller.owned_event("ml", labels, uid="cm-1", view="a")  # another object, same view
    assert queued()
    controller.owned_event("ml", labels, uid="job-1", view="b")  # the Job completed
    assert queued()
    controller.owned_event("ml", labels, uid="pod-1", view="stuck")  # waits for a node
    assert queued()
    controller.owned_event("ml", labels, uid="pod-1", view=None)  # scheduled after all
    assert queued()
    controller.owned_event("ml", labels, uid="pod-1", view=None)  # running, done
    assert not queued()
    controller.owned_event("ml", labels, uid="job-1", view="b", gone=True)
    assert queued() and gone == [KEY]
    controller.owned_event("ml", labels, uid="job-1", view="b")  # made again: new news
    assert queued()
    controller.model_event("DELETED", _model(1))
    assert KEY not in controller._owned_views


def test_a_builds_news_goes_before_a_rollouts_and_both_before_first_passes() -> None:
    controller, _, _, _ = _controller()
    controller.model_event(None, _model(1))  # a first pass
    labels = {"lepton.ai/model": "other"}
    controller.owned_event("ml", labels, uid="pod", view="ready")  # a Triton pod Ready
    controller.owned_event("ns2", {"lepton.ai/model": "m"}, uid="cm", view="report", urgent=True)
    order = [controller.queue._pop_due()[0] for _ in range(3)]
    assert order == [("ns2", "m"), ("ml", "other"), KEY]
    assert controller._trigger[("ns2", "m")] == "build"


def test_a_pass_writes_only_what_changed_and_the_next_reads_its_own_write() -> None:
    controller, index, writer, _ = _controller()
    index.put(_model(1))
    controller.process(KEY, "resume")
    assert writer.patches == [{"phase": "Ready"}] and writer.events == [("Normal", "Available")]
    # The watch has not delivered the write yet: the index still holds the old status.
    controller.process(KEY, "owned")
    assert writer.patches == [{"phase": "Ready"}]  # nothing new to write
    assert writer.events == [("Normal", "Available")]  # and not told twice
    index.put(_model(1, {"phase": "Ready"}, rv=500))  # the watch caught up
    assert controller.store.body(KEY)["metadata"]["resourceVersion"] == "500"


def test_a_written_copy_goes_once_the_watch_delivers_it() -> None:
    """A settled model may get no pass for hours: its own status write must not stay
    held twice (the index's copy and the written one) until then."""
    controller, index, writer, _ = _controller()
    index.put(_model(1))
    controller.process(KEY, "resume")
    written = writer.rv
    assert KEY in controller.store._written
    controller.model_event("MODIFIED", _model(1, {"phase": "Ready"}, rv=written - 1))
    assert KEY in controller.store._written  # an older event: the write still counts
    delivered = _model(1, {"phase": "Ready"}, rv=written)
    controller.model_event("MODIFIED", delivered)
    assert KEY not in controller.store._written


def test_a_deleted_model_gets_no_pass() -> None:
    controller, _, writer, reconciler = _controller()
    assert controller.process(KEY, "owned") == (None, None)
    assert reconciler.passes == 0 and writer.patches == []


def test_the_store_prefers_the_newer_copy() -> None:
    index = Index()
    store = ModelStore(index)
    index.put(_model(1, {"phase": "Building"}, rv=10))
    store.wrote(KEY, _model(1, {"phase": "Ready"}, rv=11))
    assert store.body(KEY)["status"] == {"phase": "Ready"}
    index.put(_model(2, {"phase": "Ready"}, rv=12))
    assert store.body(KEY)["metadata"]["generation"] == 2
    del index[KEY]
    assert store.body(KEY) is None


def test_workers_run_passes_once_per_burst_and_retry_failures_with_back_off() -> None:
    async def scenario() -> tuple[Reconciler, Writer]:
        controller, index, writer, reconciler = _controller()
        controller.queue._base = 0.05
        index.put(_model(1))
        reconciler.failing = 2
        await controller.start(index)
        for _ in range(100):  # a burst of pod events
            controller.owned_event("ml", {"lepton.ai/model": "minilm"})
        for _ in range(200):
            await asyncio.sleep(0.02)
            if writer.patches and not len(controller.queue) and not controller.queue.processing():
                break
        await controller.stop()
        return reconciler, writer

    reconciler, writer = asyncio.run(scenario())
    assert writer.patches == [{"phase": "Ready"}]
    assert reconciler.overlaps == 0
    assert 3 <= reconciler.passes <= 5  # two failures, then one pass (maybe one more)


def _live(rate: float) -> LiveSample:
    return LiveSample(1.0, rate, 0.0, 10.0, None, None, None, None, None)


def test_the_sampler_serves_passes_from_one_snapshot_and_wakes_the_moved() -> None:
    answers: list[dict[tuple[str, str], LiveSample] | MetricsUnavailable] = [
        {KEY: _live(10.0), ("ml", "other"): _live(1.0)},
        {KEY: _live(10.2), ("ml", "other"): _live(5.0)},
        MetricsUnavailable("PrometheusUnreachable", "refused"),
    ]

    def read_all() -> dict[tuple[str, str], LiveSample]:
        answer = answers.pop(0)
        if isinstance(answer, MetricsUnavailable):
            raise answer
        return answer

    sampler = FleetSampler(read_all, interval_s=15.0)
    with pytest.raises(MetricsUnavailable, match="NoData"):
        sampler.sample(*KEY)  # before the first read
    known = {KEY, ("ml", "other"), ("ml", "idle")}
    sampler.refresh()
    assert sampler.sample(*KEY).request_rate_rps == 10.0
    assert sampler.to_wake(known, set()) == known  # first figures, or first NoData
    sampler.refresh()
    # With traffic every sample counts; the idle model (no series) hears nothing new.
    assert sampler.to_wake(known, set()) == {KEY, ("ml", "other")}
    assert sampler.to_wake(known, {("ml", "idle")}) >= {("ml", "idle")}  # its plan waits
    sampler.refresh()
    with pytest.raises(MetricsUnavailable, match="PrometheusUnreachable"):
        sampler.sample(*KEY)
    assert sampler.to_wake(known, set()) == known  # everyone must say so


def test_a_nested_key_the_pass_removed_is_nulled_and_unchanged_ones_are_not_sent() -> None:
    """A merge patch merges objects: the planner memory written whole would keep a
    ``reviewAt`` the pass dropped, and the live figures a p95 no longer known."""
    current = {
        "planner": {"rates": [[1.0, 5.0]], "reviewAt": 10.0, "correction": 1.0},
        "live": {"time": "t0", "p95Ms": 12.0},
    }
    wanted = {"planner": {"rates": [[1.0, 5.0]], "correction": 1.1}, "live": {"time": "t1"}}
    assert status_changes(current, wanted) == {
        "planner": {"reviewAt": None, "correction": 1.1},
        "live": {"time": "t1", "p95Ms": None},
    }
    assert status_changes(wanted, wanted) == {}


def test_a_model_being_deleted_gets_no_pass_that_would_apply_its_objects_again() -> None:
    """A foreground delete (an Argo CD cascade) keeps the model, marked, while the garbage
    collector removes its Deployments and Jobs; each removal is an owned event, and a
    pass then would apply them again, so the delete would never end."""
    controller, index, writer, reconciler = _controller()
    index.put(_model(1))
    controller.model_event(None, _model(1))
    controller.queue._pop_due()
    controller.queue.done(KEY)
    going = _model(2, rv=20)
    going["metadata"]["deletionTimestamp"] = "2026-12-05T11:00:00Z"
    index.put(going)
    controller.model_event("MODIFIED", going)  # the delete bumps the generation
    assert len(controller.queue) == 0
    controller.owned_event("ml", {"lepton.ai/model": "minilm"})  # a Deployment removed
    assert controller.process(KEY, "owned") == (None, None)
    assert reconciler.passes == 0 and writer.patches == []
