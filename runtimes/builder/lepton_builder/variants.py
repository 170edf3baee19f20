"""Building each optimized variant from the loaded model.

Every builder returns a ``Built`` variant: a function from numpy inputs to numpy
outputs (what profiling and the accuracy guard call, the same way for every variant)
and a writer of the artifact Triton serves. A builder that fails raises; the caller
reports the error and carries on with the next variant.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lepton_builder import distillation, int8, pruning, training
from lepton_builder.accuracy import Verdict
from lepton_builder.loading import LoadedModel

Arrays = list[npt.NDArray[Any]]
ONNX_OPSET = 17


@contextlib.contextmanager
def _third_party_notices() -> Iterator[None]:
    """Silence deprecation and tracer notices from torch's exporters while we call them.

    torch 2.15 warns on every TorchScript and legacy-ONNX call; the builder uses those
    paths on purpose (the legacy exporter is 4x faster here), and a notice must not turn
    into a failed variant where warnings are errors.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass
class Built:
    name: str
    run: Callable[[Arrays], Arrays]
    path: Path  # the artifact Triton serves
    runtime: str  # onnxruntime | torchscript (what the Triton model loads)
    details: dict[str, Any] = field(default_factory=dict)  # what the report adds for it
    held_out: npt.NDArray[np.intp] | None = None  # samples the guard judges it on, if trained
    # Why Triton cannot serve what was profiled, if so: the row is then reported for
    # comparison and never offered for serving (what is profiled must be what is served).
    not_served: str | None = None
    # False when the served artifact answers other tensor types than the declared ones
    # (half-precision TorchScript): the python backend's model.py answers fp32, a native
    # backend would answer fp16, so such a variant is never served natively.
    native_io: bool = True

    @property
    def artifact(self) -> str:
        """Its file name in the model's version folder."""
        return "model.onnx" if self.runtime == "onnxruntime" else "model.pt"

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


STATIC_TRIES = int8.DEFAULT_TRIES
# The TorchScript archive's extra file naming a half variant's float type, which
# triton_model.py reads back (it is copied alone into the repository: kept in step).
FLOAT_DTYPE_FILE = "lepton_float_dtype"
PRUNING_RATIOS = {"pruned-10": 0.10, "pruned-25": 0.25, "pruned-40": 0.40}


@dataclass(frozen=True)
class Compression:
    """What pruning and distillation learn from: the calibration inputs and a time budget."""

    calibration: Arrays
    training_seconds: float = 60.0
    mask_index: int | None = None  # the attention mask among the inputs, if any
    generated: bool = False  # the calibration inputs were generated, not the user's


@dataclass
class _Trained:
    module: Any
    details: dict[str, Any]
    held_out: npt.NDArray[np.intp]


class Variants:
    """Builds variants of one model for one device, sharing intermediate artifacts.

    They live in ``workdir`` (a temporary folder of its own unless given) until
    ``close()``: what serves is copied into the repository, and the intermediates of a
    MiniLM build weigh about 1 GB, which a builder run as a process (the local harness,
    the integration tests) would otherwise leave behind in /tmp on every build."""

    def __init__(
        self,
        model: LoadedModel,
        device: str,
        example: Arrays,
        input_names: list[str],
        output_names: list[str],
        threads: int = 0,
        compression: Compression | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.example = example
        self.input_names = input_names
        self.output_names = output_names
        self.threads = threads
        self.compression = compression
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="lepton-build-"))
        self._onnx_fp32: Path | None = model.onnx_path
        self._trained: dict[str, _Trained] = {}  # pruned-25 and pruned-25-int8 share one
        self._onnx_optimized: tuple[Path, dict[str, int]] | None = None
        # The accuracy guard on held-out samples (outputs, their indices), set once the
        # fp32 baseline exists: static int8 tries fp32 fallbacks until it passes.
        self.guard: Callable[[Arrays, npt.NDArray[np.intp]], Verdict] | None = None

    def close(self) -> None:
        """Removes the intermediates (a folder given by the caller stays the caller's)."""
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Variants:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- torch ---------------------------------------------------------------------
    def _torch_runner(self, module: Any, dtype: Any = None) -> Callable[[Arrays], Arrays]:
        import torch

        def run(arrays: Arrays) -> Arrays:
            with torch.inference_mode():
                tensors = []
                for array in arrays:
                    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
                    if dtype is not None and tensor.is_floating_point():
                        tensor = tensor.to(dtype)
                    tensors.append(tensor)
                result = module(*tensors)
            items = result if isinstance(result, (tuple, list)) else (result,)
            return [r.float().cpu().numpy() for r in items]

        return run

    def _torch_tensors(self, dtype: Any = None) -> tuple[Any, ...]:
        import torch

        tensors = []
        for array in self.example:
            tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors.append(tensor)
        return tuple(tensors)

    def _scripted(self, module: Any, dtype: Any = None) -> Any:
        import torch

        if isinstance(module, torch.jit.ScriptModule):
            return module
        return torch.jit.trace(module, self._torch_tensors(dtype), strict=False, check_trace=False)

    def _torch_variant(
        self, name: str, module: Any, dtype: Any = None, serve: Any | None = None
    ) -> Built:
        import torch

        scripted = self._scripted(serve if serve is not None else module, dtype)
        path = self.workdir / f"{name}.pt"
        # A frozen module has no parameters left to tell model.py its float type.
        extra = {FLOAT_DTYPE_FILE: str(dtype).removeprefix("torch.")} if dtype is not None else {}
        torch.jit.save(scripted, str(path), _extra_files=extra)
        return Built(
            name, self._torch_runner(module, dtype), path, "torchscript", native_io=dtype is None
        )

    def _require_torch(self) -> Any:
        if self.model.module is None:
            raise ValueError("needs a torch source model")
        return self.model.module.to(self.device)

    def fp32(self) -> Built:
        if self.model.module is None:
            return self.onnx(name="fp32")
        return self._torch_variant("fp32", self._require_torch())

    def int8_dynamic(self) -> Built:
        import torch

        module = self._require_torch()
        if isinstance(module, torch.jit.ScriptModule) or type(module).__name__ == "GraphModule":
            raise ValueError(
                "dynamic int8 quantization needs an eager torch model; this "
                f"source is {self.model.format}"
            )
        # Per-channel weight scales, as ONNX Runtime's int8 uses: per-tensor ones lose
        # the small rows of a weight matrix to its largest.
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        quantized = torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear: qconfig}, dtype=torch.qint8
        )
        return self._torch_variant("int8-dynamic", quantized)

    def torchscript(self) -> Built:
        import torch

        scripted = self._scripted(self._require_torch())
        # Frozen only: optimize_for_inference bakes in MKLDNN layouts that a saved module
        # cannot load again ("required keyword attribute 'value' is undefined"), and what
        # is profiled must be what Triton serves.
        return self._torch_variant("torchscript", torch.jit.freeze(scripted.eval()))

    def half(self, name: str, dtype_name: str) -> Built:
        """fp16 or bf16 TorchScript, profiled as Triton serves it: traced, and on a CPU
        frozen, which lets oneDNN pre-pack the bf16 weights (MiniLM: 1.4x fp32 traced,
        2.1x frozen on an AMX Xeon at batch 1)."""
        import torch

        dtype = getattr(torch, dtype_name)
        module = copy.deepcopy(self._require_torch()).to(dtype)  # .to() is in place
        scripted = self._scripted(module, dtype)
        if self.device == "cpu":
            scripted = torch.jit.freeze(scripted.eval())
        return self._torch_variant(name, scripted, dtype)

    def torch_compile(self) -> Built:
        import torch

        module = copy.deepcopy(self._require_torch()).to(torch.float16)
        compiled = torch.compile(module, mode="max-autotune-no-cudagraphs")
        built = self._torch_variant("torch-compile", compiled, torch.float16, serve=module)
        # The compiled kernels exist in this process only; Triton would load the fp16
        # TorchScript, which is the fp16 row. Measured, never served under this name.
        built.not_served = (
            "profiled for comparison only: Triton loads TorchScript, not torch.compile's "
            "in-process kernels (the fp16 row is what would be served)"
        )
        return built

    # ---- ONNX ----------------------------------------------------------------------
    def _export_onnx(self) -> Path:
        if self._onnx_fp32 is None:
            self._onnx_fp32 = self._export(self._require_torch(), self.workdir / "model.onnx")
        return self._onnx_fp32

    def _export(self, module: Any, path: Path) -> Path:
        import torch

        dynamic_axes = {name: {0: "batch"} for name in self.input_names + self.output_names}
        for name, array in zip(self.input_names, self.example, strict=True):
            for axis in range(1, array.ndim):
                dynamic_axes[name][axis] = f"{name}_{axis}"
        torch.onnx.export(
            module,
            self._torch_tensors(),
            str(path),
            dynamo=False,
            input_names=self.input_names,
            output_names=self.output_names,
            dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET,
        )
        module.eval()  # the legacy exporter restores the flag it found; keep it off anyway
        return path

    def _ort_variant(self, name: str, path: Path) -> Built:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        providers = ["CUDAExecutionProvider"] if self.device == "cuda" else ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(path), options, providers=providers)

        def run(arrays: Arrays) -> Arrays:
            feeds = dict(zip(self.input_names, arrays, strict=True))
            return [np.asarray(o) for o in session.run(self.output_names, feeds)]

        return Built(name, run, path, "onnxruntime")

    def onnx(self, name: str = "onnx") -> Built:
        return self._ort_variant(name, self._export_onnx())

    def onnx_int8(self) -> Built:
        source, details = self._optimized_onnx()
        built = self._ort_variant("onnx-int8", self._quantized(source, "model"))
        built.details = details
        return built

    def _optimized_onnx(self) -> tuple[Path, dict[str, Any]]:
        """The fp32 graph to quantize: for a BERT-like encoder, ORT's transformer
        optimizer's fused graph (exported with eager attention, whose pattern it knows),
        else the plain export; the report says which."""
        shape = None if self.model.module is None else int8.transformer_shape(self.model.module)
        if shape is None:
            return self._export_onnx(), {"graph": "as exported"}
        if self._onnx_optimized is None:
            eager = self._export_eager(self.workdir / "model.eager.onnx")
            target = self.workdir / "model.optimized.onnx"
            fused = int8.optimize_transformer(eager, target, shape)
            self._onnx_optimized = (target, fused)
        path, fused = self._onnx_optimized
        described = ", ".join(f"{op} x{n}" for op, n in sorted(fused.items()))
        return path, {"graph": f"ONNX Runtime transformer optimizer: {described}"}

    def _export_eager(self, path: Path) -> Path:
        """The model exported with eager attention (the pattern ORT's optimizer fuses);
        the attention implementation is restored after."""
        module = self._require_torch()
        config = module.model.config
        before = getattr(config, "_attn_implementation", None)
        module.model.set_attn_implementation("eager")
        try:
            return self._export(module, path)
        finally:
            if before is not None:
                module.model.set_attn_implementation(before)

    def onnx_int8_static(self) -> Built:
        """Static QDQ int8 calibrated on the training split, with the accuracy-aware
        fallback: the most sensitive nodes go back to fp32 until the guard passes on
        the held-out split, or ``STATIC_TRIES`` tries are spent."""
        settings = self._compression()
        if self.guard is None:
            raise ValueError("static int8 needs the guard to choose its fp32 nodes")
        guard = self.guard
        count = len(settings.calibration[0])
        fitted, held_out = training.split(count)
        if held_out.size == 0:
            raise ValueError(
                f"static int8 needs at least {training.MIN_SAMPLES_TO_HOLD_OUT} calibration "
                f"samples (a quarter kept out to judge it); got {count}"
            )
        calibration = training.take(settings.calibration, fitted[: int8.MAX_CALIBRATION_SAMPLES])
        judged = training.take(settings.calibration, held_out)
        # The plain export: ORT fuses its QDQ MatMuls into int8 kernels at load, where
        # QDQ around the optimizer's fused Attention measured slower than fp32 here.
        source = self._export_onnx()
        names = self.input_names
        paths: dict[int, Path] = {}
        one = [a[:1] for a in judged]

        def attempt(exclude: list[str]) -> int8.Attempt:
            target = self.workdir / f"model.static.{len(paths)}.onnx"
            int8.quantize_static(source, target, names, calibration, exclude)
            paths[len(paths)] = target
            variant = self._ort_variant("onnx-int8-static", target)
            outputs = [np.concatenate(o) for o in zip(*_batches(variant.run, judged), strict=True)]
            verdict: Verdict = guard(outputs, held_out)
            return int8.Attempt(
                list(exclude),
                verdict.value,
                verdict.tail,
                verdict.accepted,
                int8.median_ms(lambda: variant.run(one)),
                verdict.reason,
            )

        first = attempt([])
        record = int8.Fallback([first])
        if not first.accepted:
            ranking = int8.sensitivity(
                source,
                paths[0],
                names,
                [a[: int8.RANKING_SAMPLES] for a in calibration],
                self.workdir,
            )
            record.ranking = ranking
            plan = int8.fallback_plan([n for n, _ in ranking], STATIC_TRIES)[1:]
            rest = int8.run_fallback(plan, attempt, _log)
            record.attempts += rest.attempts
        chosen = record.chosen()
        built = self._ort_variant("onnx-int8-static", paths[chosen])
        built.held_out = held_out
        built.details = {
            "calibration": {
                "method": "MinMax, per-channel weights, QDQ",
                "samples": len(calibration[0]),
                "data": "generated" if settings.generated else "the calibration inputs",
            },
            "fp32Nodes": record.attempts[chosen].fp32_nodes,
            "fallback": [a.as_report() for a in record.attempts],
            "sensitivity": [{"node": n, "sqnrDb": round(v, 2)} for n, v in record.ranking[:16]],
        }
        return built

    def _quantized(self, source: Path, stem: str) -> Path:
        # Per-channel weight scales: per-tensor ones cost MiniLM its accuracy (anchors).
        return int8.quantize_dynamic(source, self.workdir / f"{stem}.int8.onnx")

    # ---- pruning and distillation ----------------------------------------------------
    def _compression(self) -> Compression:
        if self.compression is None:
            raise ValueError("pruning and distillation need calibration inputs")
        return self.compression

    def _train(self, key: str, make: Callable[[Any, Compression], tuple[Any, str]]) -> _Trained:
        """Make the smaller model (once per key) and train it toward the fp32 one.

        Everything it learns (which units to prune, a student's first weights, the
        training itself) comes from the training split only; the held-out quarter is
        what the guard judges it on, so it must never have seen those samples.
        """
        if key in self._trained:
            return self._trained[key]
        teacher = self._require_torch()
        settings = self._compression()
        count = len(settings.calibration[0])
        fitted, held_out = training.split(count)
        if held_out.size == 0:
            raise ValueError(
                f"pruning and distillation need at least {training.MIN_SAMPLES_TO_HOLD_OUT} "
                f"calibration samples (a quarter kept out to judge them); got {count}"
            )
        learn = dataclasses.replace(
            settings, calibration=training.take(settings.calibration, fitted)
        )
        module, made = make(teacher, learn)
        details: dict[str, Any] = {"compression": made}
        if settings.training_seconds > 0:
            log = training.fit(
                module,
                teacher,
                learn.calibration,
                settings.training_seconds,
                settings.mask_index,
            )
            log.held_out = len(held_out)
            details["training"] = log.as_report() | {"data": _training_data(settings)}
        self._trained[key] = _Trained(module, details, held_out)
        return self._trained[key]

    def _prune_made(self, ratio: float) -> Callable[[Any, Compression], tuple[Any, str]]:
        def make(teacher: Any, settings: Compression) -> tuple[Any, str]:
            mask = (
                None if settings.mask_index is None else settings.calibration[settings.mask_index]
            )
            result = pruning.prune(teacher, settings.calibration, ratio, mask)
            return result.module.to(self.device), f"structured pruning: {result.summary()}"

        return make

    @staticmethod
    def _student_made(teacher: Any, settings: Compression) -> tuple[Any, str]:
        if settings.training_seconds <= 0:
            raise ValueError("a distilled student needs trainingSeconds above 0 to learn")
        mask = None if settings.mask_index is None else settings.calibration[settings.mask_index]
        student = distillation.make_student(teacher, settings.calibration, mask)
        return student.module, f"distilled student: {student.description}"

    def compressed(self, name: str) -> Built:
        """A pruned or distilled variant, with int8 after it when the name says so."""
        quantize = name.endswith("-int8")
        base = name.removesuffix("-int8")
        if base == "distilled":
            trained = self._train(base, self._student_made)
        else:
            trained = self._train(base, self._prune_made(PRUNING_RATIOS[base]))
        if self.device == "cuda":
            import torch

            if quantize:
                raise ValueError("int8 after compression is built for CPU pools only")
            half = copy.deepcopy(trained.module).to(torch.float16)
            built = self._torch_variant(name, half, torch.float16)
        else:
            path = self._export(trained.module, self.workdir / f"{base}.onnx")
            if quantize:
                path = self._quantized(path, base)
            built = self._ort_variant(name, path)
        built.details = dict(trained.details)
        built.held_out = trained.held_out
        return built

    def tensorrt(self) -> Built:
        raise ValueError("TensorRT engines are not built by this builder version")

    def build(self, variant: str) -> Built:
        with _third_party_notices():
            return self._build(variant)

    def _build(self, variant: str) -> Built:
        builders: dict[str, Callable[[], Built]] = {
            "fp32": self.fp32,
            "int8-dynamic": self.int8_dynamic,
            "torchscript": self.torchscript,
            "onnx": self.onnx,
            "onnx-int8": self.onnx_int8,
            "onnx-int8-static": self.onnx_int8_static,
            "fp16": lambda: self.half("fp16", "float16"),
            "bf16": lambda: self.half("bf16", "bfloat16"),
            "torch-compile": self.torch_compile,
            "tensorrt": self.tensorrt,
        }
        if variant not in builders:
            return self.compressed(variant)
        return builders[variant]()


def _batches(run: Callable[[Arrays], Arrays], arrays: Arrays, size: int = 8) -> Iterator[Arrays]:
    for start in range(0, len(arrays[0]), size):
        yield run([a[start : start + size] for a in arrays])


_log = logging.getLogger("lepton_builder")


def _training_data(settings: Compression) -> str:
    if settings.generated:
        return (
            "generated inputs (no calibrationUri): the student matched the fp32 model on "
            "random inputs, and its accuracy on real data is not known"
        )
    return "the calibration inputs, a quarter kept out to judge it"
