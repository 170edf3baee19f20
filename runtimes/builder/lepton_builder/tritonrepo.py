"""The Triton model repository: one per accepted variant, the model always named alike.

Conventions shared with the operator (see runtimes/triton/README.md): each accepted
variant gets its own repository folder, ``<repository>/<variant>/``, holding one model
named after the LeptonModel, so clients call the same name whichever variant serves
(the operator points ``--model-repository`` at the variant's folder; a variant change
rolls pods, never the name clients use). The model holds ``config.pbtxt`` and version
``1/`` with the python
backend's ``model.py`` beside the artifact and ``reference.npz`` (a sample input, the
variant's own output and the fp32 baseline's, for the operator's canary check).
``instance_group`` names KIND_CPU or KIND_GPU explicitly: where a model runs is the
planner's choice, never Triton's fallback. Beside ``config.pbtxt`` the model holds
``configs/cached.pbtxt``, the same with ``response_cache { enable: true }``: the
operator serves it (``--model-config-name=cached`` and ``--cache-config``) when the
LeptonModel asks for the response cache, so switching needs no rebuild. It is not in
``config.pbtxt`` because Triton 2.51 stops exporting the request-latency summary
(``nv_inference_request_summary_us``) for a model whose config enables the cache,
whether or not the server has one: every model would lose its observed p95.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lepton_builder.request import Tensor

TRITON_DTYPES = {
    "fp32": "TYPE_FP32",
    "fp16": "TYPE_FP16",
    "bf16": "TYPE_BF16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "int8": "TYPE_INT8",
    "bool": "TYPE_BOOL",
}
DEFAULT_QUEUE_DELAY_US = 2000
MODEL_PY = Path(__file__).resolve().with_name("triton_model.py")


def variant_repository(repository: Path, variant: str) -> Path:
    """The repository Triton serves ``variant`` from: one folder per variant."""
    return repository / variant


def _tensor_block(kind: str, tensors: list[Tensor], output: bool) -> str:
    entries = []
    for tensor in tensors:
        # The python backend hands every output back as fp32 (see lepton_model.py).
        dtype = (
            "TYPE_FP32"
            if output and tensor.dtype in ("fp16", "bf16")
            else TRITON_DTYPES[tensor.dtype]
        )
        dims = ", ".join(str(d) for d in tensor.shape)
        entries.append(f'  {{ name: "{tensor.name}" data_type: {dtype} dims: [ {dims} ] }}')
    return f"{kind} [\n" + ",\n".join(entries) + "\n]"


def config_pbtxt(
    name: str,
    inputs: list[Tensor],
    outputs: list[Tensor],
    device: str,
    runtime: str,
    artifact: str,
    preferred_batch_sizes: list[int],
    max_batch_size: int,
    threads: int = 0,
    instances: int = 1,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
) -> str:
    kind = "KIND_GPU" if device == "cuda" else "KIND_CPU"
    preferred = ", ".join(str(b) for b in sorted(set(preferred_batch_sizes)))
    preferring = f"preferred_batch_size: [ {preferred} ] " if preferred else ""
    parameters = {
        "runtime": runtime,
        "artifact": artifact,
        "device": device,
        "threads": str(threads),
    }
    params = "\n".join(
        f'parameters: {{ key: "{k}" value: {{ string_value: "{v}" }} }}'
        for k, v in parameters.items()
    )
    return "\n".join(
        [
            f'name: "{name}"',
            'backend: "python"',
            f"max_batch_size: {max_batch_size}",
            _tensor_block("input", inputs, output=False),
            _tensor_block("output", outputs, output=True),
            f"dynamic_batching {{ {preferring}"
            f"max_queue_delay_microseconds: {max_queue_delay_us} }}",
            f"instance_group [ {{ count: {instances} kind: {kind} }} ]",
            params,
            "",
        ]
    )


CACHED_CONFIG = "cached"  # --model-config-name the operator passes with the cache on


def write_configs(folder: Path, config: str) -> None:
    """The model's config and its response-cache twin (``configs/cached.pbtxt``)."""
    (folder / "config.pbtxt").write_text(config)
    (folder / "configs").mkdir(exist_ok=True)
    cached = config.rstrip("\n") + "\nresponse_cache { enable: true }\n"
    (folder / "configs" / f"{CACHED_CONFIG}.pbtxt").write_text(cached)


def write_model(
    repository: Path,
    name: str,
    config: str,
    artifact: Path,
    artifact_name: str,
    reference_inputs: list[npt.NDArray[Any]],
    variant_outputs: list[npt.NDArray[Any]],
    baseline_outputs: list[npt.NDArray[Any]],
    inputs: list[Tensor],
    outputs: list[Tensor],
) -> Path:
    """One model folder; ``reference.npz`` holds a sample input with this variant's own
    output (what a correctly served model must answer) and the fp32 baseline's."""
    folder = repository / name
    version = folder / "1"
    if folder.exists():
        shutil.rmtree(folder)
    version.mkdir(parents=True)
    write_configs(folder, config)
    shutil.copyfile(artifact, version / artifact_name)
    shutil.copyfile(MODEL_PY, version / "model.py")
    np.savez(
        version / "reference.npz",
        **{f"input:{t.name}": a for t, a in zip(inputs, reference_inputs, strict=True)},
        **{f"output:{t.name}": a for t, a in zip(outputs, variant_outputs, strict=True)},
        **{f"baseline:{t.name}": a for t, a in zip(outputs, baseline_outputs, strict=True)},
    )
    return folder
