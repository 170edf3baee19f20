"""A real Triton Inference Server from PyPI's ``nvidia-pytriton`` wheel, for tests.

The wheel carries the ``tritonserver`` binary, its shared libraries and only the
python backend (with one stub per Python version). The backend folder is copied
somewhere writable with the stub of the running Python dropped in, and the server
starts with this virtualenv first on PATH so the backend's models import numpy,
onnxruntime and torch from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytriton


def _wheel_root() -> Path:
    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def binary() -> Path:
    return _wheel_root() / "bin" / "tritonserver"


def cache_directory() -> Path:
    """Where the wheel keeps ``local/libtritoncache_local.so``, the response cache; the
    NGC image's default (``/opt/tritonserver/caches``) does not exist here."""
    return _wheel_root() / "caches"


def library_path() -> str:
    libs = Path(pytriton.__file__).resolve().parent.parent / "nvidia_pytriton.libs"
    return os.pathsep.join(p for p in (str(libs), os.environ.get("LD_LIBRARY_PATH", "")) if p)


def prepare_backends(target: Path) -> Path:
    """A backend directory holding the python backend with this Python's stub."""
    python = target / "python"
    if not (python / "triton_python_backend_stub").exists():
        shutil.copytree(_wheel_root() / "backends" / "python", python, dirs_exist_ok=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = _wheel_root() / "python_backend_stubs" / version / "triton_python_backend_stub"
        shutil.copy2(stub, python / "triton_python_backend_stub")
    return target


def server_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "LD_LIBRARY_PATH": library_path(),
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
    }


def command(repository: Path | str, backends: Path, address: str, models: list[str]) -> list[str]:
    argv = [
        str(binary()),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        f"--cache-directory={cache_directory()}",
        "--model-control-mode=explicit",
        f"--http-address={address}",
        f"--grpc-address={address}",
        f"--metrics-address={address}",
        "--metrics-config=summary_latencies=true",
        "--log-verbose=0",
    ]
    return argv + [f"--load-model={m}" for m in models]


class TritonServer:
    """Starts a server on ``address`` (ports 8000/8001/8002) and stops it."""

    def __init__(
        self,
        repository: Path | str,
        workdir: Path,
        models: list[str],
        address: str = "127.0.0.1",
    ) -> None:
        self.address = address
        backends = prepare_backends(workdir / "backends")
        self.log_path = workdir / "tritonserver.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command(repository, backends, address, models),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(),
            )

    @property
    def http(self) -> str:
        return f"{self.address}:8000"

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tritonserver exited {self.process.returncode}: "
                    f"{self.log_path.read_text()[-3000:]}"
                )
            try:
                url = f"http://{self.http}/v2/health/ready"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(
            f"tritonserver not ready in {timeout:.0f} s: {self.log_path.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
