"""Measuring serving configurations on a real Triton server, in the build Job.

For each configuration ``tuning.search`` asks about, the variant's config.pbtxt is
rewritten, a ``tritonserver`` is started on the variant's own repository folder (the
one a pod would serve), and closed-loop clients send the build's sample input at a few
concurrency levels: each level's requests per second and latency percentiles are what
one serving replica delivers under that configuration, Triton's overhead included.
The winner's config.pbtxt is left in the repository.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lepton_builder import wheel_triton
from lepton_builder.tuning import Level, ServingConfig, Trial, search

log = logging.getLogger("lepton_builder")
CONCURRENCY_LEVELS = (1, 4, 8)
TRITON_DTYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int8": "INT8",
    "bool": "BOOL",
}


@dataclass(frozen=True)
class SearchSettings:
    target_p95_ms: float
    seconds_per_level: float = 3.0
    levels: tuple[int, ...] = CONCURRENCY_LEVELS
    max_trials: int = 6
    server: tuple[str, ...] = ("tritonserver",)
    start_timeout_s: float = 180.0


def find_server(preferred: str | None = None) -> tuple[str, ...] | None:
    """The command that starts a Triton here: ``preferred`` if given (and found), else
    ``tritonserver`` on PATH (an image based on NGC's), else the nvidia-pytriton wheel's
    through its launcher (the builder image, and the local cluster's builder pods);
    None when there is none to measure on."""
    if preferred is not None:
        return (preferred,) if shutil.which(preferred) else None
    if shutil.which("tritonserver"):
        return ("tritonserver",)
    if wheel_triton.available():
        return tuple(wheel_triton.launcher())
    return None


# Where NGC's image keeps its backends, one folder each (tritonserver's default).
NGC_BACKEND_DIRECTORY = Path("/opt/tritonserver/backends")


def server_backends(
    server: tuple[str, ...], backend_directory: Path = NGC_BACKEND_DIRECTORY
) -> frozenset[str]:
    """The backends ``server`` (from ``find_server``) can load: the wheel's launcher has
    only the python backend; a ``tritonserver`` on PATH those in its default backend
    directory (an NGC-based image), the python backend alone when there is none (the
    local cluster's ``tritonserver`` is the wheel's)."""
    if server == tuple(wheel_triton.launcher()) or not backend_directory.is_dir():
        return frozenset({"python"})
    return frozenset(path.name for path in backend_directory.iterdir() if path.is_dir())


def run_search(
    variant_repository: Path,
    model: str,
    default: ServingConfig,
    write_config: Callable[[ServingConfig], None],
    sample: dict[str, npt.NDArray[Any]],
    settings: SearchSettings,
) -> tuple[Trial, Trial, list[Trial]]:
    """Searches, leaves the best configuration written, returns (default, best, all)."""

    def measure(config: ServingConfig) -> list[Level]:
        write_config(config)
        log.info("serving search: %s", config.describe())
        with _server(variant_repository, model, settings) as address:
            levels = [
                _level(address, model, sample, concurrency, settings.seconds_per_level)
                for concurrency in settings.levels
            ]
        for level in levels:
            log.info(
                "  concurrency %d: %.1f req/s, p95 %.1f ms (%d requests, %d failed)",
                level.concurrency,
                level.throughput_rps,
                level.p95_ms,
                level.requests,
                level.failed,
            )
        return levels

    first, best, trials = search(default, measure, settings.target_p95_ms, settings.max_trials)
    write_config(best.config)
    return first, best, trials


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(repository: Path, model: str, settings: SearchSettings) -> Iterator[str]:
    http, grpc, metrics = _free_port(), _free_port(), _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="lepton-search-"))
    argv = [
        *settings.server,
        f"--model-repository={repository}",
        "--model-control-mode=explicit",
        f"--load-model={model}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--metrics-address=127.0.0.1",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={metrics}",
        # Several servers may share a host (tests, a node): their shared memory must not.
        f"--backend-config=python,shm-region-prefix-name=lepton-search-{os.getpid()}-{http}",
        "--log-verbose=0",
    ]
    log_file = (workdir / "tritonserver.log").open("w")
    process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + settings.start_timeout_s
        while not _ready(address):
            if process.poll() is not None or time.monotonic() > deadline:
                log_file.flush()
                text = (workdir / "tritonserver.log").read_text(errors="replace")
                raise RuntimeError(f"tritonserver did not become ready: {_why(text)}")
            time.sleep(0.5)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _why(log_text: str) -> str:
    """What a failed tritonserver said about its failure: its error lines (``E<date>``
    and ``error: ...``), not the tail, which is mostly the table of its options."""
    errors = [
        line.strip() for line in log_text.splitlines() if re.match(r"E\d{4} |error: ", line.strip())
    ]
    return " | ".join(errors)[-1500:] if errors else log_text[-1500:]


def _ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/health/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _level(
    address: str,
    model: str,
    sample: dict[str, npt.NDArray[Any]],
    concurrency: int,
    seconds: float,
) -> Level:
    """``concurrency`` clients in a closed loop for ``seconds`` after a short warm-up."""
    import tritonclient.http as httpclient

    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    measuring = threading.Event()
    stop = threading.Event()

    def client() -> None:
        connection = httpclient.InferenceServerClient(address, network_timeout=60)
        inputs = []
        for name, array in sample.items():
            tensor = httpclient.InferInput(name, list(array.shape), TRITON_DTYPES[array.dtype.name])
            tensor.set_data_from_numpy(np.ascontiguousarray(array), binary_data=True)
            inputs.append(tensor)
        start.wait()
        try:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    connection.infer(model, inputs)
                    ok = True
                except Exception:  # counted: a configuration that fails requests loses
                    ok = False
                took = time.perf_counter() - began
                if measuring.is_set() and not stop.is_set():
                    with lock:
                        if ok:
                            latencies.append(took)
                        else:
                            failures[0] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    time.sleep(min(1.0, seconds / 3))  # warm-up: instances start, batches form
    measuring.set()
    began = time.monotonic()
    time.sleep(seconds)
    stop.set()
    elapsed = time.monotonic() - began
    for thread in threads:
        thread.join(timeout=60)
    ms = np.asarray(latencies) * 1000.0
    return Level(
        concurrency=concurrency,
        throughput_rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=float(np.percentile(ms, 50)) if len(ms) else float("inf"),
        p95_ms=float(np.percentile(ms, 95)) if len(ms) else float("inf"),
        p99_ms=float(np.percentile(ms, 99)) if len(ms) else float("inf"),
        requests=len(latencies),
        failed=failures[0],
    )
