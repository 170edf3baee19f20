"""Every test here runs against the real local cluster (see lepton_e2e.fixtures)."""

from pathlib import Path

import pytest

from lepton_e2e.fixtures import kube, namespace, prometheus

__all__ = ["kube", "namespace", "prometheus"]

HERE = Path(__file__).parent

# `make test` runs pytest-xdist with --dist loadgroup: the e2e tests share one cluster and
# install the chart under one release name per module, so they stay one group, run in
# order by one worker, while the other worker takes the unit and integration tests (which
# never touch the cluster) beside them.
CLUSTER_GROUP = pytest.mark.xdist_group("cluster")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(CLUSTER_GROUP)
