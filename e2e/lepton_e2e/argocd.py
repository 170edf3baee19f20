"""Real Argo CD against the local cluster: its application controller and repo-server,
built from Go modules, with Redis from Debian, each a local process.

Why real: what the GitOps story promises (our Lua health check evaluated by Argo CD, an
Application that stays ``Synced`` while the operator writes status and scales, a prune
that never deletes what the operator made) is Argo CD's behaviour, not ours; only the
real controller can confirm it. No API server, UI or Dex: Applications are objects,
created with kubectl like any other.

The binary is Argo CD's own multi-call one (``ARGOCD_BINARY_NAME`` picks the
component), built once into a cache folder keyed by ``e2e/argocd/go.mod``, ``go.sum``
and the ldflags, like the cluster's binaries. Processes record their pids beside the
cluster's, so ``Cluster.down`` stops them too.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config as kube_config

from lepton_e2e import binaries
from lepton_e2e.argocd_build import COMPONENTS, ensure_built
from lepton_e2e.cluster import Cluster, pid_file_running, stop_process_groups
from lepton_e2e.crds import wait_established

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "argocd"
REDIS_PORT = 6390  # not 6379: a developer's own Redis may hold that
REPO_SERVER_PORT = 8081
PART_OF = {"app.kubernetes.io/part-of": "argocd"}


@dataclass
class ArgoCD:
    """Argo CD running against ``cluster``: Redis, repo-server, application controller.

    ``server`` is the destination URL Applications must name: the local apiserver,
    registered as a cluster Secret, since ``https://kubernetes.default.svc`` would need
    in-cluster credentials that a process on the host does not have.
    """

    cluster: Cluster

    @property
    def server(self) -> str:
        return self.cluster.config.server

    @property
    def home(self) -> Path:
        return self.cluster.dir / "argocd"

    # ---- public ----------------------------------------------------------------------
    def up(self, timeout: float = 120) -> None:
        """Install Argo CD's objects and start its processes (idempotent)."""
        argocd_bin = ensure_built()
        cluster_bin = binaries.ensure_built()
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is needed (Debian package redis-server; make deps)")
        self.home.mkdir(parents=True, exist_ok=True)
        # Server-side: the Application CRD (about 400 KB) is over the 256 KB that
        # client-side apply's last-applied annotation may hold.
        for crd in ("application-crd.yaml", "appproject-crd.yaml"):
            self._kubectl(cluster_bin, "apply", "--server-side", "-f", str(argocd_bin / crd))
        api = kube_config.new_client_from_config(str(self.cluster.config.kubeconfig))
        with contextlib.closing(api):
            wait_established(api, ["applications.argoproj.io", "appprojects.argoproj.io"])
        self._kubectl(
            cluster_bin, "apply", "-f", "-", stdin=yaml.safe_dump_all(self._objects(argocd_bin))
        )
        env = {
            "ARGOCD_GPG_ENABLED": "false",
            # The wrapper and helm must be on the repo-server's PATH: without the wrapper
            # every manifest generation fails with "permission denied".
            "PATH": os.pathsep.join([str(argocd_bin), str(cluster_bin), os.environ["PATH"]]),
            "HOME": str(self.home),
            "KUBECONFIG": str(self.cluster.config.kubeconfig),
        }
        redis = f"127.0.0.1:{REDIS_PORT}"
        self._start(
            "argocd-redis",
            [
                *("redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.home)),
            ],
            env,
        )
        self._wait_port(REDIS_PORT, timeout, "argocd-redis")
        self._start(
            "argocd-repo-server",
            [
                *(str(argocd_bin / "argocd-repo-server"), "--redis", redis),
                *("--address", "127.0.0.1", "--port", str(REPO_SERVER_PORT)),
                *("--metrics-address", "127.0.0.1", "--disable-tls", "--client-ca-path", ""),
                *("--loglevel", "info"),
            ],
            {**env, "ARGOCD_BINARY_NAME": "argocd-repo-server"},
        )
        self._wait_port(REPO_SERVER_PORT, timeout, "argocd-repo-server")
        self._start(
            "argocd-application-controller",
            [
                str(argocd_bin / "argocd-application-controller"),
                *("--kubeconfig", str(self.cluster.config.kubeconfig), "--namespace", NAMESPACE),
                *("--repo-server", f"127.0.0.1:{REPO_SERVER_PORT}", "--repo-server-plaintext"),
                *("--redis", redis, "--loglevel", "info"),
            ],
            {
                **env,
                "ARGOCD_BINARY_NAME": "argocd-application-controller",
                # Argo CD 3 keeps each resource's health (our Lua's status and message)
                # only in Redis for its API server, which is not run here; persisted, it
                # is also in the Application's status.resources, where tests read it.
                # Health is evaluated the same either way.
                "ARGOCD_APPLICATION_CONTROLLER_PERSIST_RESOURCE_HEALTH": "true",
            },
        )

    def down(self) -> None:
        """Stop Argo CD's processes; its objects go with the cluster."""
        pid_files = [self.cluster.pids / f"{name}.pid" for name in ("argocd-redis", *COMPONENTS)]
        stop_process_groups(pid_files)
        for pid_file in pid_files:
            pid_file.unlink(missing_ok=True)

    def alive(self) -> list[str]:
        """The components whose process is running (a test checks none has died)."""
        return [
            name
            for name in ("argocd-redis", *COMPONENTS)
            if pid_file_running(self.cluster.pids / f"{name}.pid")
        ]

    def log(self, component: str) -> Path:
        return self.cluster.logs / f"{component}.log"

    # ---- objects ---------------------------------------------------------------------
    def _objects(self, argocd_bin: Path) -> list[dict[str, Any]]:
        """Namespace, Argo CD's ConfigMaps and Secret, the default AppProject, and the
        local apiserver as a cluster Secret (a bearer token, the serving CA)."""
        defaults = yaml.safe_load((argocd_bin / "argocd-cm.yaml").read_text())
        health = yaml.safe_load((REPO / "docs" / "argocd" / "argocd-cm.yaml").read_text())
        token = (self.cluster.pki / "admin.token").read_text().strip()
        ca = (self.cluster.pki / "serving" / "apiserver.crt").read_bytes()
        cluster_config = {
            "bearerToken": token,
            "tlsClientConfig": {"insecure": False, "caData": base64.b64encode(ca).decode()},
        }

        def meta(name: str, **labels: str) -> dict[str, Any]:
            return {"name": name, "namespace": NAMESPACE, "labels": {**PART_OF, **labels}}

        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta("argocd-cm", **{"app.kubernetes.io/name": "argocd-cm"}),
                # Argo CD's shipped defaults plus our Lua health check, exactly as
                # docs/argocd/argocd-cm.yaml patches it in.
                "data": {**defaults["data"], **health["data"]},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta("argocd-rbac-cm", **{"app.kubernetes.io/name": "argocd-rbac-cm"}),
                "data": {},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta("argocd-secret", **{"app.kubernetes.io/name": "argocd-secret"}),
                "stringData": {"server.secretkey": base64.b64encode(os.urandom(32)).decode()},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta(
                    "cluster-lepton-e2e", **{"argocd.argoproj.io/secret-type": "cluster"}
                ),
                "stringData": {
                    "name": "lepton-e2e",
                    "server": self.server,
                    "config": json.dumps(cluster_config),
                },
            },
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AppProject",
                "metadata": {"name": "default", "namespace": NAMESPACE},
                "spec": {
                    "sourceRepos": ["*"],
                    "destinations": [{"server": "*", "namespace": "*"}],
                    "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                },
            },
        ]

    # ---- processes -------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        """A daemon in a session of its own, its pid beside the cluster's (see
        ``Cluster._start``, whose conventions this follows so ``Cluster.down`` stops it)."""
        pid_file = self.cluster.pids / f"{name}.pid"
        if pid_file.exists() and name in self.alive():
            return
        with self.log(name).open("ab") as log:
            subprocess.run(
                [
                    *("setsid", "--fork", "sh", "-c"),
                    'echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec "$@"',
                    str(pid_file),
                    *argv,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=True,
                env={**os.environ, **env},
                cwd=self.home,
            )
        deadline = time.monotonic() + 5
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _wait_port(self, port: int, timeout: float, name: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            if name not in self.alive():
                raise RuntimeError(f"{name} exited; see {self.log(name)}")
            time.sleep(0.2)
        raise TimeoutError(f"{name} did not listen on {port} in {timeout:.0f} s")

    def _kubectl(self, cluster_bin: Path, *args: str, stdin: str | None = None) -> None:
        result = subprocess.run(
            [str(cluster_bin / "kubectl"), f"--kubeconfig={self.cluster.config.kubeconfig}", *args],
            input=stdin,
            text=True,
            capture_output=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
