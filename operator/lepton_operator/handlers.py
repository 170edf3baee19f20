"""kopf handlers: when to reconcile, and how the outcome reaches status and Events.

Every handler calls the same idempotent pass (``Reconciler.reconcile``): on create, on
a spec change, on resume after a restart, and on a timer that follows builds and
rollouts closely and settled models at ``settledResyncSeconds`` (``cadence``). Handlers
are sync, so kopf runs them in its thread pool and the blocking
Kubernetes client never stalls the event loop. They return nothing: kopf would store
return values in ``status``, which belongs to the LeptonModel's own schema.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

import kopf
from kubernetes import client

from lepton_operator import cadence, metrics
from lepton_operator.api.kube import GROUP, PLURAL, VERSION
from lepton_operator.canary import client as canary_client
from lepton_operator.config import OperatorConfig
from lepton_operator.kube import Kube
from lepton_operator.live.prometheus import PrometheusMetrics
from lepton_operator.reconcile import Outcome, Reconciler
from lepton_operator.timestamps import utc_now

RESYNC_SECONDS = 5.0
# kopf's worker threads (``settings.execution.max_workers`` in __main__), and how many
# of them timer passes may hold at once: the rest stay free for creates, spec changes
# and resumes. With hundreds of models under way (an operator installed onto a cluster
# full of them) the 5 s timer would otherwise fill every worker, and a new model would
# wait minutes for its first pass. A tick that finds no slot is skipped; the next comes.
WORKERS = 8
TIMER_SLOTS = threading.BoundedSemaphore(WORKERS // 2)
_state: dict[str, Reconciler] = {}
# When this process last started a pass for each model (by uid), and which models have
# one running: kopf runs timers beside the change handlers, and a timer pass started
# while another pass runs, or just after one, would work from a body that does not yet
# show that pass's status, and tell its Events again.
_last_pass: dict[str, float] = {}
_in_flight: set[str] = set()
_settled_seconds: list[float] = [30.0]


def status_changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The merge patch from one status to the next: changed keys, and None for those
    the pass removed (a key left out of a merge patch is kept, not removed). kopf's
    own key is not ours to remove."""
    changes = {key: value for key, value in wanted.items() if current.get(key) != value}
    changes.update({key: None for key in current if key not in wanted and key != "kopf"})
    return changes


def install(config: OperatorConfig, api_client: client.ApiClient) -> None:
    """Bind the handlers to a configuration and a client (once, at start)."""
    infer = functools.partial(
        canary_client.infer, timeout_seconds=config.serving.canary_timeout_seconds
    )
    _state["reconciler"] = Reconciler(
        Kube(api_client), config, utc_now, infer=infer, live=PrometheusMetrics(config.prometheus)
    )
    _settled_seconds[0] = float(config.settled_resync_seconds)


def _run(
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    trigger: str,
) -> None:
    started = time.monotonic()
    uid = body.metadata.uid or ""
    _last_pass[uid] = started
    _in_flight.add(uid)
    namespace, model = body.metadata.namespace or "", body.metadata.name or ""
    name = f"{namespace}/{model}"
    try:
        outcome: Outcome = _state["reconciler"].reconcile(dict(body))
    except Exception:
        metrics.reconcile_failed(namespace, model, trigger)
        raise  # kopf logs it and retries with back-off
    finally:
        _in_flight.discard(uid)
        metrics.RECONCILE_SECONDS.labels(trigger=trigger).observe(time.monotonic() - started)
    metrics.reconciled(namespace, model, trigger)
    current = dict(body.get("status") or {})
    for key, value in status_changes(current, outcome.status).items():
        patch.status[key] = value
    for event in outcome.events:
        if event.type == "Warning":
            kopf.warn(body, reason=event.reason, message=event.message)
        else:
            kopf.info(body, reason=event.reason, message=event.message)
        logger.info("%s %s: %s", name, event.reason, event.message)
    metrics.observe(
        namespace,
        model,
        outcome.status,
        outcome.events,
        list(current.get("builds") or []),
        spec=dict(body.get("spec") or {}),
    )


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
def on_change(
    body: kopf.Body,
    patch: kopf.Patch,
    reason: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    _run(body, patch, logger, trigger=str(reason))


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def on_spec_change(
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    _run(body, patch, logger, trigger="update")


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def on_timer(
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    uid = body.metadata.uid or ""
    if uid in _in_flight:
        return
    last = _last_pass.get(uid)
    since = None if last is None else time.monotonic() - last
    generation = int(body.metadata.get("generation") or 0)
    status = dict(body.get("status") or {})
    if not cadence.pass_due(
        status, generation, since, _settled_seconds[0], RESYNC_SECONDS / 2, time.time()
    ):
        return
    if not TIMER_SLOTS.acquire(blocking=False):
        metrics.TIMER_SKIPPED.inc()
        return
    try:
        _run(body, patch, logger, trigger="timer")
    finally:
        TIMER_SLOTS.release()


@kopf.on.event(GROUP, VERSION, PLURAL)
def on_event(event: kopf.RawEvent, **_: Any) -> None:
    """A deleted model's series go with it, so its alerts resolve and panels end. An
    event handler, not ``on.delete``: nothing to do before the object goes. (kopf still
    puts its finalizer on each model, because the timer needs one to stop cleanly: a
    model is deleted while the operator runs, and waits for it otherwise.)"""
    if event.get("type") == "DELETED":
        meta = (event.get("object") or {}).get("metadata") or {}
        metrics.forget(meta.get("namespace") or "", meta.get("name") or "")
        _last_pass.pop(meta.get("uid") or "", None)
