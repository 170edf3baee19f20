"""The Triton model repository: one per accepted variant, the model always named alike.

Conventions shared with the operator (see runtimes/triton/README.md): each accepted
variant gets its own repository folder, ``<repository>/<variant>/``, holding one model
named after the LeptonModel, so clients call the same name whichever variant serves
(the operator points ``--model-repository`` at the variant's folder; a variant change
rolls pods, never the name clients use). The model holds ``config.pbtxt`` and version
``1/`` with the artifact, the python backend's ``model.py`` and ``reference.npz`` (a
sample input, the variant's own output and the fp32 baseline's, for the operator's
canary check).

Which backend serves it (``choose_backend``): Triton's native ``onnxruntime`` or
``pytorch`` backend where the serving image has it (the build request's
``servingBackends``, from the operator's ``triton.nativeBackends``), the python
backend, through ``model.py``, where it has not (the nvidia-pytriton wheel of the tests
and the build's serving search) or where the artifact's tensors are not the ones
clients exchange (half-precision TorchScript). ``model.py`` is written either way, so a
python-only server can measure the same artifact.

``config.pbtxt`` is built as Triton's own ``ModelConfig`` protobuf (tritonclient ships
it) and written in protobuf text format, then parsed back and compared: a config Triton
would misread is an error here, never a model that fails to load in a pod.
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
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import text_format  # type: ignore[import-untyped]  # no stubs shipped
from tritonclient.grpc import model_config_pb2 as triton_config

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
HALF_DTYPES = ("fp16", "bf16")
DEFAULT_QUEUE_DELAY_US = 2000
MODEL_PY = Path(__file__).resolve().with_name("triton_model.py")
PYTHON_BACKEND = "python"
# The native Triton backend that serves each runtime's artifact (Built.runtime).
NATIVE_BACKENDS = {"onnxruntime": "onnxruntime", "torchscript": "pytorch"}
# Its thread-count parameter (the onnxruntime and pytorch backends' own keys).
_THREADS_PARAMETER = {"onnxruntime": "intra_op_thread_count", "pytorch": "INTRA_OP_THREAD_COUNT"}


def variant_repository(repository: Path, variant: str) -> Path:
    """The repository Triton serves ``variant`` from: one folder per variant."""
    return repository / variant


@dataclass(frozen=True)
class Backend:
    """The Triton backend a variant is served with, and why (for the report)."""

    name: str  # python | onnxruntime | pytorch
    reason: str


def choose_backend(
    runtime: str,
    native_backends: Collection[str],
    inputs: list[Tensor],
    outputs: list[Tensor],
    native_io: bool = True,
    artifact: Path | None = None,
) -> Backend:
    """The native backend for ``runtime`` when the serving image has it and it can serve
    the artifact as clients call it; else the python backend, with the reason.

    ``native_io`` is False for an artifact that answers other tensor types than the
    declared ones (half-precision TorchScript: ``model.py`` answers fp32, a native
    backend would answer fp16). Declared half-precision outputs stay on the python
    backend too, which answers them as fp32 (see ``model_config``), so clients get the
    same tensors whichever backend serves. An ONNX ``artifact`` is checked as Triton's
    onnxruntime backend checks it at load (``onnx_signature_problem``): a graph it would
    refuse stays on the python backend, which runs it as the build did.
    """
    native = NATIVE_BACKENDS.get(runtime)
    if native is None:
        return Backend(PYTHON_BACKEND, f"no native Triton backend serves {runtime} artifacts")
    if native not in native_backends:
        return Backend(
            PYTHON_BACKEND,
            f"the serving image has no native {native} backend (triton.nativeBackends)",
        )
    if not native_io:
        return Backend(
            PYTHON_BACKEND,
            "the artifact answers in half precision and model.py converts that to the "
            "declared types; the native backend would not",
        )
    if any(t.dtype in HALF_DTYPES for t in outputs):
        return Backend(PYTHON_BACKEND, "half-precision outputs are answered as fp32 by model.py")
    if native == "pytorch" and any("__" in t.name for t in [*inputs, *outputs]):
        # The pytorch backend reads <name>__<index> as a position; other names map in
        # the config's order, which is the traced module's.
        return Backend(
            PYTHON_BACKEND,
            "a tensor name holds '__', which the pytorch backend reads as a position",
        )
    if native == "onnxruntime" and artifact is not None:
        problem = onnx_signature_problem(artifact, inputs, outputs)
        if problem:
            return Backend(
                PYTHON_BACKEND, f"the onnxruntime backend would refuse the graph: {problem}"
            )
    return Backend(native, f"the serving image's native {native} backend")


_ONNX_TYPES = {  # onnx.TensorProto's element types of the declared dtypes
    "fp32": 1,  # FLOAT
    "int8": 3,
    "int32": 6,
    "int64": 7,
    "bool": 9,
    "fp16": 10,
    "bf16": 16,
}


def onnx_signature_problem(path: Path, inputs: list[Tensor], outputs: list[Tensor]) -> str | None:
    """Why Triton's onnxruntime backend would refuse config.pbtxt's tensors for the graph
    at ``path``, or None. At load it wants every graph input in the config, each named
    tensor's element type, its rank, a variable first (batch) dimension, and every fixed
    dimension equal to the config's (a config's -1 against a fixed one included)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    graph_inputs = {v.name: v for v in graph.input if v.name not in weights}
    missing = sorted(set(graph_inputs) - {t.name for t in inputs})
    if missing:
        return f"graph inputs {', '.join(missing)} are not declared"
    found = {**graph_inputs, **{v.name: v for v in graph.output}}
    for tensor in [*inputs, *outputs]:
        value = found.get(tensor.name)
        if value is None:
            return f"the graph has no tensor {tensor.name!r}"
        typed = value.type.tensor_type
        if typed.elem_type != _ONNX_TYPES.get(tensor.dtype):
            return f"{tensor.name!r} is of ONNX element type {typed.elem_type}, not {tensor.dtype}"
        if not typed.HasField("shape"):
            continue  # unknown rank: nothing the backend can compare either
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in typed.shape.dim]
        if not dims or dims[0] != -1:
            return f"{tensor.name!r} has no variable batch dimension ({dims})"
        if len(dims) - 1 != len(tensor.shape) or any(
            model != -1 and model != declared
            for model, declared in zip(dims[1:], tensor.shape, strict=True)
        ):
            return f"{tensor.name!r} is {dims[1:]} after the batch, declared {tensor.shape}"
    return None


def _tensors(tensors: list[Tensor], backend: str, output: bool) -> list[Any]:
    entries = []
    for tensor in tensors:
        # The python backend hands every output back as fp32 (see triton_model.py).
        dtype = (
            "TYPE_FP32"
            if output and tensor.dtype in HALF_DTYPES and backend == PYTHON_BACKEND
            else TRITON_DTYPES[tensor.dtype]
        )
        kind = triton_config.ModelOutput if output else triton_config.ModelInput
        entries.append(
            kind(name=tensor.name, data_type=triton_config.DataType.Value(dtype), dims=tensor.shape)
        )
    return entries


def model_config(
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
    backend: str = PYTHON_BACKEND,
) -> Any:
    """Triton's ``ModelConfig`` for one variant served by ``backend``.

    The python backend reads ``runtime``, ``artifact``, ``device`` and ``threads`` from
    the parameters (``triton_model.py``); a native backend reads the artifact named by
    ``default_model_filename`` and its own thread-count parameter.
    """
    config = triton_config.ModelConfig(
        name=name,
        backend=backend,
        max_batch_size=max_batch_size,
        input=_tensors(inputs, backend, output=False),
        output=_tensors(outputs, backend, output=True),
        instance_group=[
            triton_config.ModelInstanceGroup(
                count=instances,
                kind=(
                    triton_config.ModelInstanceGroup.KIND_GPU
                    if device == "cuda"
                    else triton_config.ModelInstanceGroup.KIND_CPU
                ),
            )
        ],
    )
    batching = config.dynamic_batching
    batching.SetInParent()  # present even with nothing to tune: batching is on
    batching.preferred_batch_size.extend(sorted(set(preferred_batch_sizes)))
    batching.max_queue_delay_microseconds = max_queue_delay_us
    if backend == PYTHON_BACKEND:
        parameters = {
            "runtime": runtime,
            "artifact": artifact,
            "device": device,
            "threads": str(threads),
        }
    else:
        config.default_model_filename = artifact
        parameters = {_THREADS_PARAMETER[backend]: str(threads)} if threads else {}
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


def render(config: Any) -> str:
    """``config`` in protobuf text format, checked by parsing it back."""
    text: str = text_format.MessageToString(config)
    if parse(text) != config:
        raise ValueError(f"config.pbtxt of {config.name} does not parse back to itself")
    return text


def parse(text: str) -> Any:
    """A config.pbtxt as Triton reads it (``text_format`` raises on what it would refuse)."""
    return text_format.Parse(text, triton_config.ModelConfig())


CACHED_CONFIG = "cached"  # --model-config-name the operator passes with the cache on


def write_configs(folder: Path, config: str) -> None:
    """The model's config and its response-cache twin (``configs/cached.pbtxt``)."""
    (folder / "config.pbtxt").write_text(config)
    (folder / "configs").mkdir(exist_ok=True)
    cached = parse(config)
    cached.response_cache.enable = True
    (folder / "configs" / f"{CACHED_CONFIG}.pbtxt").write_text(render(cached))


def rename_model(repository: Path, old: str, new: str) -> None:
    """A written model folder served under another name: the folder and its configs'
    ``name`` (a kept build reused by a model of another name, ``buildcache``)."""
    folder = repository / old
    target = repository / new
    folder.rename(target)
    config = parse((target / "config.pbtxt").read_text())
    config.name = new
    write_configs(target, render(config))


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
