"""The event-driven core: what starts a pass, one pass per model at a time, and how its
outcome reaches status and Events.

A pass starts when something changed (the controller-runtime shape, with kopf's
pieces, wired in ``handlers``):

- the LeptonModel's generation changed, or this process sees it for the first time;
- a Job, pod or Deployment the operator owns changed (kopf watches them, filtered
  server-side by the managed-by label);
- the fleet sampler's new figures moved enough for this model (``sampler``);
- the pass itself asked to be looked at again at a stated time (``revisit``).

Every trigger adds the model's key to one keyed work queue (``workqueue``): changes
coalesce, a model is in one pass at a time, and a pass that raises is retried after
an exponential per-model back-off. Passes run in a pool of ``WORKERS`` threads, since
the Kubernetes, Prometheus and Triton clients block.

No timer per model, so no finalizer either: ownerReferences clean up, and deleting a
model never waits for the operator.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from lepton_operator import metrics
from lepton_operator.canary.runner import AsyncCanaries
from lepton_operator.constants import (
    ANNOTATION_ACTIVATOR_WAIT,
    ANNOTATION_DEMAND_AT,
    MODEL_LABEL,
)
from lepton_operator.reconcile import Event, Outcome, Reconciler
from lepton_operator.revisit import figures_wanted_at, revisit_after
from lepton_operator.sampler import FleetSampler, Key
from lepton_operator.workqueue import AHEAD, LANES, NORMAL, URGENT, WorkQueue

WORKERS = 8
# Beside them, workers that take only what ends a wait (the URGENT lane): a build's
# report never waits for a worker while a thousand first passes and their pods'
# start-up run (the wait for a worker was the largest part of report -> decision), and
# a burst of spec changes keeps every one of the ``WORKERS``.
URGENT_WORKERS = 2
logger = logging.getLogger(__name__)


def _merge_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 from ``current`` to ``wanted``: changed keys, None for removed ones, and
    nested objects patched key by key (a merge patch merges them: an object written
    whole would keep the keys it no longer has)."""
    changes: dict[str, Any] = {}
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            if nested := _merge_patch(old, value):
                changes[key] = nested
        elif old != value:
            changes[key] = value
    changes.update({key: None for key in current if key not in wanted})
    return changes


# News of work under way, by lane (``workqueue``); every other trigger (create, update,
# resume, sample, requeue) is NORMAL. URGENT ends a wait: a build's report written or
# its Job ended ("build", ``kubecache.ends_wait``), a canary verdict, requests held at
# the activator. AHEAD is progress: a Triton pod, Deployment or Service the model owns
# changed, a build's pod waits for a node ("owned").
TRIGGER_LANES = {"build": URGENT, "canary": URGENT, "demand": URGENT, "owned": AHEAD}
# What a pass reads of a model's annotations: the activator's demand signal and its
# report of the requests it held (``lepton_operator.activation``).
ACTIVATOR_ANNOTATIONS = (ANNOTATION_DEMAND_AT, ANNOTATION_ACTIVATOR_WAIT)
LANE_NAMES = {URGENT: "urgent", AHEAD: "ahead", NORMAL: "normal"}


def _observe_wait(lane: int, seconds: float) -> None:
    metrics.QUEUE_WAIT_SECONDS.labels(lane=LANE_NAMES[lane]).observe(seconds)


def status_changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The merge patch from one status to the next; kopf's own key is not ours to
    remove."""
    changes = _merge_patch(current, wanted)
    if "kopf" not in wanted:
        changes.pop("kopf", None)
    return changes


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a pass reads of a LeptonModel: no managedFields or labels, and of the
    annotations only the activator's (``ACTIVATOR_ANNOTATIONS``)."""
    meta = body.get("metadata") or {}
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        if key in ACTIVATOR_ANNOTATIONS
    }
    slimmed: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            key: meta.get(key)
            for key in (
                "name",
                "namespace",
                "uid",
                "generation",
                "resourceVersion",
                "deletionTimestamp",
            )
            if meta.get(key) is not None
        },
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
    if annotations:
        slimmed["metadata"]["annotations"] = annotations
    return slimmed


def _version(body: Mapping[str, Any]) -> int:
    """The resourceVersion as a number, to tell which of two copies is newer (etcd's
    revision; -1 when it is not a number, so the watched copy wins)."""
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or -1)
    except ValueError:
        return -1


class ModelIndex(Protocol):
    """kopf's in-memory index of the LeptonModels: key -> the slim bodies of that key."""

    def __contains__(self, key: object) -> bool: ...
    def __getitem__(self, key: Key) -> Iterable[Mapping[str, Any]]: ...
    def __iter__(self) -> Any: ...


class ModelStore:
    """The models as the watch has them (a kopf index), overlaid with this process's own
    status writes until the watch catches up: a pass that starts right after another
    must not read the status from before it, or it would tell its Events twice."""

    def __init__(self, index: ModelIndex | None = None) -> None:
        self._index: ModelIndex | None = index
        self._written: dict[Key, dict[str, Any]] = {}

    def bind(self, index: ModelIndex) -> None:
        self._index = index

    def keys(self) -> set[Key]:
        return set(self._index) if self._index is not None else set()

    def body(self, key: Key) -> dict[str, Any] | None:
        if self._index is None or key not in self._index:
            return None
        watched = next(iter(self._index[key]), None)
        if watched is None:
            return None
        written = self._written.get(key)
        if written is not None and _version(written) > _version(watched):
            return written
        self._written.pop(key, None)
        return dict(watched)

    def wrote(self, key: Key, body: Mapping[str, Any]) -> None:
        self._written[key] = slim(body)

    def watched(self, key: Key, body: Mapping[str, Any]) -> None:
        """The watch delivered ``body``: a copy this process wrote that is not newer is
        dropped now, not at the model's next pass (a settled model may have none for
        hours, and would hold its status twice)."""
        written = self._written.get(key)
        if written is not None and _version(written) <= _version(body):
            del self._written[key]

    def forget(self, key: Key) -> None:
        self._written.pop(key, None)


class StatusWriter(Protocol):
    """The Kubernetes side of a pass's outcome (``kube.Kube`` in the operator)."""

    def patch_model_status(
        self, namespace: str, name: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None: ...

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None: ...


class Controller:
    def __init__(
        self,
        reconciler: Reconciler,
        writer: StatusWriter,
        sampler: FleetSampler | None,
        canaries: AsyncCanaries | None = None,
        forget: Callable[[str, str], None] | None = None,
        workers: int = WORKERS,
        clock: Any = time.time,
        owned_gone: Callable[[str, str], None] | None = None,
        urgent_workers: int = URGENT_WORKERS,
    ) -> None:
        """``forget``: what else must drop a deleted model (the cache of applied
        objects); ``owned_gone``: what must hear that one of a model's objects was
        deleted (the memory of the build objects made)."""
        self.reconciler = reconciler
        self.owned_gone = owned_gone
        self.writer = writer
        self.sampler = sampler
        self.canaries = canaries
        self.forget = forget
        self.workers = workers
        self.urgent_workers = urgent_workers
        self.clock = clock
        self.queue: WorkQueue[Key] = WorkQueue(on_take=_observe_wait)
        self.store = ModelStore()
        self._generation: dict[Key, int] = {}
        self._trigger: dict[Key, str] = {}
        # Models whose plan wants the next figures whatever they say, from when.
        self._waiting: dict[Key, float] = {}
        # The activator's annotations last seen on each model (``ACTIVATOR_ANNOTATIONS``).
        self._activator_signal: dict[Key, tuple[str | None, ...]] = {}
        # What a pass reads of each owned object, as a digest, by model and uid: an
        # event that changes none of it starts no pass (``owned_event``).
        self._owned_views: dict[Key, dict[str, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(
            workers + urgent_workers, thread_name_prefix="pass"
        )

    # ---- what starts a pass (called on the event loop) -------------------------------
    def enqueue(self, key: Key, trigger: str, after_s: float = 0.0) -> None:
        """News of work under way (``TRIGGER_LANES``) goes ahead of the rest."""
        self._trigger.setdefault(key, trigger)
        self.queue.add(key, after_s, TRIGGER_LANES.get(trigger, NORMAL))
        metrics.QUEUE_DEPTH.set(len(self.queue))

    def model_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A LeptonModel was listed, added, changed or deleted. Only a new generation (or
        a model this process has not handled yet) starts a pass: the status writes of
        the passes themselves come back as events too, and must not loop."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self.queue.forget(key)
            self.store.forget(key)
            self._generation.pop(key, None)
            self._trigger.pop(key, None)
            self._waiting.pop(key, None)
            self._activator_signal.pop(key, None)
            self._owned_views.pop(key, None)
            metrics.forget(*key)
            if self.forget is not None:
                self.forget(*key)
            return
        if meta.get("deletionTimestamp"):
            # Going (a foreground delete waits for its dependents, an Argo CD cascade
            # does one): no pass may apply what the garbage collector is removing.
            self.queue.forget(key)
            self._waiting.pop(key, None)
            return
        self.store.watched(key, body)
        generation = int(meta.get("generation") or 0)
        signal = tuple((meta.get("annotations") or {}).get(a) for a in ACTIVATOR_ANNOTATIONS)
        if self._generation.get(key) == generation:
            if key in self._activator_signal and self._activator_signal[key] != signal:
                # Requests wait at the activator (or it reported a held burst): the plan
                # must hear now, not at the next sample (no Triton pod shows demand).
                self._activator_signal[key] = signal
                self.enqueue(key, "demand")
            return
        self._activator_signal[key] = signal
        first = key not in self._generation
        self._generation[key] = generation
        observed = (body.get("status") or {}).get("observedGeneration")
        # A model met at start-up (or after a re-list) resumes; a new one is created.
        resumed = "resume" if observed == generation else "create"
        self.enqueue(key, resumed if first else "update")

    def owned_event(
        self,
        namespace: str | None,
        labels: Mapping[str, str],
        uid: str | None = None,
        view: str | None = None,
        gone: bool = False,
        urgent: bool = False,
    ) -> None:
        """A Job, pod, Deployment, Service or report made for a model changed: that
        model gets a pass, unless what a pass reads of the object (``view``, a digest
        from ``kubecache.event_view``; None: nothing yet) is what it was at the
        object's last event (a predicate, as controller-runtime's: a build's pod being
        scheduled, a Job counting its active pods, an empty report or Deployment just
        made by a pass, a Deployment's rollout bookkeeping start no pass). ``gone``:
        the object was deleted, which always does. ``urgent``: its news ends a wait
        (``kubecache.ends_wait``: the URGENT lane)."""
        model = labels.get(MODEL_LABEL)
        if not (namespace and model):
            return
        key = (namespace, model)
        if uid is not None:
            views = self._owned_views.setdefault(key, {})
            if gone:
                views.pop(uid, None)
                if self.owned_gone is not None:
                    self.owned_gone(*key)
            else:
                if views.get(uid) == view:
                    return  # unchanged, or still nothing a pass reads
                if view is None:
                    views.pop(uid, None)
                else:
                    views[uid] = view
        self.enqueue(key, "build" if urgent else "owned")

    def activator_moved(self) -> None:
        """The activator's pods changed (a restart gives new addresses): every model that
        may scale to zero gets a pass, so the Services at zero point at the new pods."""
        for key in sorted(self.store.keys()):
            body = self.store.body(key) or {}
            if ((body.get("spec") or {}).get("scaling") or {}).get("scaleToZero"):
                self.enqueue(key, "owned")

    def wake(self, keys: set[Key]) -> None:
        metrics.SAMPLE_WAKES.inc(len(keys))
        for key in keys:
            self.enqueue(key, "sample")

    # ---- running -------------------------------------------------------------------
    async def start(self, index: ModelIndex) -> None:
        """Bind the model index, read Prometheus once (so first passes have figures),
        then start the workers and the sampler."""
        self.store.bind(index)
        if self.canaries is not None:
            # A verdict reached on the loop queues its model's pass (Event, condition).
            self.canaries.bind(asyncio.get_running_loop(), lambda key: self.enqueue(key, "canary"))
        if self.sampler is not None:
            await asyncio.to_thread(self.sampler.refresh)
            self._tasks.append(
                asyncio.create_task(self.sampler.run(self.store.keys, self._waiting_now, self.wake))
            )
        self._tasks += [
            asyncio.create_task(self._work((URGENT,) if i < self.urgent_workers else LANES))
            for i in range(self.workers + self.urgent_workers)
        ]

    def _waiting_now(self) -> set[Key]:
        """The models whose plan wants these figures, whatever they say."""
        now = self.clock()
        return {key for key, since in self._waiting.items() if since <= now}

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.canaries is not None:
            await self.canaries.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _work(self, lanes: tuple[int, ...]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get(lanes)
            trigger = self._trigger.pop(key, "requeue")
            started = time.monotonic()
            try:
                again, wanted_at = await loop.run_in_executor(
                    self._pool, self.process, key, trigger
                )
            except Exception:
                backoff = self.queue.done(key, failed=True)
                metrics.reconcile_failed(*key, trigger)
                logger.exception("%s/%s: pass failed; next try in %.1f s", *key, backoff)
            else:
                self.queue.done(key, again)
                if wanted_at is None:
                    self._waiting.pop(key, None)
                else:
                    self._waiting[key] = wanted_at
            finally:
                took = time.monotonic() - started
                metrics.RECONCILE_SECONDS.labels(trigger=trigger).observe(took)
                metrics.QUEUE_DEPTH.set(len(self.queue))

    def process(self, key: Key, trigger: str) -> tuple[float | None, float | None]:
        """One pass over the model (in a worker thread); returns when it wants the next
        one without a change (seconds, or None), and from when its plan wants the next
        live figures whatever they say (Unix seconds, or None)."""
        body = self.store.body(key)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None, None  # deleted, or being deleted, since it was queued
        outcome: Outcome = self.reconciler.reconcile(body)
        with metrics.timed_step("write"):
            current = dict(body.get("status") or {})
            changes = status_changes(current, outcome.wire())
            if changes:
                written = self.writer.patch_model_status(key[0], key[1], changes)
                if written is None:
                    return None, None  # deleted during the pass
                self.store.wrote(key, written)
            for event in outcome.events:
                self._tell(body, event, key)
        metrics.reconciled(*key, trigger)
        metrics.observe(
            *key,
            outcome.status,
            outcome.events,
            outcome.previous_builds,
            spec=dict(body.get("spec") or {}),
        )
        return revisit_after(outcome.status, self.clock()), figures_wanted_at(outcome.status)

    def _tell(self, body: Mapping[str, Any], event: Event, key: Key) -> None:
        logger.info("%s/%s %s: %s", *key, event.reason, event.message)
        try:
            self.writer.post_event(body, event.type, event.reason, event.message)
        except Exception as error:  # an Event lost is no reason to redo the pass
            logger.warning("%s/%s: could not post Event %s: %s", *key, event.reason, error)
