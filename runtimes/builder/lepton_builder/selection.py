"""Which variants apply to a build, and why the others do not: pure, so the GPU paths
are tested here even though CI has no GPU."""

from __future__ import annotations

from dataclasses import dataclass

ALL_VARIANTS = (
    "fp32",
    "int8-dynamic",
    "onnx",
    "onnx-int8",
    "torchscript",
    "torch-compile",
    "fp16",
    "bf16",
    "tensorrt",
    "pruned-10",
    "pruned-25",
    "pruned-40",
    "pruned-10-int8",
    "pruned-25-int8",
    "pruned-40-int8",
    "distilled",
    "distilled-int8",
    "onnx-int8-static",
)
# Trained and reshaped: minutes per variant, so built only when the spec lists them.
COMPRESSED = ALL_VARIANTS[9:17]
# Calibrated, and retried with fp32 fallbacks until the guard passes: listed only too.
LISTED_ONLY = (*COMPRESSED, "onnx-int8-static")
# tensorrt is listed (the API accepts it) but never a default: this builder version
# builds no engine, and a default that always fails is not an honest offer.
DEFAULT_VARIANTS = tuple(v for v in ALL_VARIANTS[:9] if v != "tensorrt")
TENSORRT_NOT_BUILT = (
    "TensorRT engines are not built by this builder version (no engine is built and "
    "checked on a GPU yet)"
)
CPU_VARIANTS = (
    "fp32",
    "int8-dynamic",
    "bf16",
    "onnx",
    "onnx-int8",
    "onnx-int8-static",
    "torchscript",
    *COMPRESSED,
)
GPU_VARIANTS = (
    "fp32",
    "fp16",
    "bf16",
    "torch-compile",
    "onnx",
    "tensorrt",
    *(v for v in COMPRESSED if not v.endswith("-int8")),
)
NO_NATIVE_BF16 = (
    "this CPU has no native bf16 arithmetic (AVX512-BF16, AMX or Arm BF16): emulated, "
    "bf16 is slower than fp32"
)
ONNX_SOURCE_VARIANTS = ("fp32", "onnx", "onnx-int8", "onnx-int8-static", "tensorrt")


@dataclass(frozen=True)
class Choice:
    variant: str
    build: bool
    reason: str = ""


def choose_variants(
    device: str,
    source_format: str,
    requested: list[str] | None,
    tensorrt_available: bool,
    ort_cuda_available: bool,
    cpu_bf16_native: bool = False,
) -> list[Choice]:
    """Every variant considered, in a stable order: built, or skipped with the reason.

    The fp32 baseline is always built: accuracy is measured against it.
    """
    wanted = set(requested) if requested else set(DEFAULT_VARIANTS)
    wanted.add("fp32")
    choices = []
    for variant in ALL_VARIANTS:
        if variant not in wanted:
            continue
        choices.append(
            _choice(
                variant,
                device,
                source_format,
                tensorrt_available,
                ort_cuda_available,
                cpu_bf16_native,
            )
        )
    return choices


def _choice(
    variant: str,
    device: str,
    source_format: str,
    tensorrt_available: bool,
    ort_cuda_available: bool,
    cpu_bf16_native: bool,
) -> Choice:
    if source_format == "onnx" and variant not in ONNX_SOURCE_VARIANTS:
        return Choice(variant, False, "needs a torch source model; this model is ONNX")
    if device == "cpu" and variant not in CPU_VARIANTS:
        return Choice(variant, False, "needs a GPU; this build targets a CPU pool")
    if device == "cuda" and variant not in GPU_VARIANTS:
        return Choice(variant, False, "CPU-only quantization; not built for a GPU pool")
    if device == "cpu" and variant == "bf16" and not cpu_bf16_native:
        return Choice(variant, False, NO_NATIVE_BF16)
    if variant == "tensorrt" and not tensorrt_available:
        return Choice(variant, False, "the TensorRT library is not present in this image")
    if variant == "tensorrt":
        return Choice(variant, False, TENSORRT_NOT_BUILT)
    if device == "cuda" and variant == "onnx" and not ort_cuda_available:
        return Choice(variant, False, "ONNX Runtime's CUDA provider is not present")
    return Choice(variant, True)
