"""ONNX Runtime int8: the transformer optimizer, calibrated static QDQ, and the
accuracy-aware fallback that keeps the most sensitive nodes in fp32.

Everything here is ONNX Runtime's own tooling (``onnxruntime.transformers.optimizer``,
``onnxruntime.quantization``, its QDQ debugging in ``qdq_loss_debug``); this module
decides what to call with what, and in which order to give nodes back to fp32.

Static int8 fixes each activation's scale from calibration data instead of measuring
it per batch (dynamic int8): cheaper at run time, and only as good as the calibration
inputs. Where a few nodes carry outliers (a transformer's attention scores, the
feed-forward output after GELU), quantizing them costs most of the accuracy; the
fallback ranks nodes by the quantization noise ORT's debugger measures at their inputs
and keeps the worst in fp32, a growing set per try, until the guard passes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Arrays = list[npt.NDArray[Any]]
QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")
CALIBRATION_BATCH = 8
MAX_CALIBRATION_SAMPLES = 64  # enough for MinMax ranges; each try recalibrates
RANKING_SAMPLES = 16  # samples ORT's QDQ debugger compares activations on
DEFAULT_TRIES = 6


@dataclass(frozen=True)
class TransformerShape:
    """What ORT's BERT optimizer needs to fuse attention (it fails to detect them on
    graphs torch exports)."""

    num_heads: int
    hidden_size: int


def transformer_shape(module: Any) -> TransformerShape | None:
    """A Hugging Face BERT-like encoder's heads and width, or None for anything else."""
    config = getattr(getattr(module, "model", None), "config", None)
    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    kind = getattr(config, "model_type", "")
    if not (isinstance(heads, int) and isinstance(hidden, int)):
        return None
    if kind not in ("bert", "roberta", "distilbert", "xlm-roberta", "electra", "mpnet"):
        return None
    return TransformerShape(heads, hidden)


def optimize_transformer(source: Path, target: Path, shape: TransformerShape) -> dict[str, int]:
    """ORT's transformer optimizer (fused attention, embedding and skip LayerNorm,
    GELU) written to ``target``; returns the fused operators it made."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(source),
        model_type="bert",
        num_heads=shape.num_heads,
        hidden_size=shape.hidden_size,
        opt_level=0,  # the fusions only: the session applies the rest at load
    )
    model.save_model_to_file(str(target))
    stats = model.get_fused_operator_statistics()
    return {op: int(n) for op, n in stats.items() if n}


def quantize_dynamic(source: Path, target: Path) -> Path:
    """Per-channel int8 weights, activations scaled per batch at run time."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    ort_quantize_dynamic(
        str(source),
        str(target),
        per_channel=True,
        weight_type=QuantType.QInt8,
        # Fused contrib operators have no ONNX shape inference; their outputs are float.
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    return target


class _Reader:
    """ORT's CalibrationDataReader over our arrays, in batches."""

    def __init__(self, names: list[str], arrays: Arrays) -> None:
        self._batches: Iterator[dict[str, Any]] = iter(
            [
                {
                    n: a[start : start + CALIBRATION_BATCH]
                    for n, a in zip(names, arrays, strict=True)
                }
                for start in range(0, len(arrays[0]), CALIBRATION_BATCH)
            ]
        )

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._batches


def quantize_static(
    source: Path,
    target: Path,
    names: list[str],
    calibration: Arrays,
    exclude: list[str],
    method: str = "minmax",
) -> Path:
    """Static QDQ int8: per-channel int8 weights, uint8 activations with ranges from
    ``calibration`` (MinMax or Percentile), the ``exclude``d nodes left in fp32."""
    from onnx import TensorProto
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
    )
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    class Reader(_Reader, CalibrationDataReader):  # type: ignore[misc]
        pass

    ort_quantize_static(
        str(source),
        str(target),
        Reader(names, calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(QUANTIZED_OPS),
        nodes_to_exclude=exclude,
        calibrate_method=(
            CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax
        ),
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    return target


def quantized_nodes(path: Path) -> list[str]:
    """The names of the nodes static quantization would quantize, in graph order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type in QUANTIZED_OPS and node.name]


def sensitivity(
    float_path: Path, qdq_path: Path, names: list[str], arrays: Arrays, workdir: Path
) -> list[tuple[str, float]]:
    """Quantized nodes, most sensitive first, with the SQNR (dB) of the quantization
    noise at their worst input: ORT's QDQ debugger runs both models on ``arrays`` and
    compares each activation before and after its QuantizeLinear/DequantizeLinear."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    float_debug, qdq_debug = workdir / "debug.float.onnx", workdir / "debug.qdq.onnx"
    modify_model_output_intermediate_tensors(str(float_path), str(float_debug))
    modify_model_output_intermediate_tensors(str(qdq_path), str(qdq_debug))
    float_acts = collect_activations(str(float_debug), _Reader(names, arrays))
    qdq_acts = collect_activations(str(qdq_debug), _Reader(names, arrays))
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    snr = {name: float(e["qdq_err"]) for name, e in errors.items() if "qdq_err" in e}
    graph = onnx.load(str(float_path), load_external_data=False).graph
    ranked = []
    for node in graph.node:
        if node.op_type not in QUANTIZED_OPS or not node.name:
            continue
        measured = [snr[i] for i in node.input if i in snr and math.isfinite(snr[i])]
        if measured:
            ranked.append((node.name, min(measured)))
    return sorted(ranked, key=lambda item: item[1])


def fallback_plan(ranked: list[str], tries: int) -> list[list[str]]:
    """The nodes kept in fp32 at each try: none, then the most sensitive 1, 2, 4, ...
    (doubling, so a model needing many back is found within a few tries), never more
    tries than ``tries`` nor a set repeated."""
    plan: list[list[str]] = [[]]
    count = 1
    while len(plan) < tries and ranked:
        chosen = ranked[: min(count, len(ranked))]
        if chosen != plan[-1]:
            plan.append(chosen)
        if count >= len(ranked):
            break
        count *= 2
    return plan


@dataclass
class Attempt:
    """One try of the fallback: what stayed fp32, the guard's statistics, the speed."""

    fp32_nodes: list[str]
    accuracy: float
    accuracy_tail: float
    accepted: bool
    p50_ms_batch1: float
    reason: str = ""

    def as_report(self) -> dict[str, Any]:
        return {
            "fp32Nodes": self.fp32_nodes,
            "accuracy": round(self.accuracy, 6),
            "accuracyTail": round(self.accuracy_tail, 6),
            "accepted": self.accepted,
            "p50MsBatch1": round(self.p50_ms_batch1, 3),
            **({"reason": self.reason} if self.reason else {}),
        }


@dataclass
class Fallback:
    """The loop's record: each attempt in order, and the one chosen (the first the
    guard accepted, else the last tried)."""

    attempts: list[Attempt] = field(default_factory=list)
    ranking: list[tuple[str, float]] = field(default_factory=list)

    def chosen(self) -> int:
        return next((i for i, a in enumerate(self.attempts) if a.accepted), len(self.attempts) - 1)


def run_fallback(
    plan: list[list[str]],
    attempt: Callable[[list[str]], Attempt],
    log: logging.Logger | None = None,
) -> Fallback:
    """Try each set of fp32 nodes in ``plan`` until one passes the guard."""
    record = Fallback()
    for number, exclude in enumerate(plan):
        result = attempt(exclude)
        record.attempts.append(result)
        if log is not None:
            log.info(
                "static int8 try %d: %d nodes fp32, mean %.4f tail %.4f, %.2f ms%s",
                number,
                len(exclude),
                result.accuracy,
                result.accuracy_tail,
                result.p50_ms_batch1,
                " (accepted)" if result.accepted else "",
            )
        if result.accepted:
            break
    return record


def median_ms(run: Callable[[], Any], iterations: int = 15) -> float:
    """A quick batch-1 p50 for a try's row (the full profile is the chosen one's)."""
    import time

    run()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)
