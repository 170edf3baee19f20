"""The objects the harness gives Argo CD, without a cluster.

Each check stands for a failure seen or easy to make: a cluster Secret whose ``config``
Argo CD cannot unmarshal (it wants JSON, and then silently has no destination), an
``argocd-cm`` that drops Argo CD's shipped defaults or carries a health check other than
the one in ``docs/argocd``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml

from lepton_e2e import argocd, argocd_build
from lepton_e2e.cluster import Cluster, ClusterConfig
from lepton_e2e.netns import Network

REPO = Path(__file__).resolve().parents[3]
HEALTH_KEY = "resource.customizations.health.lepton.ai_LeptonModel"


def _objects(tmp_path: Path) -> dict[str, dict[str, Any]]:
    config = ClusterConfig(state_dir=tmp_path / "state", network=Network("t0", "10.250.0.0/16"))
    cluster = Cluster(config)
    (cluster.pki / "serving").mkdir(parents=True)
    (cluster.pki / "admin.token").write_text("secret-token\n")
    (cluster.pki / "serving" / "apiserver.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    argocd_bin = tmp_path / "bin"
    argocd_bin.mkdir()
    defaults = {"data": {"resource.customizations.ignoreResourceUpdates.all": "x"}}
    (argocd_bin / "argocd-cm.yaml").write_text(yaml.safe_dump(defaults))
    objects = argocd.ArgoCD(cluster)._objects(argocd_bin)
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_the_local_apiserver_is_registered_as_a_cluster_with_a_json_config(tmp_path):
    secret = _objects(tmp_path)["Secret/cluster-lepton-e2e"]
    assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "cluster"
    assert secret["stringData"]["server"] == "https://10.250.0.1:6443"
    config = json.loads(secret["stringData"]["config"])
    assert config["bearerToken"] == "secret-token"
    assert base64.b64decode(config["tlsClientConfig"]["caData"]).startswith(b"-----BEGIN")


def test_argocd_cm_keeps_the_shipped_defaults_and_adds_our_health_check(tmp_path):
    data = _objects(tmp_path)["ConfigMap/argocd-cm"]["data"]
    assert data["resource.customizations.ignoreResourceUpdates.all"] == "x"
    assert data[HEALTH_KEY] == (REPO / "docs" / "argocd" / "health.lua").read_text()


def test_every_object_argocd_reads_is_labelled_part_of_argocd(tmp_path):
    objects = _objects(tmp_path)
    for name in ("ConfigMap/argocd-cm", "ConfigMap/argocd-rbac-cm", "Secret/argocd-secret"):
        assert objects[name]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"


def test_the_build_cache_key_follows_the_pinned_module(tmp_path, monkeypatch):
    key = argocd_build.cache_key()
    assert argocd_build.bin_dir().name == f"argocd-{key}"
    (tmp_path / "go.mod").write_text(
        (argocd_build.ARGOCD_SRC / "go.mod").read_text().replace("v3.6.1", "v3.6.2")
    )
    (tmp_path / "go.sum").write_text((argocd_build.ARGOCD_SRC / "go.sum").read_text())
    monkeypatch.setattr(argocd_build, "ARGOCD_SRC", tmp_path)
    assert argocd_build.cache_key() != key
