"""Builds the cluster's binaries from Go modules, once per set of pinned versions.

The cache folder is keyed by a hash of everything that decides the binaries
(go.mod, go.sum, the multi-call main, the pinned tools, the stamped tools), so a warm
``make test`` reuses them and a version bump rebuilds. A build lands in a temporary folder that
is renamed into place only when complete, so an interrupted build is never reused, and
one process builds a folder at a time: another that needs it waits for that build
(``build_once``), as a test does for ``make test``'s Argo CD built in the background.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLUSTER_SRC = Path(__file__).resolve().parents[1] / "cluster"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
MULTICALL = "leptoncluster"


@dataclass(frozen=True)
class StampedTool:
    """A Go program installed with ``go install package@version`` whose release must be
    stamped into it with ``-ldflags -X``: built from a module it reports an empty or
    placeholder version otherwise (Prometheus prints ``version  (branch: , revision: )``
    and exports an empty ``prometheus_build_info``), which hides which build is running.
    ``stamps=()`` for a program that reports no version.
    """

    package: str
    version: str
    stamps: tuple[tuple[str, str], ...]
    tags: tuple[str, ...] = ()  # Go build tags, e.g. to leave out unused plugins

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    def ldflags(self) -> str:
        return " ".join(["-s", "-w"] + [f"-X {symbol}={value}" for symbol, value in self.stamps])

    def install_args(self) -> list[str]:
        """``go install``'s arguments for this tool."""
        tags = ["-tags", ",".join(self.tags)] if self.tags else []
        return [*tags, "-ldflags", self.ldflags(), self.spec]

    def identity(self) -> str:
        """Everything that decides the binary: part of the cache keys."""
        return " ".join(self.install_args())


_PROMETHEUS_MODULE = "v0.316.0"  # Prometheus 3.16.0: v3 releases are published as v0.3MM.P
_PROMETHEUS_VERSION = "github.com/prometheus/common/version"
# Prometheus' own build tags (its plugins/ folder): only the service discovery the tests
# use (kubernetes; file, http and static are always in). Every cloud's SDK left out, the
# cold build took 236 s instead of 641 s here.
_PROMETHEUS_TAGS = ("remove_all_sd", "enable_kubernetes_sd")

# Tools beside the control plane that need ldflags; part of the cache key (see cache_key).
STAMPED_TOOLS = (
    # Prometheus 3: Debian's 2.42 has no Kubernetes service discovery. Its web UI assets
    # are built separately upstream and absent from the module; the HTTP API is complete.
    StampedTool(
        package="github.com/prometheus/prometheus/cmd/prometheus",
        version=_PROMETHEUS_MODULE,
        stamps=(
            (f"{_PROMETHEUS_VERSION}.Version", "3.16.0"),
            (f"{_PROMETHEUS_VERSION}.Revision", _PROMETHEUS_MODULE),
            (f"{_PROMETHEUS_VERSION}.Branch", "HEAD"),
            (f"{_PROMETHEUS_VERSION}.BuildUser", "lepton-e2e"),
            (f"{_PROMETHEUS_VERSION}.BuildDate", "19700101-00:00:00"),
        ),
        tags=_PROMETHEUS_TAGS,
    ),
)


# Tools needed by a few tests only, each built on first use into a cache folder of its own
# (keyed by its spec and stamps), so adding one never rebuilds the cluster.
PROMTOOL = StampedTool(
    package="github.com/prometheus/prometheus/cmd/promtool",
    version=_PROMETHEUS_MODULE,
    stamps=STAMPED_TOOLS[0].stamps,
    tags=_PROMETHEUS_TAGS,
)

# An S3-compatible server (in-memory backend) for the S3 repository test: real S3 over
# HTTP for MinIO's Python client and Triton's AWS SDK, and no botocore, which cannot be
# installed beside the pinned kubernetes client (their python-dateutil ranges are
# disjoint). It reports no version, so there is nothing to stamp.
GOFAKES3 = StampedTool(
    package="github.com/johannesboyne/gofakes3/cmd/gofakes3",
    version="v1.2.0",
    stamps=(),
)


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lepton-operator"
    return Path(os.environ.get("LEPTON_CACHE_DIR", default))


def _key_files() -> list[Path]:
    return [
        CLUSTER_SRC / "go.mod",
        CLUSTER_SRC / "go.sum",
        CLUSTER_SRC / "tools.txt",
        *sorted((CLUSTER_SRC / "cmd").rglob("*.go")),
    ]


def cache_key() -> str:
    digest = hashlib.sha256()
    for path in _key_files():
        digest.update(path.relative_to(CLUSTER_SRC).as_posix().encode())
        digest.update(path.read_bytes())
    for tool in STAMPED_TOOLS:
        digest.update(tool.identity().encode())
    return digest.hexdigest()[:16]


def bin_dir() -> Path:
    return cache_root() / f"cluster-bin-{cache_key()}"


def kubernetes_version() -> str:
    match = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", (CLUSTER_SRC / "go.mod").read_text(), re.M)
    if not match:
        raise RuntimeError("e2e/cluster/go.mod does not require k8s.io/kubernetes")
    return match.group(1)


def tools() -> list[str]:
    lines = (CLUSTER_SRC / "tools.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    # Unstamped components report v0.0.0-master+$Format:%H$, which breaks kubectl's
    # version parsing and Helm's kubeVersion checks.
    stamps = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return " ".join(
        ["-s", "-w"] + [f"-X k8s.io/component-base/version.{k}={v}" for k, v in stamps.items()]
    )


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A folder to build into, renamed to ``target`` only when the block completes, so
    an interrupted build is never reused (its ``.partial-<pid>`` folder is left behind)."""
    staging = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yield staging
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


@contextlib.contextmanager
def _building(target: Path) -> Iterator[None]:
    """Held while this process builds ``target``: a second process waits here rather
    than building it again beside the first (two Go builds of the same modules on two
    cores take twice as long, and one of them is thrown away).

    The lock file holds the builder's process group. A waiter raises that group to the
    normal priority: ``make test`` starts Argo CD's build at the lowest one, to use only
    the cores the cluster's build and the tests leave idle, and a test that needs it now
    should not wait behind everything else.
    """
    lock = target.with_name(target.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _hurry(lock)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpgrp()).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _hurry(lock: Path) -> None:
    """Say who is waiting for what, and raise the builder's priority where allowed."""
    group = lock.read_text().strip()
    print(f"waiting for process group {group or '?'} building {lock.stem}", file=sys.stderr)
    if not group.isdigit():
        return
    try:
        os.setpriority(os.PRIO_PGRP, int(group), 0)
    except OSError as error:  # not ours to raise (no CAP_SYS_NICE), or it just ended
        if error.errno not in (errno.EPERM, errno.EACCES, errno.ESRCH):
            raise


def build_once(target: Path, built: Path, build: Callable[[Path], None]) -> Path:
    """``target``, built first by ``build(staging)`` unless ``built`` (a file in it)
    exists, or once another process's build of it ends."""
    if built.exists():
        return target
    with _building(target):
        if not built.exists():  # another process built it while this one waited
            with staged(target) as staging:
                build(staging)
    return target


def go_install(args: list[str], gobin: Path, env: Mapping[str, str], out: Any) -> None:
    """``go install args`` into ``gobin``, with VCS stamping off (modules have no .git)."""
    subprocess.run(
        ["go", "install", *args],
        env={**env, "GOBIN": str(gobin), "GOFLAGS": "-buildvcs=false"},
        check=True,
        stdout=out,
        stderr=out,
        cwd=gobin,
    )


def ensure_built(log: bool = True) -> Path:
    """The folder holding every binary, building it first when the cache misses."""
    target = bin_dir()
    if (target / MULTICALL).exists():
        return target
    if shutil.which("go") is None:
        raise RuntimeError("Go is needed to build the local cluster; `make deps` installs it")
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false"}
    out = sys.stderr if log else subprocess.DEVNULL

    def build(staging: Path) -> None:
        started = time.monotonic()
        print(f"building the local cluster into {target} (cold: several minutes)", file=sys.stderr)
        _build_cluster(staging, env, out)
        print(f"built in {time.monotonic() - started:.0f} s", file=sys.stderr)

    return build_once(target, target / MULTICALL, build)


def _build_cluster(staging: Path, env: Mapping[str, str], out: Any) -> None:
    subprocess.run(
        [
            "go",
            "build",
            "-ldflags",
            _ldflags(kubernetes_version()),
            "-o",
            str(staging / MULTICALL),
            "./cmd/leptoncluster",
        ],
        cwd=CLUSTER_SRC,
        env=env,
        check=True,
        stdout=out,
        stderr=out,
    )
    for component in COMPONENTS:
        (staging / component).symlink_to(MULTICALL)
    installs = [[tool] for tool in tools()]
    installs += [stamped.install_args() for stamped in STAMPED_TOOLS]
    for args in installs:
        go_install(args, staging, env, out)


def ensure_tool(tool: StampedTool, log: bool = True) -> Path:
    """The path of ``tool``'s binary, ``go install``-ed first when its cache misses.

    Why not part of ``ensure_built``: the cluster's cache key would change with every
    tool a test adds, rebuilding the whole control plane for one small program.
    """
    digest = hashlib.sha256(tool.identity().encode()).hexdigest()[:12]
    name = tool.package.rsplit("/", 1)[-1]
    target = cache_root() / f"{name}-{digest}"
    if (target / name).exists():
        return target / name
    if shutil.which("go") is None:
        raise RuntimeError(f"Go is needed to build {name}; `make deps` checks for it")
    out = sys.stderr if log else subprocess.DEVNULL

    def build(staging: Path) -> None:
        print(f"building {tool.spec} into {target}", file=sys.stderr)
        go_install(tool.install_args(), staging, os.environ, out)

    return build_once(target, target / name, build) / name
