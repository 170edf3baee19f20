"""How long a served artifact takes to load: the model's share of a cold start.

A replica asked for now serves only after its node is provisioned (the pool's
``provisioningSeconds``) and Triton has loaded the model. The second part is the
variant's: a TorchScript module is deserialized, an ONNX Runtime session optimizes its
graph (an int8 graph differently from an fp32 one), and for a large model either can
take longer than a node. So the builder loads each accepted artifact afresh, from the
file Triton will read, with the runtime Triton will use, and reports the seconds; the
planner adds them to the pool's provisioning delay when it decides how early to ask.
Triton's own process start is the same for every variant and is not included.
"""

from __future__ import annotations

import time
from pathlib import Path


def load_seconds(path: Path, runtime: str, device: str, threads: int = 0) -> float:
    """Seconds from reading ``path`` to a model ready to answer, in ``runtime``
    (``onnxruntime`` or ``torchscript``, as ``Built.runtime`` names them)."""
    started = time.perf_counter()
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        ort.InferenceSession(str(path), options, providers=providers)
    elif runtime == "torchscript":
        import torch

        torch.jit.load(str(path), map_location=device).eval()
    else:
        raise ValueError(f"no loader for runtime {runtime!r}")
    return time.perf_counter() - started
