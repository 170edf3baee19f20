"""The ``tritonserver`` of PyPI's ``nvidia-pytriton`` wheel, run like NGC's.

The serving search needs a real Triton in the build Job. NGC's image has one on PATH;
the builder's image is a slim Python with pip's torch, where the only Triton a pinned
install can bring is the one inside the ``nvidia-pytriton`` wheel: the binary, its
shared libraries and the python backend (one stub per Python version), which is the
backend every model the builder writes runs on. Unlike NGC's, that binary finds
neither its backends nor its response cache by default and needs its libraries on
``LD_LIBRARY_PATH``, so ``python -m lepton_builder.wheel_triton ARGS`` supplies those
and execs it with the caller's arguments: a drop-in ``tritonserver``. The e2e harness's
process pods use the same launcher for their Deployments' ``tritonserver`` command.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path


def available() -> bool:
    """Whether the wheel is installed (without importing it)."""
    return importlib.util.find_spec("pytriton") is not None


def launcher() -> list[str]:
    """The command that runs the wheel's server as ``tritonserver``."""
    return [sys.executable, "-m", __name__]


def _package_root() -> Path:
    import pytriton

    return Path(pytriton.__file__).resolve().parent


def binary() -> Path:
    return _package_root() / "tritonserver" / "bin" / "tritonserver"


def cache_directory() -> Path:
    """Where the wheel keeps ``local/libtritoncache_local.so``, the response cache; the
    NGC image's default (``/opt/tritonserver/caches``) does not exist here."""
    return _package_root() / "tritonserver" / "caches"


def library_path() -> str:
    libs = _package_root().parent / "nvidia_pytriton.libs"
    return os.pathsep.join(p for p in (str(libs), os.environ.get("LD_LIBRARY_PATH", "")) if p)


def prepare_backends(target: Path) -> Path:
    """A backend directory holding the python backend with this Python's stub (the wheel
    keeps the stubs apart; the backend loads the one beside it)."""
    python = target / "python"
    if not (python / "triton_python_backend_stub").exists():
        wheel = _package_root() / "tritonserver"
        shutil.copytree(wheel / "backends" / "python", python, dirs_exist_ok=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = wheel / "python_backend_stubs" / version / "triton_python_backend_stub"
        shutil.copy2(stub, python / "triton_python_backend_stub")
    return target


def server_env() -> dict[str, str]:
    """This Python's environment first on PATH, so the backend's models import numpy,
    onnxruntime and torch from it."""
    python_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "LD_LIBRARY_PATH": library_path(),
        "PATH": os.pathsep.join([python_bin, os.environ.get("PATH", "")]),
    }


def main() -> None:
    # $TMPDIR: the pod's emptyDir, writable whatever the image's user.
    backends = prepare_backends(Path(tempfile.gettempdir()) / "triton-backends")
    argv = [
        str(binary()),
        f"--backend-directory={backends}",
        f"--cache-directory={cache_directory()}",
        *sys.argv[1:],
    ]
    os.execve(argv[0], argv, server_env())


if __name__ == "__main__":
    main()
