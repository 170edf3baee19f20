"""Waiting for CustomResourceDefinitions to be served, without ``kubectl wait``'s race.

``kubectl wait --for=condition=Established`` fails at once, instead of waiting, when it
reads a CRD the apiextensions controller has not yet given any condition
(".status.conditions accessor error: <nil> is of the type <nil>"): a CRD created a
moment before is in that state, and on a slow machine the first read lands there (a CI run of
`make test` lost a whole module's tests to it). This polls the CRD itself and waits
through "not there yet", "no conditions yet" and "still being deleted".
"""

from __future__ import annotations

from collections.abc import Sequence

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lepton_e2e.waiting import wait_for


def crd_state(api: client.ApiClient, name: str) -> str:
    """ "Established", or what stands in the way: "missing", "terminating", or the
    Established condition's status and reason ("no conditions yet" before any)."""
    try:
        crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    except ApiException as error:
        if error.status == 404:
            return "missing"
        raise
    if crd.metadata is not None and crd.metadata.deletion_timestamp is not None:
        return "terminating"
    conditions = (crd.status.conditions if crd.status else None) or []
    established = next((c for c in conditions if c.type == "Established"), None)
    if established is None:
        return "no conditions yet"
    if established.status == "True":
        return "Established"
    return f"Established={established.status} ({established.reason})"


class CrdStates(dict[str, str]):
    """Each CRD's state (``crd_state``), true once every one is Established: ``wait_for``
    ends on it, and on a timeout its message is the last states."""

    def __bool__(self) -> bool:
        return all(state == "Established" for state in self.values())


def wait_established(
    api: client.ApiClient, names: Sequence[str], timeout: float = 60, interval: float = 0.25
) -> None:
    """Return once every named CRD is Established; fail naming each one's state."""
    wait_for(
        lambda: CrdStates({name: crd_state(api, name) for name in names}),
        timeout,
        interval,
        what="CRDs Established",
    )
