"""pytest fixtures for the real local cluster.

``kube`` (session-scoped) brings the harness's cluster up once for every pytest process
of a run (the xdist workers share it, ``lanes.cluster_in_use``) and takes it down after
the last, unless ``KUBECONFIG`` points at a cluster already running (then it is used and
left alone), or ``LEPTON_E2E_KEEP=1`` asks to keep it for the next run. ``lane`` is the
test module's lane (``lanes``); ``namespace`` gives each test a namespace of its own in
that lane, deleted afterwards. ``prometheus`` runs a real Prometheus 3 per lane that
discovers Triton Services.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from lepton_e2e import binaries, shipped_images
from lepton_e2e.cluster import Cluster, ClusterConfig, state_root
from lepton_e2e.crds import wait_established
from lepton_e2e.lanes import SOLO, Lane, cluster_in_use, lane_of
from lepton_e2e.prometheus import KubeAccess, PrometheusServer, triton_endpoints_job
from lepton_e2e.waiting import wait_for
from lepton_operator.watched import watches

REPO = Path(__file__).resolve().parents[2]
LEPTON_CRD = "leptonmodels.lepton.ai"


@dataclass
class Kube:
    """A handle on the cluster under test: its kubeconfig, kubectl, and API clients."""

    kubeconfig: Path
    bin_dir: Path
    api: client.ApiClient
    runs_process_pods: bool

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply(self, *documents: dict[str, Any], namespace: str | None = None) -> None:
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.kubectl(*args, stdin=yaml.safe_dump_all(documents))

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
        document: dict[str, Any] = json.loads(out)
        return document

    def list(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args).stdout)["items"]
        return items

    def install_crds(self) -> None:
        """The project's CRDs from ``crds/``, as a user applies them, and served."""
        self.kubectl("apply", "-f", str(REPO / "crds"))
        wait_established(self.api, [LEPTON_CRD], timeout=30)


def crash_container(namespace: str, pod: str, container: str) -> None:
    """SIGKILLs a process pod's container, as a segfault or the OOM killer would: no
    clean shutdown, and nothing else in the pod touched. The pod runner restarts it
    in place (restartPolicy Always), as a kubelet does."""
    group = state_root() / "pods" / f"{namespace}_{pod}" / f"{container}.pgid"
    os.killpg(int(group.read_text()), signal.SIGKILL)


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    cluster = Cluster()
    external = os.environ.get("KUBECONFIG")
    if external and Path(external).resolve() == cluster.config.kubeconfig.resolve():
        external = None  # pointed at the harness's own cluster: it runs process pods
    if external:
        bin_dir = binaries.ensure_built()
        with _client(Path(external), bin_dir, runs_process_pods=False) as handle:
            yield handle
        return

    def up() -> Path:
        binaries.ensure_built()
        shipped_images.ensure_built()  # the runner starts the chart's pods from them
        return cluster.up()

    keep = os.environ.get("LEPTON_E2E_KEEP") == "1"
    in_use = cluster_in_use(cluster.is_up, up, lambda: cluster.down(quiet=True), keep)
    with in_use as kubeconfig, _client(kubeconfig, binaries.bin_dir(), True) as handle:
        yield handle


@contextlib.contextmanager
def _client(kubeconfig: Path, bin_dir: Path, runs_process_pods: bool) -> Iterator[Kube]:
    api = config.new_client_from_config(str(kubeconfig))
    try:
        yield Kube(kubeconfig, bin_dir, api, runs_process_pods)
    finally:
        api.close()


@pytest.fixture(scope="module")
def lane(request: pytest.FixtureRequest) -> Lane:
    """The test module's lane: its operator release, namespaces and Prometheus."""
    return lane_of(request.path)


@pytest.fixture
def namespace(kube: Kube, lane: Lane) -> Iterator[str]:
    name = lane.namespace(secrets.token_hex(3))
    kube.kubectl("create", "namespace", name)
    # Pods may only start once the namespace's default ServiceAccount exists.
    wait_for(
        lambda: (
            kube.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode
            == 0
        ),
        what=f"the default ServiceAccount in {name}",
    )
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


OPERATOR_NAMESPACE = SOLO.operator_namespace  # a single install's, lane A's
# The stand-in builder (a real process pod writing a fixed report, lepton_e2e.fixture_builder)
# and a Triton image no process stands for, so KWOK simulates its pods: what the tests
# about the operator's lifecycle install it with.
FIXTURE_BUILDER = "e2e.lepton.local/fixture-builder:1"
SIMULATED_TRITON = "e2e.lepton.local/kwok-simulated-triton:1"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
CHART = Path(__file__).resolve().parents[2] / "charts" / "lepton-operator"


def helm(kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(kube.bin_dir / "helm"), f"--kubeconfig={kube.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


@contextlib.contextmanager
def installed_operator(
    kube: Kube, builder_image: str, *sets: str, lane: Lane = SOLO, uninstall: bool = True
) -> Iterator[None]:
    """The chart installed as ``lane``'s release into its namespace, which enforces
    restricted Pod Security; the operator runs as real process pods (two replicas, one
    Lease holder) and watches the lane's namespaces. Removed afterwards, with the models
    of those namespaces, unless not ``uninstall``: where the whole cluster goes down
    next (the demo), an orderly removal only waits (49 s of a 6-minute demo).
    ``sets`` are extra ``--set`` values, e.g. the Prometheus URL."""
    assert kube.runs_process_pods, "the operator runs as a process pod of the harness"
    home = lane.operator_namespace
    # The previous module's operator namespace may still be Terminating (its deletion
    # waits at most 120 s): creating it again now would fail AlreadyExists.
    wait_for(
        lambda: kube.kubectl("get", "namespace", home, check=False).returncode,
        timeout=300,
        interval=2,
        what=f"namespace {home} of an earlier install gone",
    )
    kube.kubectl("create", "namespace", home)
    kube.kubectl("label", "namespace", home, RESTRICTED)
    helm(
        kube,
        "install",
        lane.release,
        str(CHART),
        "-n",
        home,
        "--set-json",
        f"config.watchNamespaces={json.dumps(list(lane.watch))}",
        "--set",
        f"config.images.builder={builder_image}",
        # The local Triton is the nvidia-pytriton wheel's: the python backend only.
        "--set-json",
        "config.images.tritonNativeBackends=[]",
        "--set",
        "logFormat=plain",
        *(arg for value in sets for arg in ("--set", value)),
        "--wait",
        "--timeout",
        "180s",
    )
    if not uninstall:
        yield
        return
    try:
        yield
    finally:
        # The models go first, while the operator runs: each carries kopf's finalizer
        # (the operator's timer needs it), which only the operator lifts. A test's
        # namespace deleted without waiting would otherwise be stuck Terminating, and
        # the CRD with it. Only this lane's: the other lane's operator lifts its own.
        for namespace in _model_namespaces(kube, lane):
            kube.kubectl(
                *("delete", "leptonmodels.lepton.ai", "--all", "-n", namespace),
                *("--wait=true", "--timeout=100s"),
                check=False,
            )
        helm(kube, "uninstall", lane.release, "-n", home, "--wait")
        kube.kubectl("delete", "namespace", home, "--wait=true", "--timeout=120s", check=False)


def _model_namespaces(kube: Kube, lane: Lane) -> list[str]:
    """The namespaces holding a LeptonModel that ``lane``'s operator watches."""
    listed = kube.kubectl(
        "get", "leptonmodels.lepton.ai", "--all-namespaces", "-o", "json", check=False
    )
    items = json.loads(listed.stdout)["items"] if listed.returncode == 0 else []
    namespaces = {item["metadata"]["namespace"] for item in items}
    return sorted(ns for ns in namespaces if watches(ns, lane.watch))


def shared_claim(kube: Kube, namespace: str, name: str) -> None:
    """A ReadWriteMany claim of 1Gi named ``name``, as a team makes one for its models."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace=namespace,
    )


def model_namespace(kube: Kube, namespace: str) -> str:
    """Make ``namespace`` enforce restricted Pod Security and hold a ``models`` claim,
    the PVC the examples' pvc://models/... URIs name, as a user's namespace would."""
    kube.kubectl("label", "namespace", namespace, RESTRICTED)
    shared_claim(kube, namespace, "models")
    return namespace


def models_claim(kube: Kube, namespace: str) -> Path:
    """``model_namespace``, its ``models`` claim bound, and the folder on this machine
    that holds the claim's files: where a test puts the model its LeptonModel names."""
    model_namespace(kube, namespace)
    wait_for(
        lambda: kube.get("pvc", "models", namespace)["status"].get("phase") == "Bound",
        what="the models claim bound",
    )
    return state_root() / "pvcs" / namespace / "models"


NAMESPACE_CACHE = "lepton-source-cache"  # the chart's default builds.sourceCacheClaim


def suite_cache() -> Path:
    """The folder every e2e module's namespace cache shares, for the cluster's life: a
    build one module made (the same bytes, settings, builder and hardware) is reused by
    the next instead of made again; each ``make test`` starts without one."""
    return state_root() / "shared" / NAMESPACE_CACHE


def namespace_cache(kube: Kube, namespace: str, folder: Path) -> None:
    """The namespace's cache claim (downloads and finished builds) on ``folder``, which
    other namespaces' claims may share, as claims bound to volumes of one NFS export do.
    The local cluster's volumes are folders: the claim's is linked to ``folder`` before
    the claim is made; the teardown's volume clean-up removes the link, not the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    link = state_root() / "pvcs" / namespace / NAMESPACE_CACHE
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(folder, target_is_directory=True)
    shared_claim(kube, namespace, NAMESPACE_CACHE)


def prometheus_for(kube: Kube, lane: Lane = SOLO) -> PrometheusServer:
    """A real Prometheus 3 (not started) discovering the operator's Triton Services.

    On the harness's cluster it listens on the pod bridge's gateway
    (``http://10.244.0.1:9090``; the lane's port), so the operator, itself a process
    pod, reaches it as an in-cluster Prometheus; on another cluster, on loopback. Its
    data starts fresh.
    """
    host = ClusterConfig.default().network.gateway if kube.runs_process_pods else "127.0.0.1"
    home = state_root() / f"prometheus-{lane.name}"
    shutil.rmtree(home, ignore_errors=True)
    access = KubeAccess.from_kubeconfig(kube.kubeconfig, home / "secrets")
    return PrometheusServer(
        home,
        f"{host}:{lane.prometheus_port}",
        [triton_endpoints_job(access)],
        binary=kube.bin_dir / "prometheus",
    )


@pytest.fixture(scope="session")
def _prometheus_by_lane(kube: Kube) -> Iterator[dict[str, PrometheusServer]]:
    """The lanes' Prometheus servers this process started, stopped at its end."""
    servers: dict[str, PrometheusServer] = {}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def prometheus(
    kube: Kube, lane: Lane, _prometheus_by_lane: dict[str, PrometheusServer]
) -> PrometheusServer:
    """``prometheus_for`` the module's lane, fresh for each session (the modules of a
    lane share it); ``stop()``/``start()`` keep its data within one."""
    if lane.name not in _prometheus_by_lane:
        server = prometheus_for(kube, lane)
        server.start()
        _prometheus_by_lane[lane.name] = server
        server.wait_ready()
    return _prometheus_by_lane[lane.name]
