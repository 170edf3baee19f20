"""A shipped image, unpacked: its root filesystem and its config, as a runtime reads them.

Why: the pod runner used to start the operator from this checkout's virtualenv, so a
file missing from the image, a wrong entrypoint, user or working directory, or a
dependency only the virtualenv has would first show on a user's cluster. An image
listed with an ``ociArchive`` in the image table runs from its own root filesystem
instead (``podexec`` chroots into it), with the entrypoint, command, environment, user
and working directory of its config: every e2e test that installs the chart then
tests the image itself.

The archive is what ``make images`` writes (``buildah push ... oci-archive:``);
``skopeo`` copies it to an OCI layout and ``umoci`` unpacks its layers, the tools
``image_checks`` uses too. Each archive is unpacked once, under a key of
its size and modification time, so a rebuilt image is unpacked again and an unchanged
one costs nothing, in this cluster or the next (the pod runner unpacks into the cache);
concurrent pods (two operator replicas) share one unpack.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lepton_e2e import podspec

STAGE_TAG = "e2e"


class ImageError(RuntimeError):
    """The image cannot be run: missing, unreadable, or a config the runner cannot honour."""


@dataclass(frozen=True)
class ImageConfig:
    """What a runtime takes from the image's config (the OCI image spec's ``config``)."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    working_dir: str

    @classmethod
    def parse(cls, config: dict[str, object]) -> ImageConfig:
        """``config`` is the image config's ``config`` object (Entrypoint, Cmd, Env,
        User, WorkingDir). A user given by name would need the image's /etc/passwd:
        refused, since the project's images give numbers (the chart's runAsUser)."""
        env: dict[str, str] = {}
        for entry in _strings(config.get("Env")):
            key, _, value = entry.partition("=")
            env[key] = value
        user, _, group = str(config.get("User") or "0").partition(":")
        if not user.isdigit() or (group and not group.isdigit()):
            raise ImageError(f"image user {config.get('User')!r} is not numeric uid[:gid]")
        return cls(
            entrypoint=_strings(config.get("Entrypoint")),
            cmd=_strings(config.get("Cmd")),
            env=env,
            uid=int(user),
            gid=int(group or user),
            working_dir=str(config.get("WorkingDir") or "/"),
        )

    def argv(self, command: list[str] | None, args: list[str] | None) -> list[str]:
        return podspec.container_argv(self.entrypoint, self.cmd, command, args)


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImageError(f"expected a list of strings in the image config, got {value!r}")
    return list(value)


@dataclass(frozen=True)
class UnpackedImage:
    rootfs: Path
    config: ImageConfig


def archive_key(archive: Path) -> str:
    """Changes whenever the archive is rewritten (``make images`` replaces it)."""
    stat = archive.stat()
    identity = f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def read_layout_config(layout: Path) -> dict[str, object]:
    """The image config of the single image in an OCI layout: index -> manifest -> config."""

    def blob(descriptor: dict[str, str]) -> dict[str, object]:
        algorithm, digest = descriptor["digest"].split(":", 1)
        loaded: dict[str, object] = json.loads((layout / "blobs" / algorithm / digest).read_text())
        return loaded

    index = json.loads((layout / "index.json").read_text())
    manifests = index.get("manifests") or []
    if len(manifests) != 1:
        raise ImageError(f"{layout}: expected one image in the layout, found {len(manifests)}")
    manifest = blob(manifests[0])
    config = blob(manifest["config"])  # type: ignore[arg-type]
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ImageError(f"{layout}: the image config has no config object")
    return inner


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path``: one unpack or build at a time across processes
    (two pytest workers, two operator pods starting at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def unpack(archive: Path, into: Path) -> UnpackedImage:
    """The archive's root filesystem and config under ``into/<name>/<checkout>/<key>``,
    unpacked on first use. ``into`` may outlive the cluster (the pod runner keeps it in
    the cache: a warm ``make demo`` then starts the operator without unpacking 800 MB
    again). Per checkout, earlier unpacks of the archive are removed, since a rebuilt
    image replaces them and each holds a whole root filesystem; so are those of
    checkouts whose archive is gone (a clean clone removed), and no other: another
    checkout's cluster may be running from its own."""
    if not archive.is_file():
        raise ImageError(
            f"{archive} is missing: the e2e harness runs the operator and the activator "
            "from their images; `make e2e-images` builds them, as `make test`, the e2e session, "
            "`make cluster-up` and `make demo` do first (docs/images.md)"
        )
    name = into / archive.name.removesuffix(".oci.tar")
    family = name / hashlib.sha256(str(archive.resolve()).encode()).hexdigest()[:12]
    target = family / archive_key(archive)
    done = target / "config.json"
    with locked(name / ".lock"):
        _forget_removed_checkouts(name)
        if not done.exists():
            for stale in family.glob("*"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            _unpack_fresh(archive, target)
            found = read_layout_config(target / "oci")
            shutil.rmtree(target / "oci")  # the layers are in the root filesystem now
            done.write_text(json.dumps(found))
            (family / ARCHIVE_RECORD).write_text(str(archive.resolve()))
    config = ImageConfig.parse(json.loads(done.read_text()))
    return UnpackedImage(target / "bundle" / "rootfs", config)


ARCHIVE_RECORD = "archive"  # in each checkout's folder: the archive it unpacks


def _forget_removed_checkouts(name: Path) -> None:
    for family in name.iterdir():
        record = family / ARCHIVE_RECORD
        if record.is_file() and not Path(record.read_text()).exists():
            shutil.rmtree(family, ignore_errors=True)


def _unpack_fresh(archive: Path, target: Path) -> None:
    target.mkdir(parents=True)
    layout = target / "oci"
    for argv in (
        ["skopeo", "copy", "-q", f"oci-archive:{archive}", f"oci:{layout}:{STAGE_TAG}"],
        ["umoci", "unpack", "--image", f"{layout}:{STAGE_TAG}", str(target / "bundle")],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise ImageError(f"{' '.join(argv)} failed: {done.stderr.strip()[-1000:]}")
