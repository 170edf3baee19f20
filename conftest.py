"""Suite-wide pytest settings: how `make test` shares its tests between two xdist workers.

The e2e tests share one local cluster and install the chart under one release name per
module; the integration tests start Triton on 127.0.0.1's fixed ports (8000-8002). Each
of those two sets runs in order on one worker, the two side by side (the e2e suite
mostly waits on scrapes and windows), and the unit tests fill in around them.
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadGroupScheduling

# Node-id prefixes (relative to the repository) whose tests must not run concurrently
# with each other, and the scope each runs in.
SERIAL_SCOPES = {"e2e/tests/": "cluster", "tests/integration/": "local-triton"}


class SerialScopesScheduling(LoadGroupScheduling):
    """xdist's loadgroup scheduling with ``SERIAL_SCOPES`` as groups. Not an
    ``xdist_group`` mark added at collection: pytest 9.2's structured node ids drop the
    group suffix xdist 3.8 writes (pytest-dev/pytest-xdist#1386), so marked tests would
    be spread over both workers."""

    def _split_scope(self, nodeid: str) -> str:
        for prefix, scope in SERIAL_SCOPES.items():
            if nodeid.startswith(prefix):
                return scope
        return super()._split_scope(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadGroupScheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    return SerialScopesScheduling(config, log)
