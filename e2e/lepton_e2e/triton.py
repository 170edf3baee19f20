"""A real Triton Inference Server from PyPI's ``nvidia-pytriton`` wheel, for tests.

The wheel's binary, libraries and python backend are found and prepared by the
builder's own launcher (``lepton_builder.wheel_triton``, what the serving search runs
in the builder image); here the server starts with the test's repository and models.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from lepton_builder.wheel_triton import binary, cache_directory, prepare_backends, server_env


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
        # Stopping waits this long for clients' keep-alive connections to close (Triton's
        # default is 30 s): a test that stops its server has finished with it.
        "--exit-timeout-secs=3",
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
