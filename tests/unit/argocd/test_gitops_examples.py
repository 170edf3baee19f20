"""examples/gitops/: Applications that parse and point at what this repository has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
GITOPS = REPO / "examples" / "gitops"


def _application(name: str) -> dict[str, Any]:
    (doc,) = list(yaml.safe_load_all((GITOPS / name).read_text()))
    assert (doc["apiVersion"], doc["kind"]) == ("argoproj.io/v1alpha1", "Application")
    assert doc["metadata"]["namespace"] == "argocd"
    spec: dict[str, Any] = doc["spec"]
    assert spec["project"] == "default"
    assert spec["destination"]["server"] == "https://kubernetes.default.svc"
    sync = spec["syncPolicy"]
    assert sync["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in sync["syncOptions"]
    return doc


def test_the_folder_holds_the_two_applications_and_a_readme():
    assert sorted(p.name for p in GITOPS.iterdir()) == [
        "README.md",
        "lepton-models.yaml",
        "lepton-operator.yaml",
    ]


def test_the_operator_application_is_the_chart_from_git():
    doc = _application("lepton-operator.yaml")
    source = doc["spec"]["source"]
    assert (REPO / source["path"] / "Chart.yaml").is_file()
    assert source["helm"]["releaseName"] == "lepton"
    assert doc["spec"]["destination"]["namespace"] == "lepton-system"
    # Deleting the Application must not take the CRD, and with it every LeptonModel.
    assert "finalizers" not in doc["metadata"]


def test_the_models_application_is_a_folder_of_leptonmodels():
    doc = _application("lepton-models.yaml")
    source = doc["spec"]["source"]
    folder = REPO / source["path"]
    assert source["directory"]["recurse"] is False
    included = sorted(folder.glob(source["directory"]["include"]))
    assert [p.name for p in included] == ["minilm.yaml"]
    for path in included:
        model = yaml.safe_load(path.read_text())
        assert (model["apiVersion"], model["kind"]) == ("lepton.ai/v1alpha1", "LeptonModel")
        assert "namespace" not in model["metadata"]  # the Application's destination decides
    # Deleting the Application deletes the models (and by owner references, their objects).
    assert doc["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert doc["spec"]["syncPolicy"]["retry"]["limit"] > 0
    # The operator writes status only: nothing to ignore (examples/gitops/README.md).
    assert "ignoreDifferences" not in doc["spec"]


def test_both_applications_sync_the_same_repository():
    repos = {
        _application(name)["spec"]["source"]["repoURL"]
        for name in ("lepton-operator.yaml", "lepton-models.yaml")
    }
    assert len(repos) == 1
