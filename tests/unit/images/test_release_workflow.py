"""The release workflow publishes the images the chart pulls, under the tags it pulls.

The workflow cannot run here (no registry, no Docker engine); actionlint checks its syntax
in `make lint`, and these tests check what it would publish against
charts/lepton-operator/values.yaml and Chart.yaml, running its version step for real.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
CHART = REPO / "charts" / "lepton-operator"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def published(workflow: dict[str, Any], version: str) -> dict[str, str]:
    """image name -> the reference the workflow pushes for a release of `version`."""
    job = workflow["jobs"]["images"]
    [build] = [s for s in job["steps"] if s.get("id") == "build"]
    tag = build["with"]["tags"]
    refs = {}
    for image in images(workflow):
        repository = job["env"]["IMAGE"].replace("${{ matrix.image }}", image)
        ref = tag.replace("${{ env.IMAGE }}", repository)
        refs[image] = ref.replace("${{ needs.version.outputs.version }}", version)
        assert "${{" not in refs[image], refs[image]
    return refs


def images(workflow: dict[str, Any]) -> dict[str, str]:
    """image name -> the platforms the workflow builds it for."""
    include = workflow["jobs"]["images"]["strategy"]["matrix"]["include"]
    return {entry["image"]: entry["platforms"] for entry in include}


def app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def run_version_step(workflow: dict[str, Any], ref_name: str, tmp_path: Path) -> tuple[int, str]:
    [step] = [s for s in workflow["jobs"]["version"]["steps"] if s.get("id") == "version"]
    output = tmp_path / "github_output"
    output.write_text("")
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        cwd=REPO,
        env={**os.environ, "GITHUB_REF_NAME": ref_name, "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.returncode, output.read_text()


def test_the_operator_image_is_the_charts_image(workflow) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    refs = published(workflow, app_version())
    # The Deployment pulls `repository:tag`, the tag defaulting to appVersion.
    assert values["image"]["tag"] == ""
    assert refs["operator"] == f"{values['image']['repository']}:{app_version()}"


def test_the_builder_image_is_the_one_the_operator_runs(workflow) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert published(workflow, app_version())["builder"] == values["config"]["images"]["builder"]


def test_the_activator_image_is_the_charts_activator(workflow) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["activator"]
    assert values["image"]["tag"] == ""
    expected = f"{values['image']['repository']}:{app_version()}"
    assert published(workflow, app_version())["activator"] == expected


def test_every_published_image_has_a_dockerfile(workflow) -> None:
    [build] = [s for s in workflow["jobs"]["images"]["steps"] if s.get("id") == "build"]
    for image in images(workflow):
        dockerfile = build["with"]["file"].replace("${{ matrix.image }}", image)
        assert (REPO / dockerfile).is_file(), dockerfile
    assert set(images(workflow)) == {"operator", "builder", "activator", "triton"}
    assert build["with"]["platforms"] == "${{ matrix.platforms }}"
    assert build["with"]["push"] is True
    assert build["with"]["sbom"] is True


def test_operator_and_builder_are_multi_arch_triton_amd64_only(workflow) -> None:
    """Triton's image needs onnxruntime-gpu, which PyPI has for x86_64 only."""
    platforms = images(workflow)
    assert platforms["operator"] == platforms["builder"] == "linux/amd64,linux/arm64"
    assert platforms["activator"] == "linux/amd64,linux/arm64"
    assert platforms["triton"] == "linux/amd64"


def test_images_and_the_chart_are_signed_by_digest(workflow) -> None:
    images = workflow["jobs"]["images"]
    [sign] = [s for s in images["steps"] if str(s.get("run", "")).startswith("cosign sign")]
    assert sign["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert "@${DIGEST}" in sign["run"]
    for job in ("images", "chart"):
        assert workflow["jobs"][job]["permissions"]["id-token"] == "write"  # keyless
    chart_run = workflow["jobs"]["chart"]["steps"][-1]["run"]
    assert "helm push" in chart_run
    assert "cosign sign --yes" in chart_run
    assert workflow["env"]["CHART_REPOSITORY"].startswith("oci://")


def test_the_version_step_accepts_the_charts_tag_and_refuses_another(workflow, tmp_path) -> None:
    rc, output = run_version_step(workflow, f"v{app_version()}", tmp_path)
    assert rc == 0
    assert output == f"version={app_version()}\n"
    rc, output = run_version_step(workflow, "v99.0.0", tmp_path)
    assert rc != 0
    assert output == ""
