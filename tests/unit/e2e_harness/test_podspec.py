"""The harness's pure translation of pod specs (no cluster needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from lepton_e2e import podspec
from lepton_e2e.images import ImageTable, LocalImage, repository

FACTS = podspec.PodFacts(
    name="p",
    namespace="ns",
    uid="u1",
    node_name="cpu-standard-0",
    service_account="sa",
    pod_ip="10.244.1.1",
    host_ip="10.244.0.1",
    labels={"app": "x"},
    annotations={},
)


def test_env_follows_kubelet_order_and_sources():
    container = {
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)-$$(A)-$(MISSING)"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        ],
        "resources": {"limits": {"memory": "1Gi"}},
    }
    objects = {("ConfigMap", "cm"): {"x": "y"}, ("Secret", "sec"): {"k": "v"}}
    env = podspec.container_env(container, FACTS, objects, {"KUBERNETES_SERVICE_HOST": "h"})
    assert env == {
        "HOSTNAME": "p",
        "KUBERNETES_SERVICE_HOST": "h",
        "CM_x": "y",
        "A": "1",
        "B": "1-$(A)-$(MISSING)",
        "IP": "10.244.1.1",
        "APP": "x",
        "S": "v",
        "MEM": "1Gi",
    }


def test_unsupported_field_ref_is_an_error_not_a_blank():
    with pytest.raises(ValueError, match="unsupported fieldRef"):
        FACTS.field("status.phase")


def test_secrets_are_decoded_and_referenced_objects_found():
    secret = {"data": {"k": base64.b64encode(b"v").decode()}}
    assert podspec.decode_object("Secret", secret) == {"k": "v"}
    spec = {
        "containers": [{"envFrom": [{"secretRef": {"name": "s1"}}]}],
        "volumes": [
            {
                "name": "v",
                "projected": {
                    "sources": [
                        {"configMap": {"name": "kube-root-ca.crt"}},
                        {"serviceAccountToken": {}},
                    ]
                },
            }
        ],
    }
    assert podspec.referenced_objects(spec) == {("Secret", "s1"), ("ConfigMap", "kube-root-ca.crt")}


def test_volumes_and_mounts_map_to_host_folders(tmp_path: Path):
    pod = {
        "metadata": {"namespace": "ns"},
        "spec": {
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "models", "persistentVolumeClaim": {"claimName": "repo"}},
                {"name": "host", "hostPath": {"path": "/opt/x"}},
            ]
        },
    }
    volumes = podspec.volume_sources(pod, tmp_path / "pod", tmp_path / "pvcs")
    assert volumes == {
        "scratch": tmp_path / "pod" / "volumes" / "scratch",
        "models": tmp_path / "pvcs" / "ns" / "repo",
        "host": Path("/opt/x"),
    }
    container = {
        "volumeMounts": [
            {"name": "models", "mountPath": "/models", "readOnly": True, "subPath": "v1"}
        ],
        "terminationMessagePath": "/tmp/msg",
    }
    mounts = podspec.container_mounts(container, volumes, tmp_path / "log")
    assert mounts == [
        podspec.Mount(tmp_path / "pvcs" / "ns" / "repo" / "v1", "/models", True),
        podspec.Mount(tmp_path / "log", "/tmp/msg", False),
    ]


@pytest.mark.parametrize(
    ("policy", "codes", "phase"),
    [
        ("Never", [0], "Succeeded"),
        ("Never", [0, 2], "Failed"),
        ("OnFailure", [1], None),
        ("OnFailure", [0], "Succeeded"),
        ("Always", [0], None),
    ],
)
def test_terminal_phase_follows_restart_policy(policy, codes, phase):
    assert podspec.terminal_phase(policy, codes) == phase


def test_termination_message_prefers_the_file_then_the_log_on_error():
    assert podspec.termination_message(b"done", b"log", "FallbackToLogsOnError", 1) == "done"
    assert podspec.termination_message(b"", b"boom", "FallbackToLogsOnError", 1) == "boom"
    assert podspec.termination_message(b"", b"boom", "File", 1) == ""
    assert len(podspec.termination_message(b"x" * 10_000, b"", "File", 0)) == 4096


def test_image_table_matches_repositories_and_builds_argv():
    table = ImageTable(images={"e2e.lepton.local/toolbox": LocalImage(entrypoint=["sh"])})
    assert repository("reg:5000/a/b:1.2") == "reg:5000/a/b"
    assert repository("a/b@sha256:abcd") == "a/b"
    assert table.runs_pod({"containers": [{"image": "e2e.lepton.local/toolbox:1"}]})
    assert not table.runs_pod(
        {"containers": [{"image": "e2e.lepton.local/toolbox:1"}, {"image": "nginx:1"}]}
    )
    image = table.lookup("e2e.lepton.local/toolbox")
    assert image is not None
    assert image.argv({"args": ["-c", "true"]}) == ["sh", "-c", "true"]
    assert image.argv({"command": ["env"], "args": ["A=1"]}) == ["env", "A=1"]
    exclusion = table.kwok_exclusion()
    assert exclusion["operator"] == "NotIn" and exclusion["values"] == ["e2e.lepton.local/toolbox"]


def test_readiness_gates_hold_a_pod_until_their_condition_is_true() -> None:
    pod = {"spec": {"readinessGates": [{"conditionType": "lepton.ai/canary"}]}, "status": {}}
    assert not podspec.gates_open(pod)
    pod["status"]["conditions"] = [{"type": "lepton.ai/canary", "status": "False"}]
    assert not podspec.gates_open(pod)
    pod["status"]["conditions"] = [{"type": "lepton.ai/canary", "status": "True"}]
    assert podspec.gates_open(pod)
    assert podspec.gates_open({"spec": {}})
