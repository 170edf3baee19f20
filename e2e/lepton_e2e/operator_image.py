"""The operator's image for the e2e harness, rebuilt whenever what goes into it changed.

The harness runs the chart's operator pods from this image (``imagefs``), so the image
must be the checkout's: a test of an older image would pass or fail for code that is no
longer there. What goes into it is what its Dockerfile copies (the sources, the
packaging and the pinned constraints) and the scripts that build it; their digest is
written beside the archive after a build, and a different digest builds again
(``hack/images.sh IMAGES=operator``, which also checks the image: its user, entrypoint,
read-only root, and that it carries no torch or compiler).

Built as ``binaries.ensure_built`` builds the cluster: on first use by the session's
``kube`` fixture (one pytest worker builds while the other runs unit tests, which the
file lock serializes) and by ``make demo``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from lepton_e2e import imagefs

REPO_ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = REPO_ROOT / "build" / "images" / "lepton-operator.oci.tar"
STAMP = ARCHIVE.with_name(ARCHIVE.name + ".inputs")
# What runtimes/operator/Dockerfile copies, and what builds and checks it.
INPUTS = (
    "operator",
    "runtimes/builder/lepton_builder",
    "runtimes/activator/lepton_activator",
    "pyproject.toml",
    "README.md",
    "requirements/constraints.txt",
    "runtimes/operator/Dockerfile",
    "hack/base.Containerfile",
    "hack/images.sh",
    "e2e/lepton_e2e/image_checks.py",
)


def inputs_digest(root: Path = REPO_ROOT) -> str:
    """sha256 over the path and content of every file the image is built from (git's
    tracked and untracked-but-not-ignored files, so caches such as __pycache__ do not
    count and an edit not yet committed does)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *INPUTS],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    digest = hashlib.sha256()
    for name in sorted({n for n in listed if n}):
        path = root / name.decode()
        if path.is_file():  # a tracked file deleted in the worktree is not in the image
            digest.update(name + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def ensure_built() -> Path:
    """The operator image's OCI archive, built first when the checkout changed it."""
    with imagefs.locked(ARCHIVE.parent / ".operator-image.lock"):
        digest = inputs_digest()
        if ARCHIVE.is_file() and STAMP.is_file() and STAMP.read_text().strip() == digest:
            return ARCHIVE
        print(
            "building the operator image (hack/images.sh IMAGES=operator): the e2e harness "
            "runs the operator from it",
            file=sys.stderr,
        )
        started = time.monotonic()
        STAMP.unlink(missing_ok=True)
        subprocess.run(
            [str(REPO_ROOT / "hack" / "images.sh")],
            cwd=REPO_ROOT,
            env={**os.environ, "IMAGES": "operator"},
            check=True,
            stdout=sys.stderr,
        )
        STAMP.write_text(digest + "\n")
        print(f"operator image built in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return ARCHIVE


if __name__ == "__main__":
    print(ensure_built())
