"""Pure translation of a pod spec into what a local process needs, and back.

A kubelet turns a pod spec into a running container and the container's fate into
pod status. The runner does the same for local processes; this module holds the
parts that need no I/O (env resolution, mount planning, status documents), so the
unit tests can pin them down.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE_BYTES = 4096


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class PodFacts:
    """What the downward API and the service environment can refer to."""

    name: str
    namespace: str
    uid: str
    node_name: str
    service_account: str
    pod_ip: str
    host_ip: str
    labels: dict[str, str]
    annotations: dict[str, str]

    @classmethod
    def from_pod(cls, pod: dict[str, Any], pod_ip: str, host_ip: str) -> PodFacts:
        meta, spec = pod["metadata"], pod["spec"]
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            node_name=spec.get("nodeName", ""),
            service_account=spec.get("serviceAccountName", "default"),
            pod_ip=pod_ip,
            host_ip=host_ip,
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
        )

    def field(self, path: str) -> str:
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": self.service_account,
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
            "status.hostIP": self.host_ip,
            "status.hostIPs": self.host_ip,
        }
        if path in simple:
            return simple[path]
        for prefix, values in (
            ("metadata.labels", self.labels),
            ("metadata.annotations", self.annotations),
        ):
            if path.startswith(prefix + "['") and path.endswith("']"):
                return values.get(path[len(prefix) + 2 : -2], "")
        raise ValueError(f"unsupported fieldRef {path!r}")


Lookup = dict[tuple[str, str], dict[str, str]]
"""(kind, name) -> decoded data, for the ConfigMaps and Secrets a pod refers to."""


def referenced_objects(pod_spec: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (kind, name) of ConfigMap or Secret that env or volumes refer to."""
    refs: set[tuple[str, str]] = set()
    for container in [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]]:
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                refs.add(("ConfigMap", source["configMapKeyRef"]["name"]))
            if "secretKeyRef" in source:
                refs.add(("Secret", source["secretKeyRef"]["name"]))
        for env_from in container.get("envFrom") or []:
            if "configMapRef" in env_from:
                refs.add(("ConfigMap", env_from["configMapRef"]["name"]))
            if "secretRef" in env_from:
                refs.add(("Secret", env_from["secretRef"]["name"]))
    for volume in pod_spec.get("volumes") or []:
        if "configMap" in volume:
            refs.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            refs.add(("Secret", volume["secret"]["secretName"]))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                refs.add(("ConfigMap", source["configMap"]["name"]))
            if "secret" in source:
                refs.add(("Secret", source["secret"]["name"]))
    return refs


def decode_object(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def container_env(
    container: dict[str, Any], facts: PodFacts, objects: Lookup, service_env: dict[str, str]
) -> dict[str, str]:
    """The environment a kubelet would give ``container``, in the kubelet's order."""
    env: dict[str, str] = {"HOSTNAME": facts.name, **service_env}
    for env_from in container.get("envFrom") or []:
        prefix = env_from.get("prefix", "")
        if "configMapRef" in env_from:
            data = objects.get(("ConfigMap", env_from["configMapRef"]["name"]), {})
        else:
            data = objects.get(("Secret", env_from["secretRef"]["name"]), {})
        env.update({prefix + k: v for k, v in data.items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = _expand(item["value"], env)
            continue
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = facts.field(source["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[name] = objects.get(("ConfigMap", ref["name"]), {}).get(ref["key"], "")
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[name] = objects.get(("Secret", ref["name"]), {}).get(ref["key"], "")
        elif "resourceFieldRef" in source:
            env[name] = _resource_field(container, source["resourceFieldRef"]["resource"])
        else:
            env[name] = ""
    return env


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion; ``$$`` escapes a dollar."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            end = value.index(")", i)
            name = value[i + 2 : end]
            out.append(env.get(name, value[i : end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def container_argv(
    entrypoint: list[str], cmd: list[str], command: list[str] | None, args: list[str] | None
) -> list[str]:
    """Kubernetes' rule over an image's ENTRYPOINT and CMD: ``command`` replaces the
    ENTRYPOINT (and drops the CMD), ``args`` replace the CMD."""
    if command:
        return [*command, *(args or [])]
    return [*entrypoint, *(args if args else cmd)]


def expand_argv(argv: list[str], env: dict[str, str]) -> list[str]:
    return [_expand(arg, env) for arg in argv]


def _resource_field(container: dict[str, Any], resource: str) -> str:
    kind, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    return str(value) if value is not None else "0"


def volume_sources(pod: dict[str, Any], pod_dir: Path, pvc_root: Path) -> dict[str, Path]:
    """Where each named volume lives on this host.

    emptyDir, ConfigMap, Secret and projected volumes get a folder of the pod's own
    (the runner fills the last three); a PVC maps to a folder per claim shared by
    every pod that mounts it, as a ReadWriteMany volume would be; hostPath is itself.
    """
    namespace = pod["metadata"]["namespace"]
    sources: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "hostPath" in volume:
            sources[name] = Path(volume["hostPath"]["path"])
        elif "persistentVolumeClaim" in volume:
            sources[name] = pvc_root / namespace / volume["persistentVolumeClaim"]["claimName"]
        else:
            sources[name] = pod_dir / "volumes" / name
    return sources


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int
    groups: tuple[int, ...]


def run_as(pod_spec: dict[str, Any], container: dict[str, Any], uid: int, gid: int) -> RunAs:
    """Who a container runs as, by the kubelet's rule: the container's securityContext
    over the pod's over the image's USER (``uid``, ``gid``); the pod's fsGroup and
    supplementalGroups join its groups. ``runAsNonRoot`` with uid 0 is refused, as the
    kubelet refuses to create such a container."""
    pod_context = pod_spec.get("securityContext") or {}
    context = container.get("securityContext") or {}

    def pick(key: str, image: int) -> int:
        return int(context.get(key, pod_context.get(key, image)))

    user = RunAs(
        uid=pick("runAsUser", uid),
        gid=pick("runAsGroup", gid),
        groups=tuple(
            sorted(
                {
                    *(int(g) for g in pod_context.get("supplementalGroups") or []),
                    *([int(pod_context["fsGroup"])] if "fsGroup" in pod_context else []),
                }
            )
        ),
    )
    non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot", False))
    if non_root and user.uid == 0:
        raise ValueError(
            f"container {container.get('name')!r} has runAsNonRoot and its image runs as root"
        )
    return user


def container_mounts(
    container: dict[str, Any], volumes: dict[str, Path], termination_log: Path
) -> list[Mount]:
    mounts = [
        Mount(
            source=volumes[m["name"]] / m.get("subPath", ""),
            target=m["mountPath"],
            read_only=bool(m.get("readOnly", False)),
        )
        for m in container.get("volumeMounts") or []
    ]
    path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
    mounts.append(Mount(source=termination_log, target=path, read_only=False))
    return mounts


def gates_open(pod: dict[str, Any]) -> bool:
    """Whether every readiness gate of the pod has its condition set to True."""
    wanted = {g["conditionType"] for g in pod["spec"].get("readinessGates") or []}
    conditions = (pod.get("status") or {}).get("conditions") or []
    return all(
        any(c.get("type") == kind and c.get("status") == "True" for c in conditions)
        for kind in wanted
    )


def pod_conditions(
    now: str, initialized: bool, ready: bool, containers_ready: bool
) -> list[dict[str, str]]:
    def condition(kind: str, status: bool) -> dict[str, str]:
        return {"type": kind, "status": "True" if status else "False", "lastTransitionTime": now}

    return [
        condition("PodScheduled", True),
        condition("Initialized", initialized),
        condition("ContainersReady", containers_ready),
        condition("Ready", ready),
    ]


def running_status(
    name: str, image: str, started_at: str, ready: bool, restarts: int
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "started": True,
        "restartCount": restarts,
        "state": {"running": {"startedAt": started_at}},
    }


def terminated_status(
    name: str,
    image: str,
    started_at: str,
    finished_at: str,
    exit_code: int,
    message: str,
    restarts: int,
) -> dict[str, Any]:
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if message:
        terminated["message"] = message
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": {"terminated": terminated},
    }


def termination_message(raw: bytes, log_tail: bytes, policy: str, exit_code: int) -> str:
    """The kubelet's rule: the file first; the log tail only on error with FallbackToLogsOnError."""
    text = raw[:MAX_TERMINATION_MESSAGE_BYTES].decode(errors="replace")
    if not text and policy == "FallbackToLogsOnError" and exit_code != 0:
        text = log_tail[-MAX_TERMINATION_MESSAGE_BYTES:].decode(errors="replace")
    return text


def terminal_phase(restart_policy: str, exit_codes: list[int]) -> str | None:
    """The pod phase once every container has exited, or None while it restarts."""
    if restart_policy == "Always":
        return None
    if all(code == 0 for code in exit_codes):
        return "Succeeded"
    return None if restart_policy == "OnFailure" else "Failed"
