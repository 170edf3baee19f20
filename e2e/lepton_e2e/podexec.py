"""Inside a pod's network and mount namespaces: mount its volumes, then exec it.

Started by the runner as ``ip netns exec NS unshare --mount --propagation private
python -m lepton_e2e.podexec SPEC.json``. The bind mounts live in the private mount
namespace only, so the process sees its volumes at their real ``mountPath`` (the
service-account token at /var/run/secrets/..., a model repository at /models) and
the host does not. Mount points that do not exist yet are created empty on the
host's filesystem, as a container runtime would inside the image.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path


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


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    # Open every source before mounting anything: a volume mounted at /tmp would
    # otherwise hide sources that live under /tmp on the host (the pod's own folder).
    sources = []
    for mount in spec["mounts"]:
        source = Path(mount["source"])
        if not source.exists():
            source.mkdir(parents=True, exist_ok=True)
        sources.append((os.open(source, os.O_PATH), source.is_dir(), mount))
    # The image's own files (this checkout, its virtualenv) live on the host's root: a
    # volume mounted over one of their parents (an emptyDir at /tmp, with a checkout
    # under /tmp) would hide them, which a container's own root filesystem never does.
    image_paths = [(Path(p), os.open(p, os.O_PATH)) for p in spec.get("imagePaths", [])]
    for fd, is_dir, mount in sources:
        target = Path(mount["target"])
        _ensure_target(is_dir, target)
        _bind(fd, target, read_only=mount["read_only"])
        os.close(fd)
    targets = [Path(m["target"]) for m in spec["mounts"]]
    for path, fd in image_paths:
        if any(path == t or t in path.parents for t in targets):
            path.mkdir(parents=True, exist_ok=True)
            _bind(fd, path)
        os.close(fd)
    os.chdir(spec.get("workingDir") or "/")
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
