"""The Helm chart, rendered by the real Helm binary: lint, RBAC, Pod Security, schema."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_e2e import binaries

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "lepton-operator"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(binaries.ensure_built() / "helm"), *args], capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def render(*sets: str) -> list[dict[str, Any]]:
    args = [a for s in sets for a in ("--set", s)]
    out = helm("template", "lepton", str(CHART), "-n", "lepton-system", *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def test_lint_strict_passes():
    helm("lint", "--strict", str(CHART))


def test_default_render_has_the_core_objects_and_no_optional_ones():
    kinds = {d["kind"] for d in render()}
    assert kinds == {
        "ServiceAccount",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
        "Deployment",
        "Service",
    }


def test_optional_objects_render_when_enabled():
    kinds = {d["kind"] for d in render("serviceMonitor.enabled=true", "networkPolicy.enabled=true")}
    assert {"ServiceMonitor", "NetworkPolicy"} <= kinds


def test_rbac_has_no_wildcards_and_no_secrets():
    for role in by_kind(render(), "ClusterRole"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (key, rule)
            assert "secrets" not in rule["resources"]


def test_deployment_is_restricted_pod_security():
    (deployment,) = by_kind(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert "command" not in container  # the image's entrypoint is lepton-operator
    assert {"name": "LEPTON_CONFIG", "value": "/etc/lepton/config.yaml"} in container["env"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/lepton"]["readOnly"] is True and "/tmp" in mounts


def test_configmap_is_the_config_values_verbatim():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (configmap,) = by_kind(render(), "ConfigMap")
    assert yaml.safe_load(configmap["data"]["config.yaml"]) == values["config"]


def test_config_change_rolls_the_operator():
    def checksum(*sets: str) -> str:
        (deployment,) = by_kind(render(*sets), "Deployment")
        annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"]

    assert checksum() != checksum("config.prometheus.url=http://other:9090")


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("replicaCont=2", "replicaCont"),
        ("config.pools[0].hourlyPrice=1", "hourlyPrice"),
        ("logFormat=xml", "logFormat"),
        ("metrics.port=70000", "port"),
    ],
)
def test_typos_and_bad_values_are_rejected_by_name(setting, named):
    result = helm("template", "lepton", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0 and named in result.stderr


def test_no_hooks_so_argo_cd_can_sync_it():
    documents = render("serviceMonitor.enabled=true", "networkPolicy.enabled=true")
    for path in (CHART / "crds").glob("*.yaml"):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for document in documents:
        assert "helm.sh/hook" not in (document["metadata"].get("annotations") or {})


def test_crds_ship_with_the_chart():
    names = {
        d["metadata"]["name"]: d["spec"]["scope"]
        for path in (CHART / "crds").glob("*.yaml")
        for d in yaml.safe_load_all(path.read_text())
        if d
    }
    assert names == {
        "leptonmodels.lepton.ai": "Namespaced",
        "clusterkopfpeerings.kopf.dev": "Cluster",
        "kopfpeerings.kopf.dev": "Namespaced",
    }


def test_peering_objects_follow_the_watched_namespaces():
    assert [d["metadata"]["name"] for d in by_kind(render(), "ClusterKopfPeering")] == [
        "lepton-operator"
    ]
    namespaced = render("config.watchNamespaces={a,b}")
    assert not by_kind(namespaced, "ClusterKopfPeering")
    assert sorted(d["metadata"]["namespace"] for d in by_kind(namespaced, "KopfPeering")) == [
        "a",
        "b",
    ]
