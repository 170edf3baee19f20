"""The images the e2e harness runs, rebuilt whenever what goes into them changed.

The harness runs the chart's operator and activator pods from these images
(``imagefs``), so each must be the checkout's: a test of an older image would pass or
fail for code that is no longer there. What goes into an image is what its Dockerfile
copies (the sources, the packaging and the pinned constraints) and the scripts that
build it; their digest is written beside the archive after a build, and a different
digest builds again (``hack/images.sh IMAGES=<name>``, which checks the operator's image
too: its user, entrypoint, read-only root, and that it carries no torch or compiler).

Built as ``binaries.ensure_built`` builds the cluster: on first use by the session's
``kube`` fixture (one pytest worker builds while the other runs unit tests, which the
file lock serializes), by ``make demo`` (the operator's alone) and ``make cluster-up``.
The builder's and Triton's images are ``make images``' alone: gigabytes of torch and
CUDA, and NGC's base.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lepton_e2e import imagefs

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT = REPO_ROOT / "build" / "images"
# What both Dockerfiles copy (the project's wheel is built from all of it), and what
# builds the images.
_PROJECT = (
    "operator",
    "runtimes/builder/lepton_builder",
    "runtimes/activator/lepton_activator",
    "pyproject.toml",
    "README.md",
    "requirements/constraints.txt",
    "hack/base.Containerfile",
    "hack/images.sh",
)


@dataclass(frozen=True)
class ShippedImage:
    """One image of ``runtimes/<name>/Dockerfile`` as ``hack/images.sh`` writes it."""

    name: str
    inputs: tuple[str, ...]

    @property
    def archive(self) -> Path:
        return OUT / f"lepton-{self.name}.oci.tar"

    @property
    def stamp(self) -> Path:
        return self.archive.with_name(self.archive.name + ".inputs")


OPERATOR = ShippedImage(
    "operator", (*_PROJECT, "runtimes/operator/Dockerfile", "e2e/lepton_e2e/image_checks.py")
)
ACTIVATOR = ShippedImage("activator", (*_PROJECT, "runtimes/activator/Dockerfile"))


def inputs_digest(image: ShippedImage = OPERATOR, root: Path = REPO_ROOT) -> str:
    """sha256 over the path and content of every file the image is built from (git's
    tracked and untracked-but-not-ignored files, so caches such as __pycache__ do not
    count and an edit not yet committed does)."""
    listed = subprocess.run(
        [
            "git",
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            *image.inputs,
        ],
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


def ensure_built(*images: ShippedImage) -> list[Path]:
    """The archives of ``images`` (default: the operator's and the activator's), each
    built first when the checkout changed it."""
    return [_ensure(image) for image in images or (OPERATOR, ACTIVATOR)]


def _ensure(image: ShippedImage) -> Path:
    # One lock for every build: hack/images.sh ends by removing the images it left in
    # buildah's storage, another build's included.
    with imagefs.locked(OUT / ".images.lock"):
        digest = inputs_digest(image)
        stamp = image.stamp
        if image.archive.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
            return image.archive
        print(
            f"building the {image.name} image (hack/images.sh IMAGES={image.name}): the "
            "e2e harness runs it",
            file=sys.stderr,
        )
        started = time.monotonic()
        stamp.unlink(missing_ok=True)
        subprocess.run(
            [str(REPO_ROOT / "hack" / "images.sh")],
            cwd=REPO_ROOT,
            env={**os.environ, "IMAGES": image.name},
            check=True,
            stdout=sys.stderr,
        )
        stamp.write_text(digest + "\n")
        print(f"{image.name} image built in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return image.archive


if __name__ == "__main__":
    print(*ensure_built(), sep="\n")
