"""Suite-wide pytest settings: how `make test` shares its tests between three xdist workers.

The e2e tests share one local cluster in two lanes (``lepton_e2e.lanes``: each lane's
modules in order on one worker, with its own operator release and namespaces); the
integration tests start Triton on 127.0.0.1's fixed ports (8000-8002), so they run in
order on a third. The three run side by side (the e2e suite mostly waits on scrapes and
windows), and the unit tests fill in around them.
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadGroupScheduling

from lepton_e2e.lanes import lane_of

E2E = "e2e/tests/"
# Node-id prefixes (relative to the repository) whose tests must not run concurrently
# with each other, and the scope each runs in.
SERIAL_SCOPES = {"tests/integration/": "local-triton"}


class SerialScopesScheduling(LoadGroupScheduling):
    """xdist's loadgroup scheduling with ``SERIAL_SCOPES`` as groups. Not an
    ``xdist_group`` mark added at collection: pytest 9.2's structured node ids drop the
    group suffix xdist 3.8 writes (pytest-dev/pytest-xdist#1386), so marked tests would
    be spread over both workers."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(E2E):
            return f"cluster-lane-{lane_of(nodeid.split('::')[0]).name}"
        for prefix, scope in SERIAL_SCOPES.items():
            if nodeid.startswith(prefix):
                return scope
        return super()._split_scope(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadGroupScheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    return SerialScopesScheduling(config, log)
