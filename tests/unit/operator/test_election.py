"""Leader election: a standby waits out an apiserver it cannot reach."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from lepton_operator import election
from lepton_operator.election import LeaseElector


class RestartingApiserver:
    """A Lease API that refuses connections a few times, then has no Lease yet."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.created: list[Any] = []

    def read_namespaced_lease(self, name: str, namespace: str) -> Any:
        if self.refusals:
            self.refusals -= 1
            raise MaxRetryError(None, "/apis/coordination.k8s.io/v1/...", "Connection refused")  # type: ignore[arg-type]
        raise ApiException(status=404)

    def create_namespaced_lease(self, namespace: str, body: Any) -> Any:
        self.created.append(body)
        return SimpleNamespace(spec=body.spec)


def test_a_standby_waits_out_an_apiserver_it_cannot_reach(monkeypatch: pytest.MonkeyPatch):
    naps: list[float] = []
    monkeypatch.setattr(election.time, "sleep", naps.append)
    api = RestartingApiserver(refusals=3)
    LeaseElector(api, "lepton-system", "lepton-operator", "pod-a").wait_until_held()  # type: ignore[arg-type]
    assert [lease.spec.holder_identity for lease in api.created] == ["pod-a"]
    assert naps == [election.RENEW_SECONDS] * 3
