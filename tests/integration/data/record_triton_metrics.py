"""Record a real Triton's ``/metrics`` after load, for the replay exporter's tests.

Run once (``PYTHONPATH=e2e .venv/bin/python tests/integration/data/record_triton_metrics.py``)
to refresh ``triton_metrics.txt``. It serves a small python-backend model named as the
operator's pods serve every variant (after the LeptonModel, here ``digits``) on the
wheel's real ``tritonserver`` with ``--metrics-config=summary_latencies=true`` (as the
operator's Deployments do), sends concurrent requests (a few fail in the model, a few are
refused for their shape) and saves the exposition verbatim. The model sleeps a few
milliseconds so that latency and queue figures are real observations, not a no-op's.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import textwrap
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

from lepton_e2e.triton import TritonServer

MODEL = "digits"
OUT = Path(__file__).with_name("triton_metrics.txt")

CONFIG = """
backend: "python"
max_batch_size: 0
input [{ name: "x", data_type: TYPE_FP32, dims: [ -1, 4 ] }]
output [{ name: "y", data_type: TYPE_FP32, dims: [ -1, 4 ] }]
instance_group [{ kind: KIND_CPU, count: 1 }]
"""

MODEL_PY = """
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            time.sleep(0.002 + 0.004 * float(abs(x[0, 0]) % 1.0))
            if x[0, 0] < 0:
                raise pb_utils.TritonModelException("negative input refused")
            y = pb_utils.Tensor("y", (x * 2).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[y]))
        return responses
"""


def _load(server: TritonServer, requests: int) -> None:
    def one(i: int) -> None:
        client = httpclient.InferenceServerClient(server.http)
        x = np.full((1, 4), (i % 97) / 97.0, dtype=np.float32)
        if i % 40 == 0:
            x = -x - 1  # the model raises: a BACKEND failure
        if i % 25 == 0:
            x = x[:, :3]  # the wrong shape: refused before the model runs
        tensor = httpclient.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        with contextlib.suppress(Exception):  # the failures are the point
            client.infer(MODEL, [tensor])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(requests)))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repository = Path(tmp) / "repository"
        (repository / MODEL / "1").mkdir(parents=True)
        (repository / MODEL / "config.pbtxt").write_text(textwrap.dedent(CONFIG))
        (repository / MODEL / "1" / "model.py").write_text(MODEL_PY)
        server = TritonServer(repository, Path(tmp), [MODEL])
        try:
            server.wait_ready()
            _load(server, 400)
            with urllib.request.urlopen(f"http://{server.address}:8002/metrics") as response:
                exposition = response.read().decode()
        finally:
            server.stop()
    OUT.write_text(exposition)
    print(f"wrote {OUT} ({len(exposition.splitlines())} lines)", file=sys.stderr)


if __name__ == "__main__":
    main()
