"""kopf wiring: the watches that feed the event-driven core (``controller``).

- an index of the LeptonModels (``lepton_models``), slim bodies kept current by kopf's
  watch: what a pass reads instead of fetching the model;
- an event handler on LeptonModels: a new generation (or a model not handled yet by
  this process) queues a pass; a deletion forgets the model;
- event handlers on the Jobs, pods, Deployments, Services and ConfigMaps the operator
  made, filtered server-side by the managed-by label (``WATCHED_SELECTOR``, set in
  ``__main__``): a change queues a pass of the model they belong to (a build's report
  ConfigMap, written as the builder's last act, starts the pass that uses it before the
  Job controller has marked the Job complete);
- indices of the Triton pods, Deployments and Services (slim copies, by namespace and
  model) that the pass reads instead of listing them (``kubecache``);
- an index of the nodes (read-only, slim: labels, blocking taints, cordon, allocatable
  accelerators), from which each pass says which pools have a node, and one of the
  StorageClasses, from which it says whether the build volume can bind (``preflight``);
- start-up and clean-up of the controller's workers and the fleet sampler;
- with an activator installed (the chart sets ``LEPTON_ACTIVATOR_SERVICE``), a watch
  of its Service's EndpointSlices: when its pods change, the models that may scale to
  zero get a pass, so a Service at zero points at the activator's new addresses.

Handlers are async and only queue keys: the passes run in the controller's worker
threads. No handler needs a finalizer, so kopf adds none: deleting a model never waits
for the operator. Nothing is returned: kopf would store return values in ``status``,
which belongs to the LeptonModel's own schema.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import kopf
from kubernetes import client

from lepton_operator import preflight
from lepton_operator.activation import ActivatorRef
from lepton_operator.api.kube import GROUP, PLURAL, VERSION
from lepton_operator.canary import client as canary_client
from lepton_operator.canary.runner import AsyncCanaries
from lepton_operator.config import OperatorConfig
from lepton_operator.constants import COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from lepton_operator.controller import Controller, slim
from lepton_operator.kubecache import (
    CachedKube,
    ends_wait,
    event_view,
    index_key,
    slim_deployment,
    slim_pod,
    slim_service,
)
from lepton_operator.live.prometheus import PrometheusMetrics
from lepton_operator.reconcile import Reconciler
from lepton_operator.sampler import FleetSampler
from lepton_operator.timestamps import utc_now

WATCHED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
# (api version, plural) of the kinds the operator makes and follows.
OWNED_KINDS = (
    ("batch/v1", "jobs"),
    ("v1", "pods"),
    ("apps/v1", "deployments"),
    ("v1", "services"),
    ("v1", "configmaps"),
)
OWNED = {MANAGED_BY_LABEL: MANAGED_BY}
SLICES = ("discovery.k8s.io/v1", "endpointslices")
_controller: list[Controller] = []


def activator_from_env() -> ActivatorRef | None:
    """The chart's activator: its Service in the operator's namespace, or None."""
    service = os.environ.get("LEPTON_ACTIVATOR_SERVICE")
    if not service:
        return None
    return ActivatorRef(
        namespace=os.environ.get("POD_NAMESPACE", "default"),
        service=service,
        port=int(os.environ.get("LEPTON_ACTIVATOR_PORT", "8000")),
    )


def activator_selector(activator: ActivatorRef) -> str:
    return f"kubernetes.io/service-name={activator.service}"


def install(config: OperatorConfig, api_client: client.ApiClient) -> Controller:
    """Bind the handlers to a configuration and a client (once, at start)."""
    infer = functools.partial(
        canary_client.infer, timeout_seconds=config.serving.canary_timeout_seconds
    )
    prometheus = PrometheusMetrics(config.prometheus)
    interval = float(config.prometheus.sample_interval_seconds)
    sampler = FleetSampler(
        functools.partial(prometheus.sample_all, namespaces=config.watch_namespaces), interval
    )
    kube = CachedKube(api_client)
    canaries = AsyncCanaries(kube, infer, utc_now)
    activator = activator_from_env()
    reconciler = Reconciler(
        kube,
        config,
        utc_now,
        canaries=canaries,
        live=sampler,
        refresh_seconds=interval / 2,
        activator=activator,
    )
    _controller[:] = [
        Controller(
            reconciler,
            kube,
            sampler,
            canaries,
            forget=functools.partial(_forget_model, kube, reconciler),
            owned_gone=reconciler.forget_build_objects,
        )
    ]
    if activator is not None:
        kopf.on.event(*SLICES, labels={"kubernetes.io/service-name": activator.service})(
            on_activator_slice
        )
    return _controller[0]


def _forget_model(kube: CachedKube, reconciler: Reconciler, namespace: str, model: str) -> None:
    kube.forget(namespace, model)
    reconciler.forget_build_objects(namespace, model)


async def on_activator_slice(namespace: str | None, **_: Any) -> None:
    activator = controller().reconciler.activator
    if activator is not None and namespace == activator.namespace:
        controller().activator_moved()


def controller() -> Controller:
    if not _controller:
        raise RuntimeError("handlers.install() was not called")
    return _controller[0]


@kopf.index(GROUP, VERSION, PLURAL)
def lepton_models(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name or ""): slim(body)}


def _owned_index(
    slim: Any, namespace: str | None, labels: kopf.Labels, body: kopf.Body
) -> dict[tuple[str, str], dict[str, Any]] | None:
    key = index_key(namespace, labels)
    return {key: slim(body)} if key else None


@kopf.index("v1", "pods", labels={**OWNED, COMPONENT_LABEL: "triton"})
def lepton_pods(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]] | None:
    return _owned_index(slim_pod, namespace, labels, body)


@kopf.index("apps/v1", "deployments", labels=OWNED)
def lepton_deployments(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]] | None:
    return _owned_index(slim_deployment, namespace, labels, body)


@kopf.index("v1", "services", labels=OWNED)
def lepton_services(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]] | None:
    return _owned_index(slim_service, namespace, labels, body)


@kopf.index("v1", "nodes")
def lepton_nodes(name: str | None, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {name or "": preflight.slim_node(body)}


@kopf.index("storage.k8s.io/v1", "storageclasses")
def lepton_storage_classes(
    name: str | None, body: kopf.Body, **_: Any
) -> dict[str, dict[str, Any]]:
    return {name or "": preflight.slim_storage_class(body)}


def _all_of(index: Any) -> list[dict[str, Any]]:
    """Every slim value of a cluster-wide index keyed by name."""
    return [value for key in list(index) for value in index[key]]


@kopf.on.startup()
async def start_controller(**kwargs: Any) -> None:
    """kopf hands every handler its indices by name, this one included."""
    ctl = controller()
    ctl.reconciler.nodes = functools.partial(_all_of, kwargs["lepton_nodes"])
    ctl.reconciler.storage_classes = functools.partial(_all_of, kwargs["lepton_storage_classes"])
    if isinstance(ctl.reconciler.kube, CachedKube):
        ctl.reconciler.kube.bind(
            kwargs["lepton_pods"], kwargs["lepton_deployments"], kwargs["lepton_services"]
        )
    await ctl.start(kwargs["lepton_models"])


@kopf.on.cleanup()
async def stop_controller(**_: Any) -> None:
    if _controller:
        await _controller[0].stop()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_model(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    controller().model_event(event.get("type"), body)


async def on_owned(
    event: kopf.RawEvent,
    resource: kopf.Resource,
    namespace: str | None,
    labels: kopf.Labels,
    body: kopf.Body,
    **_: Any,
) -> None:
    controller().owned_event(
        namespace,
        labels,
        uid=body.get("metadata", {}).get("uid"),
        view=event_view(resource.plural, body),
        gone=event.get("type") == "DELETED",
        urgent=ends_wait(resource.plural, body),
    )


for _api_version, _plural in OWNED_KINDS:
    kopf.on.event(_api_version, _plural, labels=OWNED)(on_owned)
