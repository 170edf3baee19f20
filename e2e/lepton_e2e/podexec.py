"""Inside a pod's network and mount namespaces: mount its volumes, then exec it.

Started by the runner as ``ip netns exec NS unshare --mount --propagation private
python -m lepton_e2e.podexec SPEC.json``. The bind mounts live in the private mount
namespace only, so the process sees its volumes at their real ``mountPath`` (the
service-account token at /var/run/secrets/..., a model repository at /models) and
the host does not. Mount points that do not exist yet are created empty on the
host's filesystem, as a container runtime would inside the image.

With ``rootfs`` in the spec (an image unpacked by ``imagefs``) the process runs in the
image's own root filesystem instead, as a runtime starts a container: the volumes
mounted inside it, a fresh /dev with the usual device nodes, the host's /proc, and the
network namespace's resolv.conf and hosts; the root read-only when the container asks
for it; then ``chroot``, the working directory, and the user and groups the spec gives
(the pod's securityContext over the image's USER) before ``exec``.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _ensure_target(is_dir: bool, target: Path) -> None:
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.touch()


_LIBC = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096


def _mount(source: str | None, target: Path, flags: int) -> None:
    if (
        _LIBC.mount(source.encode() if source else None, str(target).encode(), None, flags, None)
        != 0
    ):
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def _bind(fd: int, target: Path, read_only: bool = False) -> None:
    """Bind the file object ``fd`` holds onto ``target``, by mount(2) itself.

    The kernel follows /proc/self/fd/N to the very object opened earlier; the mount(8)
    command would canonicalize it back to a path name, and that name may by now resolve
    inside a volume mounted over it.
    """
    _mount(f"/proc/self/fd/{fd}", target, MS_BIND)
    if read_only:
        _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY)


MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC = 2, 4, 8, 16384
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _open_sources(mounts: list[dict[str, Any]]) -> list[tuple[int, bool, dict[str, Any]]]:
    """Every volume's source, opened before anything is mounted: a volume mounted at
    /tmp would otherwise hide sources that live under /tmp on the host (the pod's
    own folder)."""
    sources = []
    for mount in mounts:
        source = Path(mount["source"])
        if not source.exists():
            source.mkdir(parents=True, exist_ok=True)
        sources.append((os.open(source, os.O_PATH), source.is_dir(), mount))
    return sources


def _mount_volumes(
    sources: list[tuple[int, bool, dict[str, Any]]], place: Callable[[str], Path]
) -> None:
    """Bind each opened volume where ``place`` puts its target (in the image's root, or
    on the host for the virtualenv entries), closing the descriptors as it goes."""
    for fd, is_dir, mount in sources:
        target = place(mount["target"])
        _ensure_target(is_dir, target)
        _bind(fd, target, read_only=mount["read_only"])
        os.close(fd)


def in_root(root: Path, path: str) -> Path:
    """``path`` as the container sees it, resolved on the host within ``root``: symbolic
    links inside the image are followed as if ``root`` were ``/`` (Debian's /var/run is
    a link to the absolute /run, which the host would resolve to its own /run), and
    ``..`` never climbs above ``root``; what does not exist yet is joined as is."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise OSError(f"too many symbolic links resolving {path} in {root}")
            link = os.readlink(candidate)
            if link.startswith("/"):
                resolved = []
            parts = [p for p in link.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _mount_dev(dev: Path) -> None:
    """A fresh /dev as a runtime gives a container: a tmpfs with the host's null, zero,
    random and friends bound in, the standard stream links and an empty shm."""
    dev.mkdir(exist_ok=True)
    if _LIBC.mount(b"tmpfs", str(dev).encode(), b"tmpfs", MS_NOSUID | MS_NOEXEC, b"mode=755") != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount tmpfs on {dev}: {os.strerror(error)}")
    for name in DEVICES:
        if Path("/dev", name).exists():
            (dev / name).touch()
            _mount(f"/dev/{name}", dev / name, MS_BIND)
    for name, points_to in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        (dev / name).symlink_to(points_to)
    (dev / "shm").mkdir()
    (dev / "shm").chmod(0o1777)  # mkdir's mode passes the umask: uid 1000 could not write


def _enter_rootfs(spec: dict[str, Any], sources: list[tuple[int, bool, dict[str, Any]]]) -> None:
    """Mount the volumes, /dev and /proc inside the image's root, then chroot into it."""
    root = Path(spec["rootfs"])
    _mount(str(root), root, MS_BIND | MS_REC)  # a mount of its own, to remount read-only
    _mount_dev(root / "dev")
    (root / "proc").mkdir(exist_ok=True)
    _mount("/proc", root / "proc", MS_BIND | MS_REC)
    for name in ("resolv.conf", "hosts"):
        host = Path("/etc", name)
        if host.exists():
            etc_file = in_root(root, f"/etc/{name}")
            _ensure_target(False, etc_file)
            _mount(str(host), etc_file, MS_BIND)
    _mount_volumes(sources, lambda target: in_root(root, target))
    if spec.get("readOnlyRoot"):
        _mount(None, root, MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chroot(root)
    os.chdir(spec.get("workingDir") or "/")
    os.setgroups(spec.get("groups") or [])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("rootfs"):
        _enter_rootfs(spec, _open_sources(spec["mounts"]))
        _exec(spec)
        return
    sources = _open_sources(spec["mounts"])
    # The image's own files (this checkout, its virtualenv) live on the host's root: a
    # volume mounted over one of their parents (an emptyDir at /tmp, with a checkout
    # under /tmp) would hide them, which a container's own root filesystem never does.
    image_paths = [(Path(p), os.open(p, os.O_PATH)) for p in spec.get("imagePaths", [])]
    _mount_volumes(sources, Path)
    targets = [Path(m["target"]) for m in spec["mounts"]]
    for path, fd in image_paths:
        if any(path == t or t in path.parents for t in targets):
            path.mkdir(parents=True, exist_ok=True)
            _bind(fd, path)
        os.close(fd)
    os.chdir(spec.get("workingDir") or "/")
    _exec(spec)


def _exec(spec: dict[str, Any]) -> None:
    argv: list[str] = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as error:
        # What a runtime reports as "exec format error"/"not found": exit 127 like a shell.
        sys.stderr.write(f"podexec: cannot start {argv[0]!r}: {error}\n")
        Path(spec["terminationMessagePath"]).write_text(f"cannot start {argv[0]!r}: {error}")
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1])
