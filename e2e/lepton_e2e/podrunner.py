"""The kubelet for process-backed pods: runs them for real and reports back.

Scheduled pods whose images are all in the image table are started as local
processes, each in a network namespace of its own (a real pod IP) and a private
mount namespace (volumes at their real mountPaths), from the pod's own command,
args, env and mounts. Their fate is written back as pod status: Running, Ready by
the readiness probe, Succeeded or Failed with exit code and termination message.
KWOK's stages exclude these pods, so nothing else writes their status.

Not covered (the product does not need them): liveness and startup probes, ephemeral
containers, sidecar init containers, resource enforcement, `kubectl logs` and `exec`
(logs are files under the cluster's state folder: ``pods/<ns>_<name>/<container>.log``,
beside ``<container>.pgid``, the process group of its running process).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from lepton_e2e import binaries, imagefs, podspec
from lepton_e2e.images import ImageTable
from lepton_e2e.netns import Network, PodNamespace

log = logging.getLogger("lepton_e2e.podrunner")
E2E_DIR = Path(__file__).resolve().parents[1]


# How long a status write is retried while the apiserver cannot be reached.
STATUS_RETRY_SECONDS = 120.0


def image_exec_spec(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    facts: podspec.PodFacts,
    objects: podspec.Lookup,
    image: imagefs.UnpackedImage,
    service_env: dict[str, str],
) -> dict[str, Any]:
    """``podexec``'s spec for a container run from its image: the image's root
    filesystem and its config's entrypoint, env, user and working directory, under the
    pod's own command, args, env and securityContext, as a kubelet and a container
    runtime combine them. ``write_exec_spec`` adds the mounts and the termination log."""
    config = image.config
    env = podspec.container_env(container, facts, objects, {**config.env, **service_env})
    user = podspec.run_as(pod_spec, container, config.uid, config.gid)
    argv = config.argv(container.get("command"), container.get("args"))
    return {
        "rootfs": str(image.rootfs),
        "argv": podspec.expand_argv(argv, env),
        "env": env,
        "workingDir": container.get("workingDir") or config.working_dir,
        "uid": user.uid,
        "gid": user.gid,
        "groups": list(user.groups),
        "readOnlyRoot": bool(
            (container.get("securityContext") or {}).get("readOnlyRootFilesystem")
        ),
    }


def podexec_argv(spec_path: Path) -> list[str]:
    """The command that starts one container from its ``podexec`` spec, in a mount
    namespace of its own (its mounts go when it ends); run it with ``podexec_env()``."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        sys.executable,
        "-m",
        "lepton_e2e.podexec",
        str(spec_path),
    ]


def podexec_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(E2E_DIR)}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_exec_spec(
    spec: dict[str, Any], container: dict[str, Any], volumes: dict[str, Path], work_dir: Path
) -> Path:
    """Add the container's volume mounts and its termination log to podexec's ``spec``
    and write it under ``work_dir``: the path to hand ``podexec_argv``. The log starts
    empty and world-writable, as a kubelet makes it: the container's user writes it."""
    name = container["name"]
    termination_log = work_dir / f"{name}.termination-log"
    termination_log.write_bytes(b"")
    termination_log.chmod(0o666)
    mounts = podspec.container_mounts(container, volumes, termination_log)
    spec["terminationMessagePath"] = mounts[-1].target
    spec["mounts"] = [
        {"source": str(m.source), "target": m.target, "read_only": m.read_only} for m in mounts
    ]
    path = work_dir / f"{name}.exec.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


class PodWorker(threading.Thread):
    """Owns one pod from its start to its end or deletion."""

    def __init__(self, runner: PodRunner, pod: dict[str, Any], index: int) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.runner = runner
        self.pod = pod
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.spec: dict[str, Any] = pod["spec"]
        self.dir = runner.state_dir / "pods" / f"{self.namespace}_{self.pod_name}"
        cid = runner.cluster_id
        self.netns = PodNamespace(
            name=f"lepton-{cid}-{index}",
            host_veth=f"lh{cid}{index}",
            address=runner.network.pod_address(index),
        )
        self.stopping = threading.Event()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.started_at: dict[str, str] = {}
        self.restarts: dict[str, int] = {}
        self.ready: dict[str, bool] = {}
        self.final: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        # Readiness gates, as a kubelet honours them: the pod is Ready only when its
        # containers are and every gate condition (set by a controller) is True.
        self.gates_open = podspec.gates_open(pod)
        self.gates_written = self.gates_open

    # ---- lifecycle -------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception as error:  # a pod the harness cannot run must say why, not vanish
            log.exception("pod %s/%s failed in the harness", self.namespace, self.pod_name)
            self._patch_status(
                {"phase": "Failed", "reason": "HarnessError", "message": str(error)[:1000]}
            )
        finally:
            self._kill_all()
            self.netns.delete()

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.netns.create(self.runner.network)
        facts = podspec.PodFacts.from_pod(self.pod, self.netns.address, self.runner.network.gateway)
        objects = self.runner.fetch_objects(self.namespace, self.spec)
        volumes = podspec.volume_sources(self.pod, self.dir, self.runner.state_dir / "pvcs")
        self.runner.fill_volumes(self.pod, volumes, objects, facts)
        self._patch_status(self._status_document("Pending", initialized=False))

        restart_policy = self.spec.get("restartPolicy", "Always")
        for container in self.spec.get("initContainers") or []:
            code = self._run_to_completion(container, facts, objects, volumes, restart_policy)
            if code != 0:
                self._patch_status(self._status_document("Failed", initialized=False))
                return
        for container in self.spec["containers"]:
            self._start(container, facts, objects, volumes)
        self._patch_status(self._status_document("Running"))
        self._supervise(facts, objects, volumes, restart_policy)

    def _supervise(
        self,
        facts: podspec.PodFacts,
        objects: podspec.Lookup,
        volumes: dict[str, Path],
        restart_policy: str,
    ) -> None:
        probes = {c["name"]: c.get("readinessProbe") for c in self.spec["containers"]}
        next_probe: dict[str, float] = {
            name: time.monotonic() + (probe or {}).get("initialDelaySeconds", 0)
            for name, probe in probes.items()
        }
        failures: dict[str, int] = dict.fromkeys(probes, 0)
        while not self.stopping.is_set():
            changed = False
            for container in self.spec["containers"]:
                name = container["name"]
                process = self.processes.get(name)
                if process is not None and process.poll() is not None:
                    changed = True
                    self._record_exit(container, process.returncode)
                    del self.processes[name]
                    self.ready[name] = False
                    if self._should_restart(restart_policy, process.returncode):
                        backoff = min(10, 2 ** self.restarts.get(name, 0))
                        if self.stopping.wait(backoff):
                            return
                        self.restarts[name] = self.restarts.get(name, 0) + 1
                        self.final.pop(name, None)
                        self._start(container, facts, objects, volumes)
                        next_probe[name] = time.monotonic() + (probes[name] or {}).get(
                            "initialDelaySeconds", 0
                        )
                probe = probes[name]
                if name in self.processes and time.monotonic() >= next_probe[name]:
                    before = self.ready.get(name, False)
                    ok = probe is None or self._probe(container, probe)
                    failures[name] = 0 if ok else failures[name] + 1
                    threshold = (probe or {}).get("failureThreshold", 3)
                    self.ready[name] = ok or (before and failures[name] < threshold)
                    changed |= self.ready[name] != before
                    next_probe[name] = time.monotonic() + (probe or {}).get("periodSeconds", 10)
            if not self.processes:
                codes = [f["state"]["terminated"]["exitCode"] for f in self.final.values()]
                phase = podspec.terminal_phase(restart_policy, codes) or "Failed"
                self._patch_status(self._status_document(phase))
                return
            gates = self.gates_open
            if gates != self.gates_written:
                changed, self.gates_written = True, gates
            if changed:
                self._patch_status(self._status_document("Running"))
            self.stopping.wait(0.5)

    def _should_restart(self, restart_policy: str, code: int) -> bool:
        return restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0)

    def stop(self) -> None:
        self.stopping.set()

    # ---- processes -------------------------------------------------------------------
    def _exec_spec(
        self,
        container: dict[str, Any],
        facts: podspec.PodFacts,
        objects: podspec.Lookup,
        volumes: dict[str, Path],
    ) -> Path:
        image = self.runner.images.lookup(container["image"])
        assert image is not None  # the runner only takes pods whose images are listed
        archive = image.archive()
        if archive is not None:
            spec = self._image_spec(container, facts, objects, archive)
        else:
            service_env = {**image.resolved_env(), **self.runner.service_env}
            env = podspec.container_env(container, facts, objects, service_env)
            env.setdefault("PATH", image.resolved_path())
            env.setdefault("HOME", str(self.dir / "home"))
            (self.dir / "home").mkdir(exist_ok=True)
            spec = {
                "argv": podspec.expand_argv(image.argv(container), env),
                "env": env,
                "workingDir": container.get("workingDir"),
                "imagePaths": [str(E2E_DIR.parent), sys.prefix],
            }
        return write_exec_spec(spec, container, volumes, self.dir)

    def _image_spec(
        self,
        container: dict[str, Any],
        facts: podspec.PodFacts,
        objects: podspec.Lookup,
        archive: Path,
    ) -> dict[str, Any]:
        unpacked = imagefs.unpack(archive, binaries.cache_root() / "unpacked-images")
        return image_exec_spec(
            self.spec, container, facts, objects, unpacked, self.runner.service_env
        )

    def _launch(
        self,
        container: dict[str, Any],
        facts: podspec.PodFacts,
        objects: podspec.Lookup,
        volumes: dict[str, Path],
    ) -> subprocess.Popen[bytes]:
        spec_path = self._exec_spec(container, facts, objects, volumes)
        argv = [*self.netns.exec_prefix(), *podexec_argv(spec_path)]
        self.started_at[container["name"]] = _now()
        log.info("starting %s/%s container %s", self.namespace, self.pod_name, container["name"])
        with (self.dir / f"{container['name']}.log").open("ab") as log_file:
            process = subprocess.Popen(
                argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=podexec_env(),
                start_new_session=True,
            )
        # The container's process group, as a runtime's inspect would give it: what a
        # fault test kills to crash the container and nothing else.
        (self.dir / f"{container['name']}.pgid").write_text(str(process.pid))
        return process

    def _start(
        self,
        container: dict[str, Any],
        facts: podspec.PodFacts,
        objects: podspec.Lookup,
        volumes: dict[str, Path],
    ) -> None:
        process = self._launch(container, facts, objects, volumes)
        self.processes[container["name"]] = process
        self.ready[container["name"]] = False

    def _run_to_completion(
        self,
        container: dict[str, Any],
        facts: podspec.PodFacts,
        objects: podspec.Lookup,
        volumes: dict[str, Path],
        restart_policy: str,
    ) -> int:
        while True:
            process = self._launch(container, facts, objects, volumes)
            self.processes[container["name"]] = process
            while process.poll() is None:
                if self.stopping.wait(0.5):
                    return 1
            del self.processes[container["name"]]
            self._record_exit(container, process.returncode)
            if process.returncode == 0 or restart_policy == "Never":
                return process.returncode
            self.restarts[container["name"]] = self.restarts.get(container["name"], 0) + 1

    def _record_exit(self, container: dict[str, Any], code: int) -> None:
        name = container["name"]
        raw = (self.dir / f"{name}.termination-log").read_bytes()
        log_path = self.dir / f"{name}.log"
        tail = log_path.read_bytes()[-4096:] if log_path.exists() else b""
        policy = container.get("terminationMessagePolicy", "File")
        message = podspec.termination_message(raw, tail, policy, code)
        # A process killed by a signal: the shell's convention, 128 + signal number.
        exit_code = code if code >= 0 else 128 - code
        self.final[name] = podspec.terminated_status(
            name,
            container["image"],
            self.started_at.get(name, _now()),
            _now(),
            exit_code,
            message,
            self.restarts.get(name, 0),
        )
        log.info("%s/%s container %s exited %d", self.namespace, self.pod_name, name, exit_code)

    def _kill_all(self) -> None:
        grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        for process in list(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + min(grace, 10)
        for process in list(self.processes.values()):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    # ---- probes ----------------------------------------------------------------------
    def _probe(self, container: dict[str, Any], probe: dict[str, Any]) -> bool:
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            spec = probe["httpGet"]
            port = self._port(container, spec["port"])
            scheme = spec.get("scheme", "HTTP").lower()
            url = f"{scheme}://{self.netns.address}:{port}{spec.get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    return bool(200 <= response.status < 400)
            except (urllib.error.URLError, OSError):
                return False
        if "tcpSocket" in probe or "grpc" in probe:
            spec = probe.get("tcpSocket") or probe["grpc"]
            port = self._port(container, spec["port"])
            try:
                with socket.create_connection((self.netns.address, port), timeout=timeout):
                    return True
            except OSError:
                return False
        if "exec" in probe:
            argv = [*self.netns.exec_prefix(), *probe["exec"]["command"]]
            try:
                return subprocess.run(argv, capture_output=True, timeout=timeout).returncode == 0
            except subprocess.TimeoutExpired:
                return False
        return True

    @staticmethod
    def _port(container: dict[str, Any], port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for declared in container.get("ports") or []:
            if declared.get("name") == port:
                return int(declared["containerPort"])
        raise ValueError(f"probe names unknown port {port!r}")

    # ---- status ----------------------------------------------------------------------
    def _status_document(self, phase: str, initialized: bool = True) -> dict[str, Any]:
        now = _now()
        statuses = []
        for container in self.spec["containers"]:
            name = container["name"]
            if name in self.final and name not in self.processes:
                statuses.append(self.final[name])
            elif name in self.processes:
                statuses.append(
                    podspec.running_status(
                        name,
                        container["image"],
                        self.started_at[name],
                        self.ready.get(name, False),
                        self.restarts.get(name, 0),
                    )
                )
            else:
                statuses.append(
                    {
                        "name": name,
                        "image": container["image"],
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "PodInitializing"}},
                    }
                )
        containers_ready = phase == "Running" and all(s["ready"] for s in statuses)
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": self.runner.network.gateway,
            "hostIPs": [{"ip": self.runner.network.gateway}],
            "podIP": self.netns.address,
            "podIPs": [{"ip": self.netns.address}],
            "startTime": self.pod.get("status", {}).get("startTime") or now,
            "conditions": podspec.pod_conditions(
                now, initialized, containers_ready and self.gates_written, containers_ready
            ),
            "containerStatuses": statuses,
        }
        init = [
            self.final[c["name"]]
            for c in self.spec.get("initContainers") or []
            if c["name"] in self.final
        ]
        if init:
            status["initContainerStatuses"] = init
        return status

    def _patch_status(self, status: dict[str, Any]) -> None:
        """Write the pod's status; while the apiserver cannot be reached (restarting),
        retry, as a kubelet does, and leave the containers running meanwhile: a pod
        must never die of its kubelet losing the apiserver for a while."""
        deadline = time.monotonic() + STATUS_RETRY_SECONDS
        with self.lock:
            while True:
                try:
                    # Strategic merge: conditions merge by type, so the gate conditions
                    # other controllers set survive the runner's own writes.
                    self.runner.core.patch_namespaced_pod_status(
                        self.pod_name,
                        self.namespace,
                        {"status": status},
                        _content_type="application/strategic-merge-patch+json",
                    )
                    return
                except ApiException as error:
                    if error.status == 404:
                        return
                    problem: Exception = error
                    if error.status < 500:
                        break
                except Exception as error:  # connection refused, reset, timed out
                    problem = error
                if self.stopping.is_set() or time.monotonic() > deadline:
                    break
                time.sleep(1)
            log.warning("status of %s/%s: %s", self.namespace, self.pod_name, problem)


class PodRunner:
    """Watches scheduled pods and gives each process-backed one a PodWorker."""

    def __init__(
        self,
        api: client.ApiClient,
        images: ImageTable,
        network: Network,
        state_dir: Path,
        cluster_id: str,
        apiserver_port: int,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.images = images
        self.network = network
        self.state_dir = state_dir
        self.cluster_id = cluster_id
        self.service_env = {
            "KUBERNETES_SERVICE_HOST": network.gateway,
            "KUBERNETES_SERVICE_PORT": str(apiserver_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(apiserver_port),
            "KUBERNETES_PORT": f"tcp://{network.gateway}:{apiserver_port}",
        }
        self.workers: dict[str, PodWorker] = {}
        self.next_index = 0

    def fetch_objects(self, namespace: str, spec: dict[str, Any]) -> podspec.Lookup:
        objects: podspec.Lookup = {}
        for kind, name in podspec.referenced_objects(spec):
            raw: Any
            try:
                if kind == "Secret":
                    raw = self.core.read_namespaced_secret(name, namespace)
                else:
                    raw = self.core.read_namespaced_config_map(name, namespace)
            except ApiException as error:
                if error.status == 404:
                    continue  # optional references; a required one fails at use
                raise
            objects[(kind, name)] = podspec.decode_object(kind, raw.to_dict())
        return objects

    def fill_volumes(
        self,
        pod: dict[str, Any],
        volumes: dict[str, Path],
        objects: podspec.Lookup,
        facts: podspec.PodFacts,
    ) -> None:
        for volume in pod["spec"].get("volumes") or []:
            target = volumes[volume["name"]]
            target.mkdir(parents=True, exist_ok=True)
            if "emptyDir" in volume:
                target.chmod(0o777)  # as a kubelet makes it: any user of the pod writes
            elif "configMap" in volume:
                self._write_items(
                    target,
                    objects.get(("ConfigMap", volume["configMap"]["name"]), {}),
                    volume["configMap"].get("items"),
                )
            elif "secret" in volume:
                self._write_items(
                    target,
                    objects.get(("Secret", volume["secret"]["secretName"]), {}),
                    volume["secret"].get("items"),
                )
            elif "downwardAPI" in volume:
                self._write_downward(target, volume["downwardAPI"].get("items") or [], facts)
            elif "projected" in volume:
                for source in volume["projected"].get("sources") or []:
                    self._fill_projected(target, source, objects, facts, pod)

    def _fill_projected(
        self,
        target: Path,
        source: dict[str, Any],
        objects: podspec.Lookup,
        facts: podspec.PodFacts,
        pod: dict[str, Any],
    ) -> None:
        if "serviceAccountToken" in source:
            token_spec = source["serviceAccountToken"]
            body = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(
                    audiences=[token_spec["audience"]] if token_spec.get("audience") else [],
                    expiration_seconds=token_spec.get("expirationSeconds", 3607),
                    bound_object_ref=client.V1BoundObjectReference(
                        api_version="v1", kind="Pod", name=facts.name, uid=facts.uid
                    ),
                )
            )
            token = self.core.create_namespaced_service_account_token(
                facts.service_account, facts.namespace, body
            )
            if token.status is None:
                raise RuntimeError(f"TokenRequest for {facts.service_account} returned no token")
            (target / token_spec["path"]).write_text(token.status.token)
        elif "configMap" in source:
            self._write_items(
                target,
                objects.get(("ConfigMap", source["configMap"]["name"]), {}),
                source["configMap"].get("items"),
            )
        elif "secret" in source:
            self._write_items(
                target,
                objects.get(("Secret", source["secret"]["name"]), {}),
                source["secret"].get("items"),
            )
        elif "downwardAPI" in source:
            self._write_downward(target, source["downwardAPI"].get("items") or [], facts)

    @staticmethod
    def _write_items(
        target: Path, data: dict[str, str], items: list[dict[str, Any]] | None
    ) -> None:
        pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
        for key, path in pairs:
            file = target / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(data.get(key, ""))

    @staticmethod
    def _write_downward(target: Path, items: list[dict[str, Any]], facts: podspec.PodFacts) -> None:
        for item in items:
            if "fieldRef" in item:
                (target / item["path"]).write_text(facts.field(item["fieldRef"]["fieldPath"]))

    # ---- volumes: a tiny provisioner ---------------------------------------------------
    def provision_forever(self) -> None:
        """Bind every pending PVC to a hostPath PV of its own folder, and reclaim them.

        kube-scheduler holds back pods whose claims are unbound, and this cluster has no
        storage provisioner; this plays that part (as local-path-provisioner would) with
        the folder the runner mounts for the claim.
        """
        while True:
            try:
                self._provision_once()
            except Exception as error:  # the apiserver restarting must not stop it
                log.warning("provisioner: %s", error)
            time.sleep(1)

    def _list(self, method: Any, **kwargs: Any) -> list[dict[str, Any]]:
        response: Any = method(_preload_content=False, **kwargs)
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def _provision_once(self) -> None:
        for claim in self._list(self.core.list_persistent_volume_claim_for_all_namespaces):
            meta, spec = claim["metadata"], claim["spec"]
            if claim.get("status", {}).get("phase") != "Pending" or spec.get("volumeName"):
                continue
            folder = self.state_dir / "pvcs" / meta["namespace"] / meta["name"]
            folder.mkdir(parents=True, exist_ok=True)
            volume: Any = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": f"pvc-{meta['uid']}",
                    "labels": {"lepton.ai/e2e-provisioned": "true"},
                },
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"].get("storage", "1Gi")},
                    "accessModes": spec["accessModes"],
                    "storageClassName": spec.get("storageClassName") or "",
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": str(folder)},
                    "claimRef": {
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                },
            }
            try:
                self.core.create_persistent_volume(volume)
                log.info("provisioned a volume for %s/%s", meta["namespace"], meta["name"])
            except ApiException as error:
                if error.status != 409:
                    raise
        for released in self._list(
            self.core.list_persistent_volume, label_selector="lepton.ai/e2e-provisioned=true"
        ):
            if released.get("status", {}).get("phase") == "Released":
                shutil.rmtree(released["spec"]["hostPath"]["path"], ignore_errors=True)
                with contextlib.suppress(ApiException):
                    self.core.delete_persistent_volume(released["metadata"]["name"])

    # ---- the watch loop --------------------------------------------------------------
    def handle(self, event_type: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        if not spec.get("nodeName") or not self.images.runs_pod(spec):
            return
        worker = self.workers.get(uid)
        gone = event_type == "DELETED" or meta.get("deletionTimestamp")
        if gone:
            self.workers.pop(uid, None)
            threading.Thread(
                target=self._delete, args=(worker, meta, event_type != "DELETED"), daemon=True
            ).start()
            return
        phase = (pod.get("status") or {}).get("phase")
        if worker is not None:
            worker.gates_open = podspec.gates_open(pod)
        if worker is None and phase not in ("Succeeded", "Failed"):
            worker = PodWorker(self, pod, self.next_index)
            self.next_index += 1
            self.workers[uid] = worker
            worker.start()

    def _delete(self, worker: PodWorker | None, meta: dict[str, Any], remove_object: bool) -> None:
        """What a kubelet does last: stop the processes, then remove the pod object."""
        if worker is not None:
            worker.stop()
            worker.join(timeout=60)
        if not remove_object:
            return
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
                ),
            )

    def run_forever(self) -> None:
        resource_version = ""
        while True:
            try:
                if not resource_version:
                    listing: Any = self.core.list_pod_for_all_namespaces(
                        field_selector="spec.nodeName!=", _preload_content=False
                    )
                    document = json.loads(listing.data)
                    for item in document["items"]:
                        self.handle("ADDED", item)
                    resource_version = document["metadata"]["resourceVersion"]
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector="spec.nodeName!=",
                    resource_version=resource_version,
                    timeout_seconds=300,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    raw = event["raw_object"]
                    resource_version = raw["metadata"].get("resourceVersion", resource_version)
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.handle(event["type"], raw)
            except ApiException as error:
                if error.status == 410:  # expired resourceVersion: list again
                    resource_version = ""
                    continue
                log.warning("watch failed: %s; retrying", error)
                time.sleep(1)
            except Exception as error:  # the apiserver restarting must not kill the runner
                log.warning("watch broke: %s; retrying", error)
                time.sleep(1)
