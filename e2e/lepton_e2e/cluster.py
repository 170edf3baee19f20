"""Starts and stops the real local cluster: etcd, kube-apiserver, controller-manager,
scheduler, KWOK and the pod runner, each its own process.

The apiserver binds the host side of the pod bridge (not loopback), so pods that run
as processes in their own network namespaces reach it exactly as in-cluster clients
do, and it verifies as ``kubernetes.default.svc`` and by that address. It runs with
RBAC, service-account tokens and the default admission plugins (PodSecurity among
them), like a real cluster. State lives under one folder; the kubeconfig path is fixed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lepton_e2e import binaries
from lepton_e2e.images import KWOK_IMAGE_REPOSITORIES, load_image_table
from lepton_e2e.netns import Network, kill_processes_in, namespaces_with_prefix
from lepton_e2e.pools import load_pools, node_manifests

TEARDOWN_GRACE_S = 5.0  # a component's SIGTERM-to-SIGKILL when the cluster is taken down
KWOK_STAGES = ("node/fast", "node/heartbeat-with-lease", "pod/fast")
# A builder image no process stands for: KWOK runs its pods, and completes one only once
# something playing the builder (the scale benchmark) has written the build report and
# marked the pod with this annotation, so the operator never reads a report not yet
# written. For many builds at once where a process each would swamp two cores.
GATED_BUILDER_IMAGE = "e2e.lepton.local/kwok-gated-builder"
REPORT_WRITTEN_ANNOTATION = "e2e.lepton.local/report-written"
SERVICE_CIDR = "10.96.0.0/16"
KWOK_POD_CIDR = "10.0.0.0/16"


def state_root() -> Path:
    return Path(os.environ.get("LEPTON_E2E_HOME", "/tmp/lepton-e2e"))


@dataclass(frozen=True)
class ClusterConfig:
    state_dir: Path
    network: Network
    apiserver_port: int = 6443
    etcd_port: int = 2379

    @classmethod
    def default(cls) -> ClusterConfig:
        return cls(state_dir=state_root(), network=Network(bridge="lepton0", cidr="10.244.0.0/16"))

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.network.gateway}:{self.apiserver_port}"


class Cluster:
    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig.default()
        self.dir = self.config.state_dir
        self.pki = self.dir / "pki"
        self.logs = self.dir / "logs"
        self.pids = self.dir / "pids"

    # ---- public ----------------------------------------------------------------------
    def is_up(self) -> bool:
        return self.kubeconfig_ready() and self._ready("/readyz")

    def kubeconfig_ready(self) -> bool:
        return self.config.kubeconfig.exists() and all(
            self._alive(name) for name in ("etcd", "kube-apiserver")
        )

    def up(self, timeout: float = 120) -> Path:
        """Bring the cluster up (or find it up) and return its kubeconfig path."""
        if self.is_up():
            return self.config.kubeconfig
        self.down(quiet=True)
        started = time.monotonic()
        bin_dir = binaries.ensure_built()
        built = time.monotonic()
        for folder in (self.pki, self.logs, self.pids):
            folder.mkdir(parents=True, exist_ok=True)
        cluster_id = secrets.token_hex(2)
        (self.dir / "cluster-id").write_text(cluster_id)
        self.config.network.up()
        self._write_pki()
        self._start(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--data-dir",
                str(self.dir / "etcd"),
                "--listen-client-url",
                f"http://127.0.0.1:{self.config.etcd_port}",
                "--listen-peer-url",
                f"http://127.0.0.1:{self.config.etcd_port + 1}",
            ],
        )
        self._start("kube-apiserver", [str(bin_dir / "kube-apiserver"), *self._apiserver_flags()])
        self._wait(lambda: self._ready("/readyz"), timeout, "kube-apiserver /readyz")
        self._write_kubeconfig()
        self._start(
            "kube-controller-manager",
            [str(bin_dir / "kube-controller-manager"), *self._controller_manager_flags()],
        )
        self._start("kube-scheduler", [str(bin_dir / "kube-scheduler"), *self._scheduler_flags()])
        self._start("kwok", [str(bin_dir / "kwok"), *self._kwok_flags()])
        self._kubectl(bin_dir, ["apply", "-f", "-"], stdin=self._nodes_document())
        self._start(
            "pod-runner",
            [sys.executable, "-m", "lepton_e2e", "pod-runner"],
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        self._wait(lambda: self._nodes_ready(bin_dir), timeout, "every KWOK node Ready")
        self._wait(
            lambda: self._default_service_account(bin_dir),
            timeout,
            "the default ServiceAccount (controller-manager)",
        )
        ready = time.monotonic()
        (self.dir / "timings.json").write_text(
            json.dumps(
                {"build_s": round(built - started, 1), "start_to_ready_s": round(ready - built, 1)}
            )
        )
        return self.config.kubeconfig

    def down(self, quiet: bool = False) -> None:
        """Stop every process, remove pod namespaces and the bridge, and wipe state."""
        if self.pids.exists():
            # Everything goes, its state wiped next: no shutdown is worth waiting out
            # (the pod runner lingered in its pods' grace periods), and the pods'
            # processes, their own sessions, are killed by namespace below.
            stop_process_groups(sorted(self.pids.glob("*.pid")), grace=TEARDOWN_GRACE_S)
        cluster_id = (
            (self.dir / "cluster-id").read_text() if (self.dir / "cluster-id").exists() else None
        )
        if cluster_id:
            for name in namespaces_with_prefix(f"lepton-{cluster_id}-"):
                kill_processes_in(name)  # pods outlive a runner that is already gone
                subprocess.run(["ip", "netns", "del", name], check=False)
        self.config.network.down()
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        if not quiet:
            print(f"cluster down; state removed from {self.dir}", file=sys.stderr)

    def restart_apiserver(self, timeout: float = 120) -> float:
        """Stop kube-apiserver and start it again with the same flags on the same etcd
        (its data kept), as a control-plane upgrade or a crash-and-restart would; returns
        the seconds from the stop until /readyz answered again.

        SIGTERM to its process group, which closes open watches at once (clients see
        them end and reconnect) and stops it listening; SIGKILL after 5 s, as it may
        linger in its graceful termination (seen: 15 s) with no one to serve.
        """
        bin_dir = binaries.ensure_built()
        pid_file = self.pids / "kube-apiserver.pid"
        stopped = time.monotonic()
        stop_process_group(pid_file, grace=5)
        pid_file.unlink(missing_ok=True)  # so _wait never reads the old pid as "exited"
        self._start("kube-apiserver", [str(bin_dir / "kube-apiserver"), *self._apiserver_flags()])
        self._wait(lambda: self._ready("/readyz"), timeout, "kube-apiserver /readyz after restart")
        return time.monotonic() - stopped

    # ---- configuration ---------------------------------------------------------------
    def _write_pki(self) -> None:
        key, pub = self.pki / "sa.key", self.pki / "sa.pub"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
            check=True,
            capture_output=True,
        )
        token = secrets.token_hex(24)
        (self.pki / "admin.token").write_text(token)
        (self.pki / "tokens.csv").write_text(
            f'{token},lepton-e2e-admin,uid-admin,"system:masters"\n'
        )

    def _apiserver_flags(self) -> list[str]:
        gateway = self.config.network.gateway
        return [
            f"--etcd-servers=http://127.0.0.1:{self.config.etcd_port}",
            f"--bind-address={gateway}",
            f"--advertise-address={gateway}",
            f"--secure-port={self.config.apiserver_port}",
            f"--cert-dir={self.pki / 'serving'}",
            f"--token-auth-file={self.pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={self.pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=false",
            "--profiling=false",
            "--v=1",
        ]

    def _component_kubeconfig(self) -> str:
        return str(self.config.kubeconfig)

    def _controller_manager_flags(self) -> list[str]:
        return [
            f"--kubeconfig={self._component_kubeconfig()}",
            f"--authentication-kubeconfig={self._component_kubeconfig()}",
            f"--authorization-kubeconfig={self._component_kubeconfig()}",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self._ca_file()}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=10257",
            f"--cluster-cidr={KWOK_POD_CIDR}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-route,-service",
            "--v=1",
        ]

    def _scheduler_flags(self) -> list[str]:
        return [
            f"--kubeconfig={self._component_kubeconfig()}",
            f"--authentication-kubeconfig={self._component_kubeconfig()}",
            f"--authorization-kubeconfig={self._component_kubeconfig()}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=10259",
            "--v=1",
        ]

    def _kwok_flags(self) -> list[str]:
        stages = self._write_kwok_stages()
        return [
            f"--kubeconfig={self._component_kubeconfig()}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={KWOK_POD_CIDR}",
            f"--node-ip={self.config.network.gateway}",
            "--server-address=127.0.0.1:10247",
            # The heartbeat-with-lease stage refreshes node conditions only every 10
            # minutes and relies on node Leases; without them the node lifecycle
            # controller marks every node NotReady after its grace period, and pods on
            # them lose Ready for good.
            "--node-lease-duration-seconds=40",
            f"--config={stages}",
        ]

    def _write_kwok_stages(self) -> Path:
        """KWOK's shipped stages, with the pod ones taught to skip process-backed pods."""
        module_dir = _go_module_dir("sigs.k8s.io/kwok", _tool_version("sigs.k8s.io/kwok"))
        exclusion = load_image_table().kwok_exclusion()
        documents: list[dict[str, Any]] = []
        for stage in KWOK_STAGES:
            folder = module_dir / "kustomize" / "stage" / stage
            kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
            for resource in kustomization["resources"]:
                document = yaml.safe_load((folder / resource).read_text())
                if stage.startswith("pod/"):
                    selector = document["spec"].setdefault("selector", {})
                    selector.setdefault("matchExpressions", []).append(exclusion)
                if document["metadata"]["name"] == "pod-complete":
                    documents.append(_gated_completion(document))
                    _match(document).append({**_image_term(), "operator": "NotIn"})
                documents.append(document)
        path = self.dir / "kwok-stages.yaml"
        path.write_text(yaml.safe_dump_all(documents))
        return path

    def _ca_file(self) -> Path:
        return self.pki / "serving" / "apiserver.crt"

    def _write_kubeconfig(self) -> None:
        token = (self.pki / "admin.token").read_text()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "lepton-e2e",
                    "cluster": {
                        "server": self.config.server,
                        "certificate-authority": str(self._ca_file()),
                    },
                }
            ],
            "users": [{"name": "lepton-e2e-admin", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "lepton-e2e",
                    "context": {"cluster": "lepton-e2e", "user": "lepton-e2e-admin"},
                }
            ],
            "current-context": "lepton-e2e",
        }
        self.config.kubeconfig.write_text(yaml.safe_dump(config))
        self.config.kubeconfig.chmod(0o600)

    def _nodes_document(self) -> str:
        return yaml.safe_dump_all(node_manifests(load_pools()))

    # ---- processes -------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start a daemon in a session of its own that outlives this Python process.

        ``setsid --fork`` detaches it, and the shell records its own pid (which ``exec``
        hands on to the program) so ``down`` can stop the whole process group later.
        """
        pid_file = self.pids / f"{name}.pid"
        with (self.logs / f"{name}.log").open("ab") as log:
            subprocess.run(
                [
                    "setsid",
                    "--fork",
                    "sh",
                    "-c",
                    'echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec "$@"',
                    str(pid_file),
                    *argv,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=True,
                env={
                    **os.environ,
                    "KUBECONFIG": str(self.config.kubeconfig),
                    "LEPTON_E2E_HOME": str(self.dir),
                    **(env or {}),
                },
            )
        deadline = time.monotonic() + 5
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _alive(self, name: str) -> bool:
        return pid_file_running(self.pids / f"{name}.pid")

    # ---- readiness -------------------------------------------------------------------
    def _ready(self, path: str) -> bool:
        ca = self._ca_file()
        if not ca.exists() or not (self.pki / "admin.token").exists():
            return False
        context = ssl.create_default_context(cafile=str(ca))
        request = urllib.request.Request(
            self.config.server + path,
            headers={"Authorization": f"Bearer {(self.pki / 'admin.token').read_text()}"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _kubectl(
        self, bin_dir: Path, args: list[str], stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "kubectl"), f"--kubeconfig={self.config.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )

    def _nodes_ready(self, bin_dir: Path) -> bool:
        out = self._kubectl(bin_dir, ["get", "nodes", "-o", "json"]).stdout
        nodes = json.loads(out)["items"]
        expected = sum(pool.count for pool in load_pools())
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= expected

    def _default_service_account(self, bin_dir: Path) -> bool:
        try:
            self._kubectl(bin_dir, ["get", "serviceaccount", "default", "-n", "default"])
            self._kubectl(bin_dir, ["get", "configmap", "kube-root-ca.crt", "-n", "default"])
        except subprocess.CalledProcessError:
            return False
        return True

    def _wait(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            for name in ("etcd", "kube-apiserver"):
                if (self.pids / f"{name}.pid").exists() and not self._alive(name):
                    raise RuntimeError(f"{name} exited; see {self.logs / (name + '.log')}")
            time.sleep(0.5)
        raise TimeoutError(
            f"timed out after {timeout:.0f} s waiting for {what}; logs in {self.logs}"
        )


def _tool_version(module: str) -> str:
    for tool in binaries.tools():
        if tool.startswith(module + "/"):
            return tool.rsplit("@", 1)[1]
    raise KeyError(module)


def _go_module_dir(module: str, version: str) -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return Path(json.loads(out.stdout)["Dir"])


def stop_process_group(pid_file: Path, grace: float = 15) -> None:
    """SIGTERM the process group a pid file names, SIGKILL it after ``grace`` s. A
    missing or stale pid file means there is nothing to stop."""
    stop_process_groups([pid_file], grace)


def stop_process_groups(pid_files: Iterable[Path], grace: float = 15) -> None:
    """SIGTERM every process group the pid files name at once, then SIGKILL those still
    running after ``grace`` s: one grace period for all, not one each (stopped in turn,
    a cluster's components took 41 s to stop, each lingering in its own shutdown)."""
    signalled: list[int] = []
    for pid_file in pid_files:
        try:
            pid = int(pid_file.read_text())
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, ValueError, PermissionError, FileNotFoundError):
            continue
        signalled.append(pid)
    deadline = time.monotonic() + grace
    while signalled and time.monotonic() < deadline:
        signalled = [pid for pid in signalled if pid_running(pid)]
        if signalled:
            time.sleep(0.2)
    for pid in signalled:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def pid_running(pid: int) -> bool:
    """Whether a process of that pid exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_file_running(pid_file: Path) -> bool:
    """Whether the process a pid file names runs; a missing or unreadable file: no."""
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return False
    return pid_running(pid)


def _match(stage: dict[str, Any]) -> list[dict[str, Any]]:
    expressions: list[dict[str, Any]] = stage["spec"]["selector"]["matchExpressions"]
    return expressions


def _image_term() -> dict[str, Any]:
    return {
        "key": KWOK_IMAGE_REPOSITORIES,
        "values": [GATED_BUILDER_IMAGE],
    }


def _gated_completion(pod_complete: dict[str, Any]) -> dict[str, Any]:
    """KWOK's pod-complete stage for the gated builder image, once the report is in."""
    stage = copy.deepcopy(pod_complete)
    stage["metadata"]["name"] = "pod-complete-once-reported"
    _match(stage).extend(
        [
            {**_image_term(), "operator": "In"},
            {
                "key": f'.metadata.annotations["{REPORT_WRITTEN_ANNOTATION}"]',
                "operator": "Exists",
            },
        ]
    )
    return stage
