"""The argocd-cm patch and the argo-cd Helm values carry health.lua exactly."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml

DOCS = Path(__file__).resolve().parents[3] / "docs" / "argocd"
KEY = "resource.customizations.health.lepton.ai_LeptonModel"


def _generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("argocd_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_snippets_are_what_health_lua_generates():
    """Fails after an edit of health.lua until `python docs/argocd/generate.py` ran."""
    assert _generate().main(["--check"]) == 0


def test_the_configmap_patch_carries_the_script():
    script = (DOCS / "health.lua").read_text()
    doc = yaml.safe_load((DOCS / "argocd-cm.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "ConfigMap")
    assert (doc["metadata"]["name"], doc["metadata"]["namespace"]) == ("argocd-cm", "argocd")
    assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    assert doc["data"] == {KEY: script}


def test_the_helm_values_carry_the_script():
    script = (DOCS / "health.lua").read_text()
    doc = yaml.safe_load((DOCS / "argo-cd-helm-values.yaml").read_text())
    assert doc == {"configs": {"cm": {KEY: script}}}


@pytest.mark.parametrize("bad", ["  local x = 1\n", "  local x = 1\nreturn x\n", "return 1"])
def test_a_script_yaml_would_alter_is_refused(bad):
    with pytest.raises(ValueError, match="does not read back"):
        _generate().render(bad)
