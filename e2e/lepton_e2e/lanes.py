"""Two lanes of e2e modules side by side on one local cluster (two pytest-xdist workers).

Each lane is a set of test modules that run in order on one worker; the two run at the
same time against the one cluster, as two teams' operators would. A lane has its own
operator release (its own namespace, Lease, RBAC names and activator), its own test
namespaces, the operator watching only those (kopf's namespace patterns, the product's
``config.watchNamespaces``), and its own Prometheus. Lane A keeps the names a single
install has (``lepton-system``, release ``lepton``), so its tests read as a user's
cluster does; lane B's names carry ``-b``.

What the lanes cannot share is taken in turns: a test that changes the whole cluster
(the apiserver restart) is marked ``whole_cluster`` and runs while no other e2e test
does (``cluster_turn``); every other e2e test runs beside the other lane's. Lane B uses
only the CPU pool, so lane A's tests that cordon or fill the GPU pool need no turn. The
cluster itself is up while any pytest process of the run uses it (``cluster_in_use``):
the first brings it up, the last takes it down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lepton_e2e.cluster import pid_running, state_root


@dataclass(frozen=True)
class Lane:
    """One lane's names: where its operator runs and which namespaces it watches."""

    name: str
    operator_namespace: str
    release: str
    namespace_prefix: str
    watch: tuple[str, ...]  # the operator's config.watchNamespaces; empty: every namespace
    prometheus_port: int

    def namespace(self, purpose: str) -> str:
        """A fixed test namespace of this lane (``e2e-b-serving``)."""
        return f"{self.namespace_prefix}{purpose}"


# Lane A's generated namespaces are `e2e-<6 hex digits>`: none starts `e2e-b-`.
LANE_A = Lane("a", "lepton-system", "lepton", "e2e-", ("!e2e-b-*",), 9090)
# A single install, as `make demo` and the scale benchmark run it: lane A's names,
# watching every namespace.
SOLO = dataclasses.replace(LANE_A, name="solo", watch=())
LANE_B = Lane("b", "lepton-system-b", "lepton-b", "e2e-b-", ("e2e-b-*",), 9091)

# Lane B: modules that never name lane A's operator namespace and use only the CPU pool
# (lane A's cordons are of the GPU pool), about as long together as the rest (the
# slowest tests in docs/development.md).
LANE_B_MODULES = frozenset({"test_serving.py", "test_prometheus.py", "test_real_builder.py"})


def lane_of(module: str | Path) -> Lane:
    """The lane of an e2e test module, by its file name."""
    return LANE_B if Path(module).name in LANE_B_MODULES else LANE_A


def _locks() -> Path:
    """Beside the cluster's state (which `down` wipes), not in it."""
    folder = state_root().with_name(state_root().name + "-locks")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _flock(name: str, mode: int) -> Iterator[None]:
    fd = os.open(_locks() / name, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def cluster_turn(whole_cluster: bool) -> Iterator[None]:
    """Run one test beside the other lane's (shared) or alone (``whole_cluster``).

    A readers-writer lock over two flock files: a test waiting for the whole cluster
    holds the turnstile, so the other lane's next test waits behind it instead of
    starving it, and gets the cluster as soon as the running one ends."""
    if whole_cluster:
        with _flock("turnstile", fcntl.LOCK_EX), _flock("cluster", fcntl.LOCK_EX):
            yield
        return
    with _flock("turnstile", fcntl.LOCK_EX):
        pass
    with _flock("cluster", fcntl.LOCK_SH):
        yield


@dataclass
class _Users:
    """Who uses the cluster now, and whether this run brought it up (and so takes it
    down): the pids of pytest processes, dead ones dropped as they are read."""

    pids: list[int]
    started: bool

    @classmethod
    def read(cls, path: Path) -> _Users:
        raw = json.loads(path.read_text()) if path.exists() else {}
        pids = [pid for pid in raw.get("pids", []) if pid_running(pid)]
        return cls(pids=pids, started=bool(raw.get("started")) and bool(pids))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"pids": self.pids, "started": self.started}))


@contextlib.contextmanager
def cluster_in_use(
    is_up: Callable[[], bool], up: Callable[[], Path], down: Callable[[], None], keep: bool
) -> Iterator[Path]:
    """The cluster up while this process uses it: brought up by the first user (and
    then taken down by the last, unless ``keep``), left alone if it was up before."""
    record = _locks() / "users.json"
    with _flock("users", fcntl.LOCK_EX):
        users = _Users.read(record)
        if not users.pids:
            users.started = not is_up()
        kubeconfig = up()
        users.pids.append(os.getpid())
        users.write(record)
    try:
        yield kubeconfig
    finally:
        with _flock("users", fcntl.LOCK_EX):
            users = _Users.read(record)
            started = users.started
            if os.getpid() in users.pids:
                users.pids.remove(os.getpid())  # one use: a process may hold two
            if not users.pids and started and not keep:
                down()
            users.started = started and bool(users.pids)
            users.write(record)
