"""The Dockerfiles agree with what runs them: the chart's pod, pyproject's entry points, the
e2e harness's stand-ins. Building them is `make images` (root, minutes); these checks are
the part that needs neither, so a drift between a Dockerfile and its consumers fails here.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
RUNTIMES = REPO / "runtimes"
CHART = REPO / "charts" / "lepton-operator"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line, continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def entrypoint(steps: list[tuple[str, str]]) -> list[str]:
    [args] = [a for op, a in steps if op == "ENTRYPOINT"]
    return list(json.loads(args))


def e2e_images() -> dict:
    return yaml.safe_load((REPO / "e2e" / "cluster" / "images.yaml").read_text())["images"]


def e2e_entrypoint(repository: str) -> list[str]:
    return list(e2e_images()[repository]["entrypoint"])


def assert_e2e_runs_the_image(name: str) -> None:
    """The harness runs the image itself (its archive), with the entrypoint of its config."""
    entry = e2e_images()[f"ghcr.io/lepton-ai/lepton-{name}"]
    assert entry["ociArchive"].endswith(f"/build/images/lepton-{name}.oci.tar")
    assert "entrypoint" not in entry


OPERATOR = RUNTIMES / "operator" / "Dockerfile"


def test_the_operator_image_runs_as_the_charts_user() -> None:
    template = (CHART / "templates" / "deployment.yaml").read_text()
    uid = re.search(r"runAsUser: (\d+)", template)
    gid = re.search(r"runAsGroup: (\d+)", template)
    assert uid and gid
    [user] = [a for op, a in final_stage(OPERATOR) if op == "USER"]
    assert user == f"{uid[1]}:{gid[1]}"
    assert uid[1] != "0"


def test_the_operator_entrypoint_is_the_script_the_chart_and_e2e_expect() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    [command] = entrypoint(final_stage(OPERATOR))
    assert scripts[command] == "lepton_operator.__main__:main"
    # The chart's Deployment gives no command; the harness stands in with this argv.
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert not re.search(r"^\s+command:", deployment, re.M)
    assert_e2e_runs_the_image("operator")


def test_the_operator_final_stage_installs_nothing() -> None:
    """No RUN in the last stage: no package manager, compiler or pip cache can land there;
    it is the base plus the virtualenv built in the first stage."""
    steps = final_stage(OPERATOR)
    assert [op for op, _ in steps if op == "RUN"] == []
    copies = [a for op, a in steps if op in ("COPY", "ADD")]
    assert copies == [
        "--from=build /opt/venv /opt/venv",
        "--from=build /etc/passwd /etc/group /etc/",
    ]


def test_the_runtime_user_is_known_to_the_image() -> None:
    """getpass.getuser() (kopf's identity without POD_ID) needs a passwd entry for the
    uid; the chart sets POD_ID as well, for a runAsUser the image cannot know."""
    for dockerfile in (OPERATOR, RUNTIMES / "activator" / "Dockerfile"):
        runs = " ".join(a for op, a in instructions(dockerfile) if op == "RUN")
        assert "nonroot:x:65532:65532:" in runs and "nonroot:x:65532:" in runs
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert re.search(
        r"- name: POD_ID\n\s+valueFrom:\n\s+fieldRef:\n\s+fieldPath: metadata.name", deployment
    )


def test_the_operator_is_installed_without_extras_and_from_wheels() -> None:
    """No `[builder]` extra (torch), and --only-binary: a dependency needing a compiler
    fails the build rather than bringing one into the build stage."""
    runs = " ".join(a for op, a in instructions(OPERATOR) if op == "RUN")
    assert "--only-binary=:all:" in runs
    assert "-c requirements/constraints.txt" in runs
    assert not re.search(r"\.\[\w", runs)
    assert 'find_spec("torch") is None' in runs


@pytest.mark.parametrize("name", ["operator", "builder", "activator"])
def test_python_images_take_a_base_argument_with_a_public_default(name: str) -> None:
    steps = instructions(RUNTIMES / name / "Dockerfile")
    assert steps[0] == ("ARG", "BASE=python:3.11-slim-bookworm")
    froms = [a.split()[0] for op, a in steps if op == "FROM"]
    assert froms and all(f == "${BASE}" for f in froms)


def test_the_activator_image_is_what_the_chart_and_e2e_run() -> None:
    """Its own script on PATH (the chart's command), the chart's user, no kopf in it."""
    dockerfile = RUNTIMES / "activator" / "Dockerfile"
    steps = final_stage(dockerfile)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint(steps) == ["lepton-activator"]
    assert_e2e_runs_the_image("activator")
    assert scripts["lepton-activator"] == "lepton_activator.__main__:main"
    template = (CHART / "templates" / "activator.yaml").read_text()
    assert 'command: ["lepton-activator"]' in template
    assert [a for op, a in steps if op == "USER"] == ["65532:65532"]
    assert "runAsUser: 65532" in template
    runs = " ".join(a for op, a in instructions(dockerfile) if op == "RUN")
    assert 'find_spec("kopf") is None' in runs
    # Triton's HTTP API on aiohttp, its gRPC API on grpcio (pinned as the tests' venv
    # has it); the build imports the gRPC path, which imports the HTTP one.
    assert "-c requirements/constraints.txt aiohttp grpcio " in runs
    assert "import lepton_activator.grpcproxy" in runs
    constraints = (REPO / "requirements" / "constraints.txt").read_text()
    assert re.search(r"^grpcio==", constraints, re.M)


def test_the_builder_entrypoint_matches_e2e() -> None:
    steps = final_stage(RUNTIMES / "builder" / "Dockerfile")
    assert entrypoint(steps) == e2e_entrypoint("ghcr.io/lepton-ai/lepton-builder")
    assert [a for op, a in steps if op == "USER"] == ["1000:1000"]


def test_the_triton_image_extends_the_ngc_release_the_chart_names() -> None:
    """The chart's default Triton and the Dockerfile's base are the same NGC release."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    [base] = [a for op, a in instructions(RUNTIMES / "triton" / "Dockerfile") if op == "FROM"]
    assert base == values["config"]["images"]["triton"]
