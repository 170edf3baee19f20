"""A real S3-compatible server for tests: gofakes3 (built from its Go module like the
other test tools, ``binaries.GOFAKES3``), in memory, on a free loopback port.

Why gofakes3 rather than moto or MinIO's server: moto needs botocore, which cannot share
an environment with the pinned kubernetes client, and MinIO's server is a large build.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from minio import Minio

from lepton_e2e import binaries

# What the tests sign with; gofakes3 accepts any credentials.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "lepton-test",
    "AWS_SECRET_ACCESS_KEY": "lepton-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _listening_port(process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> int:
    """The port gofakes3 bound (it is started on port 0 and logs the one it got)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"using port: (\d+)", log.read_text())
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"gofakes3 exited {process.returncode}: {log.read_text()}")
        time.sleep(0.05)
    raise TimeoutError(f"gofakes3 did not listen in {timeout:.0f} s: {log.read_text()}")


@contextmanager
def gofakes3(folder: Path, host: str = "127.0.0.1") -> Iterator[tuple[str, Minio]]:
    """A running server on ``host`` (its log in ``folder``): ``host:port`` and a client
    of it. The e2e tests bind it to the cluster's gateway, which pods reach."""
    server = binaries.ensure_tool(binaries.GOFAKES3)
    log = folder / "gofakes3.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(server), "-backend", "memory", "-host", f"{host}:0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        endpoint = f"{host}:{_listening_port(process, log)}"
        client = Minio(
            endpoint,
            access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region=CREDENTIALS["AWS_DEFAULT_REGION"],
            secure=False,
        )
        yield endpoint, client
    finally:
        process.terminate()
        process.wait(10)
