"""Triton python-backend model that serves one built variant (ONNX Runtime or TorchScript).

The builder copies this file as ``<model>/1/model.py`` beside the variant's artifact; it
runs inside Triton, never imported by the builder itself.
Two parameters in config.pbtxt say what to load: ``runtime`` (onnxruntime | torchscript)
and ``artifact`` (a file name in the version folder); ``device`` is cpu or cuda and
always matches the instance_group kind, so a model never silently falls back to CPU.
The production image (NGC Triton) can serve the same ONNX artifacts with its native
onnxruntime backend; the pip wheel used in tests carries only this python backend.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found,unused-ignore]  # provided by Triton at run time

# The archive's extra file that names a half variant's float type (variants.py writes it).
FLOAT_DTYPE_FILE = "lepton_float_dtype"


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        folder = os.path.join(args["model_repository"], args["model_version"])
        artifact = os.path.join(folder, params["artifact"])
        self.runtime = params["runtime"]
        self.device = params.get("device", "cpu")
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        threads = int(params.get("threads", "0"))
        if self.runtime == "onnxruntime":
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            providers = (
                ["CUDAExecutionProvider"] if self.device == "cuda" else ["CPUExecutionProvider"]
            )
            self.session = ort.InferenceSession(artifact, options, providers=providers)
        else:
            import torch

            if threads:
                torch.set_num_threads(threads)
            self.torch = torch
            extra = {FLOAT_DTYPE_FILE: ""}
            self.module = torch.jit.load(
                artifact, map_location=self.device, _extra_files=extra
            ).eval()
            # A half-precision variant (fp16, bf16) takes its float inputs in its own
            # type, as the builder profiled it; clients send the declared fp32. The
            # builder names the type in the archive: a frozen module has no parameters.
            named = extra[FLOAT_DTYPE_FILE]
            named = named.decode() if isinstance(named, bytes) else named
            self.float_dtype = (
                getattr(torch, named)
                if named
                else next(
                    (p.dtype for p in self.module.parameters() if p.is_floating_point()), None
                )
            )

    def _tensor(self, array: Any) -> Any:
        tensor = self.torch.from_numpy(array).to(self.device)
        if self.float_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(self.float_dtype)
        return tensor

    def _run(self, arrays: list[Any]) -> list[Any]:
        if self.runtime == "onnxruntime":
            return list(self.session.run(self.outputs, dict(zip(self.inputs, arrays, strict=True))))
        with self.torch.inference_mode():
            tensors = [self._tensor(a) for a in arrays]
            result = self.module(*tensors)
        if isinstance(result, (tuple, list)):
            return [r.float().cpu().numpy() for r in result]
        return [result.float().cpu().numpy()]

    def execute(self, requests: list[Any]) -> list[Any]:
        """One run per batch Triton's dynamic batcher formed, not one per request.

        Requests of the same shapes are concatenated on the batch axis, run together
        and split again; without this, preferred batch sizes and queue delays would
        only reorder work and never batch it. A run that fails answers its requests
        with the error instead of failing the others.
        """
        arrays = [
            [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs]
            for r in requests
        ]
        responses: list[Any] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request_arrays in enumerate(arrays):
            key = tuple((a.shape[1:], a.dtype.str) for a in request_arrays)
            groups.setdefault(key, []).append(index)
        for members in groups.values():
            sizes = [len(arrays[i][0]) for i in members]
            try:
                stacked = [
                    np.concatenate([arrays[i][k] for i in members]) for k in range(len(self.inputs))
                ]
                results = self._run(stacked)
            except Exception as error:  # answered per request, never a crashed instance
                for i in members:
                    responses[i] = pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(str(error))
                    )
                continue
            start = 0
            for i, size in zip(members, sizes, strict=True):
                tensors = [
                    pb_utils.Tensor(name, np.ascontiguousarray(value[start : start + size]))
                    for name, value in zip(self.outputs, results, strict=True)
                ]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += size
        return responses
