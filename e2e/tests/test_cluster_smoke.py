"""The local cluster behaves like a real one: scheduling onto pools, GPU capacity and
taints, Jobs whose pods run for real, RBAC and Pod Security enforced."""

from __future__ import annotations

import json
import secrets
import urllib.request
from typing import Any

import pytest

from lepton_e2e.crds import crd_state, wait_established
from lepton_e2e.fixtures import Kube, wait_for
from lepton_e2e.pools import POOL_LABEL, load_pools

pytestmark = pytest.mark.e2e

TOOLBOX = "e2e.lepton.local/toolbox:1"
PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: KWOK simulates pods on its nodes


def _node_pool(kube: Kube, node: str) -> str:
    labels: dict[str, str] = kube.get("node", node, "")["metadata"]["labels"]
    return labels[POOL_LABEL]


def _pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _gpu_pod(name: str, tolerate: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {"name": "main", "image": PAUSE, "resources": {"limits": {"nvidia.com/gpu": "1"}}}
        ]
    }
    if tolerate:
        spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return _pod(name, spec)


def test_every_component_reports_the_stamped_release(kube: Kube) -> None:
    versions = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == "v1.36.3"
    assert versions["clientVersion"]["gitVersion"] == "v1.36.3"


def test_pools_are_declared_nodes_with_price_and_capacity(kube: Kube) -> None:
    nodes = json.loads(kube.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    for pool in load_pools():
        members = [n for n in nodes if n["metadata"]["labels"].get(POOL_LABEL) == pool.name]
        assert len(members) == pool.count
        for node in members:
            assert float(node["metadata"]["annotations"]["lepton.ai/hourly-price-usd"]) == (
                pool.hourly_price_usd
            )
            assert node["status"]["allocatable"].get("nvidia.com/gpu") == (
                pool.capacity.get("nvidia.com/gpu")
            )


def test_deployment_of_three_on_the_cpu_pool_becomes_available(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "nodeSelector": {POOL_LABEL: "cpu-standard"},
                        "containers": [{"name": "web", "image": PAUSE}],
                    },
                },
            },
        },
        namespace=namespace,
    )
    kube.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")
    pods = kube.list("pods", namespace, "app=web")
    assert len(pods) == 3
    assert {_node_pool(kube, p["spec"]["nodeName"]) for p in pods} == {"cpu-standard"}


def test_gpu_pods_land_only_on_the_gpu_pool_and_its_capacity_is_finite(
    kube: Kube, namespace: str
) -> None:
    gpu_nodes = next(p.count for p in load_pools() if p.name == "gpu-l4")
    kube.apply(
        *[_gpu_pod(f"gpu-{i}", tolerate=True) for i in range(gpu_nodes + 1)],
        _gpu_pod("untolerating", tolerate=False),
        namespace=namespace,
    )

    def placed() -> list[dict[str, Any]]:
        pods = [p for p in kube.list("pods", namespace) if p["metadata"]["name"].startswith("gpu-")]
        return [p for p in pods if p["spec"].get("nodeName")] if len(pods) else []

    on_nodes = wait_for(lambda: len(placed()) >= gpu_nodes and placed(), what="GPU pods placed")
    assert {_node_pool(kube, p["spec"]["nodeName"]) for p in on_nodes} == {"gpu-l4"}
    assert len({p["spec"]["nodeName"] for p in on_nodes}) == gpu_nodes  # one GPU per node

    def unschedulable(name: str) -> str:
        pod = kube.get("pod", name, namespace)
        reasons = [
            c.get("message", "")
            for c in pod["status"].get("conditions", [])
            if c["type"] == "PodScheduled" and c["status"] == "False"
        ]
        return reasons[0] if reasons and not pod["spec"].get("nodeName") else ""

    # One more GPU pod than GPUs: the extra waits for capacity.
    extra = wait_for(
        lambda: [
            p["metadata"]["name"]
            for p in kube.list("pods", namespace)
            if p["metadata"]["name"].startswith("gpu-") and unschedulable(p["metadata"]["name"])
        ],
        what="the extra GPU pod pending",
    )
    assert "Insufficient nvidia.com/gpu" in unschedulable(extra[0])
    # Without the toleration the taint keeps it off the GPU pool, and CPU nodes have no GPU.
    message = wait_for(lambda: unschedulable("untolerating"), what="untolerating pod pending")
    assert "untolerated taint" in message and "Insufficient nvidia.com/gpu" in message


def _job(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": TOOLBOX,
                            "command": ["sh", "-c", script],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                        }
                    ],
                }
            },
        },
    }


def _job_condition(kube: Kube, name: str, namespace: str) -> str:
    conditions = kube.get("job", name, namespace).get("status", {}).get("conditions", [])
    return next(
        (
            c["type"]
            for c in conditions
            if c["type"] in ("Complete", "Failed") and c["status"] == "True"
        ),
        "",
    )


def test_a_job_pod_runs_for_real_and_reports_its_termination_message(
    kube: Kube, namespace: str
) -> None:
    assert kube.runs_process_pods, "needs the harness's pod runner (not an external cluster)"
    script = (
        "ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace); "
        'echo "answer=$((6*7)) pod=$POD_NAME ns=$ns ip=$(hostname -I)" '
        "> /dev/termination-log"
    )
    kube.apply(_job("compute", script), namespace=namespace)
    assert (
        wait_for(lambda: _job_condition(kube, "compute", namespace), what="job compute finished")
        == "Complete"
    )
    pod = kube.list("pods", namespace, "job-name=compute")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    # Computed by the process itself: arithmetic, the downward API, the projected
    # service-account volume at its real path, and its own network namespace's address.
    pod_ip = pod["status"]["podIP"]
    assert terminated["message"].split() == [
        "answer=42",
        f"pod={pod['metadata']['name']}",
        f"ns={namespace}",
        f"ip={pod_ip}",
    ]
    assert pod_ip.startswith("10.244.")


def test_a_failing_job_pod_reports_its_exit_code(kube: Kube, namespace: str) -> None:
    kube.apply(
        _job("fail", "echo 'out of cheese' > /dev/termination-log; exit 3"), namespace=namespace
    )
    assert (
        wait_for(lambda: _job_condition(kube, "fail", namespace), what="job fail finished")
        == "Failed"
    )
    pod = kube.list("pods", namespace, "job-name=fail")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["message"].strip()) == (3, "out of cheese")
    assert pod["status"]["phase"] == "Failed"


def test_a_served_process_pod_gets_ready_and_real_endpoints(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "http"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "http"}},
                "template": {
                    "metadata": {"labels": {"app": "http"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "http",
                                "image": TOOLBOX,
                                "command": [
                                    "sh",
                                    "-c",
                                    "echo served-by-$POD_NAME > index.html && "
                                    "exec python3 -m http.server 8080",
                                ],
                                "workingDir": "/work",
                                "env": [
                                    {
                                        "name": "POD_NAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                    }
                                ],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": "http"},
                                    "periodSeconds": 1,
                                },
                            }
                        ],
                        "volumes": [{"name": "work", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "http"},
            "spec": {"selector": {"app": "http"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
        namespace=namespace,
    )
    kube.kubectl("rollout", "status", "deployment/http", "-n", namespace, "--timeout=60s")

    def endpoints() -> list[str]:
        slices = kube.list("endpointslices", namespace, "kubernetes.io/service-name=http")
        return [
            address
            for s in slices
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
            for address in e["addresses"]
        ]

    addresses = wait_for(endpoints, what="ready endpoints of Service http")
    pod = kube.list("pods", namespace, "app=http")[0]
    assert addresses == [pod["status"]["podIP"]]
    with urllib.request.urlopen(f"http://{addresses[0]}:8080/", timeout=5) as response:
        assert response.read().decode().strip() == f"served-by-{pod['metadata']['name']}"


def test_rbac_denies_a_service_account_without_a_role(kube: Kube, namespace: str) -> None:
    kube.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    token = kube.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()

    def as_reader() -> Any:
        return kube.kubectl("get", "pods", "-n", namespace, f"--token={token}", check=False)

    denied = as_reader()
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    kube.kubectl("create", "role", "reader", "--verb=list", "--resource=pods", "-n", namespace)
    kube.kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=reader",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    wait_for(lambda: as_reader().returncode == 0, what="the Role to take effect")


def test_pod_security_restricted_rejects_a_plain_pod(kube: Kube, namespace: str) -> None:
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    result = kube.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        stdin=json.dumps(_pod("plain", {"containers": [{"name": "main", "image": PAUSE}]})),
    )
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr and "runAsNonRoot" in result.stderr


def test_a_crd_applied_a_moment_before_is_waited_for_until_served(kube: Kube) -> None:
    # `kubectl wait --for=condition=Established` refuses a CRD that has no conditions
    # yet instead of waiting; `wait_established` waits through it, and returns only once
    # the new kind can be stored.
    group = f"t{secrets.token_hex(4)}.e2e.lepton.local"
    name = f"widgets.{group}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    assert crd_state(kube.api, name) == "missing"
    try:
        kube.apply(crd)
        wait_established(kube.api, [name], timeout=30)
        assert crd_state(kube.api, name) == "Established"
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
        kube.apply(widget, namespace="default")
        assert kube.get(f"widgets.{group}", "w", "default")["metadata"]["name"] == "w"
    finally:
        kube.kubectl("delete", "crd", name, "--wait=false", check=False)
    missing = r"waiting for CRDs Established; last: \{'gadgets\.[^']+': 'missing'\}"
    with pytest.raises(AssertionError, match=missing):
        wait_established(kube.api, [f"gadgets.{group}"], timeout=1)
