"""The Helm chart, rendered by the real Helm binary: lint, RBAC, Pod Security, schema."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_e2e import binaries

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "lepton-operator"
NAMESPACE = "lepton-system"
OPTIONAL = (
    "serviceMonitor.enabled=true",
    "networkPolicy.enabled=true",
    "prometheusRule.enabled=true",
    "grafanaDashboard.enabled=true",
)

# The ClusterRole's whole grant, (apiGroup, resource) -> verbs: least privilege, so
# anything more (or less) is a change to review here.
EXPECTED_GRANTS = {
    ("lepton.ai", "leptonmodels"): {"get", "list", "watch", "patch", "update"},
    ("lepton.ai", "leptonmodels/status"): {"get", "patch", "update"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    **{
        ("", resource): {"get", "list", "watch", "create", "patch", "update", "delete"}
        for resource in ("services", "configmaps", "persistentvolumeclaims", "serviceaccounts")
    },
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/status"): {"patch"},
    ("", "namespaces"): {"get", "list", "watch"},
    ("", "nodes"): {"get", "list", "watch"},  # read-only: which pools have a node
    ("storage.k8s.io", "storageclasses"): {"get", "list", "watch"},  # StorageAvailable
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("rbac.authorization.k8s.io", "roles"): {"get", "list", "watch", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "rolebindings"): {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    },
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("coordination.k8s.io", "leases"): {"get", "create", "update"},  # namespaced Role
    # Scale from zero: the slice pointing a model's Service at the activator.
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch", "create", "patch", "delete"},
}
# The activator's whole grant: where Ready replicas are, and the demand annotation.
ACTIVATOR_GRANTS = {
    ("discovery.k8s.io", "endpointslices"): {"list", "watch"},
    ("lepton.ai", "leptonmodels"): {"get", "patch"},
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(binaries.ensure_built() / "helm"), *args], capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def render(*sets: str) -> list[dict[str, Any]]:
    args = [a for s in sets for a in ("--set", s)]
    out = helm("template", "lepton", str(CHART), "-n", NAMESPACE, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def is_activator(document: dict[str, Any]) -> bool:
    return str(document["metadata"]["name"]).endswith("-activator")


def by_kind(
    documents: list[dict[str, Any]], kind: str, activator: bool = False
) -> list[dict[str, Any]]:
    """The operator's objects of ``kind`` (the activator's with ``activator=True``)."""
    return [d for d in documents if d["kind"] == kind and is_activator(d) == activator]


def grants_of(roles: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(key, [])), (key, rule)
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_the_activator_runs_twice_least_privileged_and_restricted():
    documents = render()
    (deployment,) = by_kind(documents, "Deployment", activator=True)
    (role,) = by_kind(documents, "ClusterRole", activator=True)
    (binding,) = by_kind(documents, "ClusterRoleBinding", activator=True)
    (account,) = by_kind(documents, "ServiceAccount", activator=True)
    (service,) = by_kind(documents, "Service", activator=True)
    assert grants_of([role]) == ACTIVATOR_GRANTS
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/lepton-ai/lepton-activator:0.1.0"
    assert container["command"] == ["lepton-activator"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # Triton's HTTP and gRPC at zero: gRPC on the port after HTTP's, where the operator's
    # EndpointSlice (resources.activator.grpc_port) sends a model Service's `grpc` port.
    assert "--grpc-port=8001" in container["args"] and "--port=8000" in container["args"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8000,
        "grpc": 8001,
        "admin": 9091,
    }
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "http": 8000,
        "grpc": 8001,
        "admin": 9091,
    }
    # Its own selector: neither the operator's Deployment nor Service selects its pods.
    (operator,) = by_kind(documents, "Deployment")
    assert spec["selector"]["matchLabels"] != operator["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    env = {
        e["name"]: e.get("value")
        for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["LEPTON_ACTIVATOR_SERVICE"] == service["metadata"]["name"]
    assert env["LEPTON_ACTIVATOR_PORT"] == "8000"


def test_without_the_activator_nothing_of_it_renders():
    documents = render("activator.enabled=false")
    assert not [d for d in documents if is_activator(d)]
    (operator,) = by_kind(documents, "Deployment")
    env = {e["name"] for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "LEPTON_ACTIVATOR_SERVICE" not in env


def crd_documents() -> list[dict[str, Any]]:
    return [
        d
        for path in sorted((CHART / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text())
        if d
    ]


def default_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_lint_passes(strict):
    helm("lint", *(["--strict"] if strict else []), str(CHART))


def test_chart_metadata():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "lepton-operator"
    assert chart["version"] == "0.1.0" and chart["appVersion"] == "0.1.0"
    assert chart["kubeVersion"] == ">=1.30.0-0"


def test_default_render_has_the_core_objects_and_no_optional_ones():
    kinds = {d["kind"] for d in render()}
    assert kinds == {
        "ServiceAccount",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    }


def test_optional_objects_render_when_enabled():
    documents = render(*OPTIONAL)
    (service,) = by_kind(documents, "Service")
    (monitor,) = by_kind(documents, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    assert by_kind(documents, "NetworkPolicy")
    assert not by_kind(
        render("serviceAccount.create=false", "serviceAccount.name=x"), "ServiceAccount"
    )


def test_alerts_and_dashboard_ship_verbatim_behind_their_flags():
    """The PrometheusRule is the promtool-tested rule file and the dashboard ConfigMap the
    committed JSON, byte for byte in meaning: nothing is re-templated on the way."""
    documents = render(
        *OPTIONAL,
        "prometheusRule.labels.release=kube-prometheus-stack",
        "grafanaDashboard.namespace=monitoring",
        "grafanaDashboard.annotations.grafana_folder=Inference",
    )
    (rule,) = by_kind(documents, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = yaml.safe_load((CHART / "rules" / "lepton-models.rules.yaml").read_text())
    assert rule["spec"] == rules
    (dashboard,) = [
        d for d in by_kind(documents, "ConfigMap") if "lepton-models.json" in d.get("data", {})
    ]
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Inference"}
    committed = json.loads((CHART / "dashboards" / "lepton-models.json").read_text())
    assert json.loads(dashboard["data"]["lepton-models.json"]) == committed
    assert committed["uid"] == "lepton-models"
    kinds = {d["kind"] for d in render()}
    assert "PrometheusRule" not in kinds
    assert len(by_kind(render(), "ConfigMap")) == 1  # only the operator's configuration


def test_network_policy_admits_only_prometheus_to_the_metrics_port_and_leaves_egress_open():
    (policy,) = by_kind(
        render(
            "networkPolicy.enabled=true",
            "networkPolicy.prometheusNamespaceSelector.matchLabels.team=monitoring",
        ),
        "NetworkPolicy",
    )
    (deployment,) = by_kind(render(), "Deployment")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    (rule,) = spec["ingress"]
    assert [p["port"] for p in rule["ports"]] == [8080]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]
    assert "Egress" not in spec["policyTypes"] or spec["egress"] == [{}]


def test_rbac_has_no_wildcards_and_exactly_the_expected_grants():
    documents = render()
    roles = by_kind(documents, "ClusterRole") + by_kind(documents, "Role")
    assert roles
    assert grants_of(roles) == EXPECTED_GRANTS


def test_servicemonitor_grants_only_when_the_operator_creates_them():
    def grants(*sets: str) -> set[str]:
        (role,) = by_kind(render(*sets), "ClusterRole")
        return {
            resource
            for rule in role["rules"]
            if "monitoring.coreos.com" in rule["apiGroups"]
            for resource in rule["resources"]
        }

    assert grants() == set()
    assert grants("config.serving.serviceMonitor=true") == {"servicemonitors"}


def test_rbac_binds_the_operators_service_account():
    documents = render()
    (role,) = by_kind(documents, "ClusterRole")
    (binding,) = by_kind(documents, "ClusterRoleBinding")
    (account,) = by_kind(documents, "ServiceAccount")
    (deployment,) = by_kind(documents, "Deployment")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    name = account["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == name


def test_deployment_is_restricted_pod_security():
    (deployment,) = by_kind(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert "initContainers" not in pod
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all(set(v) <= {"name", "configMap", "emptyDir"} for v in volumes.values())


def test_deployment_runs_the_operator_as_configured():
    documents = render()
    (deployment,) = by_kind(documents, "Deployment")
    (configmap,) = by_kind(documents, "ConfigMap")
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["terminationGracePeriodSeconds"] == 30
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/lepton-ai/lepton-operator:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert "command" not in container  # the image's entrypoint is lepton-operator
    args = container["args"]
    assert args[args.index("--log-format") + 1] == "json"
    env = {e["name"]: e for e in container["env"]}
    assert env["LEPTON_CONFIG"] == {"name": "LEPTON_CONFIG", "value": "/etc/lepton/config.yaml"}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "768Mi"},
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/lepton"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes[mounts["/etc/lepton"]["name"]]["configMap"]["name"]
        == (configmap["metadata"]["name"])
    )
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"] == {}


def test_values_reach_the_deployment():
    (deployment,) = by_kind(
        render(
            "logFormat=plain",
            "replicaCount=3",
            "image.tag=dev",
            "metrics.port=9090",
            "health.port=9091",
            "priorityClassName=system-cluster-critical",
            "podLabels.team=ml",
        ),
        "Deployment",
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--log-format") + 1] == "plain"
    # The operator listens where the chart says it does.
    assert args[args.index("--metrics-port") + 1] == "9090"
    assert args[args.index("--health-port") + 1] == "9091"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "metrics": 9090,
        "health": 9091,
    }
    assert container["image"].endswith(":dev")
    assert deployment["spec"]["replicas"] == 3
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "ml"


def test_configmap_is_the_config_values_verbatim():
    (configmap,) = by_kind(render(), "ConfigMap")
    assert yaml.safe_load(configmap["data"]["config.yaml"]) == default_values()["config"]


def test_config_change_rolls_the_operator():
    def checksum(*sets: str) -> str:
        (deployment,) = by_kind(render(*sets), "Deployment")
        annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"]

    assert checksum() != checksum("config.prometheus.url=http://other:9090")
    assert checksum() == checksum("replicaCount=3")  # only a config change restarts it


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("replicaCont=2", "replicaCont"),
        ("config.pools[0].hourlyPrice=1", "hourlyPrice"),
        ("config.prometheus.ur=http://x:9090", "ur"),
        ("serviceMonitor.enable=true", "enable"),
        ("logFormat=xml", "logFormat"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("replicaCount=0", "replicaCount"),
        ("metrics.port=70000", "/metrics/port"),
        ("health.port=0", "/health/port"),
    ],
)
def test_typos_and_bad_values_are_rejected_by_name(setting, named):
    result = helm("template", "lepton", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "schema" in result.stderr and named in result.stderr, result.stderr


def test_pool_fields_are_checked(tmp_path):
    pool = {"name": "cpu", "nodeSelector": {"lepton.ai/pool": "cpu"}, "hourlyPriceUSD": 0.1}
    cases = {
        "hourlyPriceUSD": {**pool, "hourlyPriceUSD": -1},
        "nodeSelector": {"name": "cpu", "hourlyPriceUSD": 0.1},
        "acceleratr": {**pool, "acceleratr": {"type": "nvidia-l4"}},
        "/accelerator": {**pool, "accelerator": {"type": "nvidia-l4", "cnt": 1}},
    }
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": {"pools": [pool]}}))
    helm("template", "lepton", str(CHART), "-f", str(values))
    for named, bad in cases.items():
        values.write_text(yaml.safe_dump({"config": {"pools": [bad]}}))
        result = helm("template", "lepton", str(CHART), "-f", str(values), check=False)
        assert result.returncode != 0 and named in result.stderr, (named, result.stderr)


def test_every_value_is_documented_for_helm_docs():
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []

    def walk(node: yaml.Node, path: str) -> None:
        if not isinstance(node, yaml.MappingNode) or node.flow_style:
            return  # lists and inline maps are documented with their key
        for key, value in node.value:
            line = key.start_mark.line - 1
            comments = []
            while line >= 0 and lines[line].lstrip().startswith("#"):
                comments.append(lines[line].strip())
                line -= 1
            if not any(c.startswith("# -- ") for c in comments):
                undocumented.append(f"{path}{key.value}")
            walk(value, f"{path}{key.value}.")

    walk(yaml.compose((CHART / "values.yaml").read_text()), "")
    assert not undocumented


def test_schema_covers_every_value_and_is_closed():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["properties"].keys() == default_values().keys()

    def closed(node: dict[str, Any], path: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in node["properties"].items():
                closed(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            closed(node["items"], f"{path}[]")

    closed(schema, "")


def test_no_hooks_so_argo_cd_can_sync_it():
    documents = render(*OPTIONAL) + crd_documents()
    for document in documents:
        annotations = document["metadata"].get("annotations") or {}
        assert not [a for a in annotations if a.startswith("helm.sh/hook")], document["metadata"]
    for path in CHART.rglob("*"):
        if path.is_file():
            assert "helm.sh/hook" not in path.read_text(), path


def test_crds_ship_with_the_chart():
    names = {d["metadata"]["name"]: d["spec"]["scope"] for d in crd_documents()}
    assert names == {"leptonmodels.lepton.ai": "Namespaced"}


def test_leader_election_is_granted_only_in_the_release_namespace():
    documents = render("config.leaseName=my-lease")
    (role,) = by_kind(documents, "Role")
    assert role["metadata"]["namespace"] == "lepton-system"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]
    (binding,) = by_kind(documents, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (configmap,) = by_kind(documents, "ConfigMap")
    assert yaml.safe_load(configmap["data"]["config.yaml"])["leaseName"] == "my-lease"


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("sets", "image"),
    [
        ((), "ghcr.io/lepton-ai/lepton-operator:0.1.0"),
        ((f"image.digest={DIGEST}",), f"ghcr.io/lepton-ai/lepton-operator:0.1.0@{DIGEST}"),
        (
            (
                "image.repository=registry.example:5000/mirror/op",
                "image.tag=1.2.3",
                f"image.digest={DIGEST}",
            ),
            f"registry.example:5000/mirror/op:1.2.3@{DIGEST}",
        ),
    ],
)
def test_the_operator_image_is_pulled_by_tag_or_by_digest(sets, image):
    (deployment,) = by_kind(render(*sets), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image


def test_builder_and_triton_images_take_digests():
    builder = f"ghcr.io/lepton-ai/lepton-builder:0.1.0@{DIGEST}"
    triton = f"nvcr.io/nvidia/tritonserver@{DIGEST}"
    (configmap,) = by_kind(
        render(f"config.images.builder={builder}", f"config.images.triton={triton}"), "ConfigMap"
    )
    config = yaml.safe_load(next(iter(configmap["data"].values())))
    assert config["images"] == {
        "builder": builder,
        "triton": triton,
        "tritonNativeBackends": ["onnxruntime", "pytorch"],
    }


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("image.digest=sha256:abc", "/image/digest"),
        ("image.digest=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "digest"),
        (f"image.tag=1.0@{DIGEST}", "/image/tag"),
        ("config.images.builder=Not An Image", "/config/images/builder"),
        ("config.images.triton=nvcr.io/nvidia/tritonserver@sha256:short", "/config/images/triton"),
        ("config.images.tritonNativeBackends={onnx}", "/config/images/tritonNativeBackends"),
    ],
)
def test_malformed_tags_and_digests_are_rejected(setting, named):
    result = helm("template", "lepton", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "schema" in result.stderr and named in result.stderr, result.stderr
