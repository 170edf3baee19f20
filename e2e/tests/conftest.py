"""Every test here runs against the real local cluster (see lepton_e2e.fixtures), in one
of two lanes side by side (lepton_e2e.lanes): a test marked ``whole_cluster`` runs while
no other e2e test does, every other one beside the other lane's."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton_e2e.fixtures import _prometheus_by_lane, kube, lane, namespace, prometheus
from lepton_e2e.lanes import cluster_turn

__all__ = ["_prometheus_by_lane", "kube", "lane", "namespace", "prometheus"]

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if HERE not in item.path.parents:  # pytest calls this conftest's hook for every test
        return (yield)
    # Setup, call and teardown (a module's fixtures with its first and last test) all
    # run within the turn.
    with cluster_turn(whole_cluster=item.get_closest_marker("whole_cluster") is not None):
        return (yield)
