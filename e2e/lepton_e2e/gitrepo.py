"""A local git repository that Argo CD syncs from (``file://`` URL), and the project's
example Applications pointed at it.

Why a real repository and not a folder: Argo CD resolves a branch to a commit, caches
manifests by that commit, and reports the revision it synced; a test that commits a
change and sees that revision arrive proves the change came from git.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BRANCH = "main"


class LocalRepo:
    """A git repository on disk, one branch, committed to by the test."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def init(self) -> LocalRepo:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        self._git("init", "-q", "-b", BRANCH)
        return self

    def copy_in(self, source: Path, destination: str) -> None:
        """Copy a file or folder of this checkout into the repository (not committed)."""
        target = self.path / destination
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy(source, target)

    def write_yaml(self, destination: str, document: dict[str, Any]) -> None:
        target = self.path / destination
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(document, sort_keys=False))

    def commit(self, message: str) -> str:
        """Commit everything and return the new commit's SHA."""
        self._git("add", "-A")
        self._git("commit", "-q", "-m", message)
        return self._git("rev-parse", "HEAD").strip()

    def _git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "lepton-e2e",
            "GIT_AUTHOR_EMAIL": "e2e@lepton.local",
            "GIT_COMMITTER_NAME": "lepton-e2e",
            "GIT_COMMITTER_EMAIL": "e2e@lepton.local",
            "GIT_CONFIG_GLOBAL": "/dev/null",  # a developer's hooks or signing stay out
        }
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout


def example_application(name: str, repo_url: str, server: str) -> dict[str, Any]:
    """``examples/gitops/<name>.yaml``, pointed at ``repo_url`` and the cluster ``server``:
    the shipped example itself, so the test proves what a user would apply."""
    document: dict[str, Any] = yaml.safe_load(
        (REPO / "examples" / "gitops" / f"{name}.yaml").read_text()
    )
    document = copy.deepcopy(document)
    document["spec"]["source"]["repoURL"] = repo_url
    document["spec"]["source"]["targetRevision"] = BRANCH
    document["spec"]["destination"]["server"] = server
    return document
