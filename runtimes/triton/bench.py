"""``make bench-serving``: what serving through Triton costs over running the variant
in-process, measured side by side in one run.

The builder builds MiniLM-L6's ``onnx-int8`` variant (the artifact, ``model.py`` and
``config.pbtxt`` a pod would serve). The same ONNX file then runs two ways on the same
inputs (random token ids, sequence 128) at each batch size:

- **raw**: an in-process ``onnxruntime`` session with the thread count Triton's model
  gets (what the builder's profile measures);
- **triton**: the real ``tritonserver`` from the ``nvidia-pytriton`` wheel (python
  backend, ``model.py`` wrapping onnxruntime), called over HTTP with ``tritonclient``,
  one request in flight, as a client in the same pod would.

Calls alternate in blocks (5 raw, 5 triton, 5 raw, ...) so both see the same noise of a
shared machine;
the ratios within one run are what to read, not the absolute times. Throughput is
sequential (one request at a time): samples per second of wall time.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

SEQUENCE = 128
ADDRESS = "127.0.0.46"  # not 127.0.0.1: tests may run a Triton there at the same time


@dataclass(frozen=True)
class Summary:
    p50_ms: float
    p95_ms: float
    samples_per_s: float
    iterations: int


@dataclass(frozen=True)
class Row:
    batch: int
    raw: Summary
    triton: Summary
    max_abs_diff: float

    @property
    def overhead(self) -> float:
        """Triton's p50 over raw p50, minus one: +0.14 is 14% slower."""
        return overhead(self.raw.p50_ms, self.triton.p50_ms)


def summarize(seconds: list[float], batch: int) -> Summary:
    """Latency percentiles (ms) and sequential throughput of timed calls."""
    if not seconds:
        raise ValueError("no timed calls to summarize")
    ms = np.asarray(seconds) * 1000.0
    return Summary(
        p50_ms=round(float(np.percentile(ms, 50)), 3),
        p95_ms=round(float(np.percentile(ms, 95)), 3),
        samples_per_s=round(batch * len(seconds) / float(np.sum(seconds)), 2),
        iterations=len(seconds),
    )


def overhead(raw_ms: float, served_ms: float) -> float:
    return served_ms / raw_ms - 1.0


def table(rows: list[Row]) -> str:
    """A Markdown table, pasted into the README as measured."""
    lines = [
        "| batch | raw p50 / p95 (ms) | Triton p50 / p95 (ms) | raw samples/s "
        "| Triton samples/s | overhead (p50) | max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        extra_ms = r.triton.p50_ms - r.raw.p50_ms
        lines.append(
            f"| {r.batch} | {r.raw.p50_ms:.1f} / {r.raw.p95_ms:.1f} "
            f"| {r.triton.p50_ms:.1f} / {r.triton.p95_ms:.1f} "
            f"| {r.raw.samples_per_s:.1f} | {r.triton.samples_per_s:.1f} "
            f"| {r.overhead:+.0%} ({extra_ms:+.1f} ms) | {r.max_abs_diff:.1e} |"
        )
    return "\n".join(lines)


def alternate(
    calls: Mapping[str, Callable[[], Any]],
    seconds: float,
    min_iterations: int,
    block: int = 1,
) -> dict[str, list[float]]:
    """Times the calls in turn, ``block`` of each at a time, until both the time and the
    iteration count are reached.

    Blocks rather than single alternation: onnxruntime's threads spin for a while after
    each run, and on two cores that spinning would slow whichever call comes next.
    """
    timings: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or min(map(len, timings.values())) < min_iterations:
        for name, call in calls.items():
            for _ in range(block):
                started = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - started)
    return timings


# ---- I/O: the builder, onnxruntime, tritonserver -------------------------------------


def _build_minilm(work: Path, threads: int, batch_sizes: list[int]) -> tuple[Path, str]:
    """The builder's own output for MiniLM's onnx-int8: (repository, Triton model name)."""
    from lepton_builder.build import Settings, build
    from lepton_builder.profiling import Budget
    from lepton_builder.request import BuildRequest
    from lepton_e2e import models

    models.copy_minilm(work / "sources" / "models")
    request = BuildRequest.model_validate(
        {
            "requestVersion": 1,
            "modelName": "minilm",
            "pool": "cpu",
            "device": "cpu",
            "model": {
                "uri": "pvc://models/minilm",
                "format": "safetensors",
                "inputs": models.MINILM_INPUTS,
                "outputs": models.MINILM_OUTPUTS,
            },
            "optimization": {
                "variants": ["onnx-int8"],
                "batchSizes": batch_sizes,
                "calibrationUri": "pvc://models/minilm-calibration.npz",
                # Serving cost is measured, not accuracy: int8 drifts to cosine ~0.987
                # against fp32 here, under the default guard of 0.99.
                "accuracy": {"metric": "cosine", "tolerance": 0.95},
            },
            "repository": str(work / "repository"),
        }
    )
    settings = Settings(
        budget=Budget(seconds=0.2, min_iterations=3),
        threads=threads,
        sources_root=work / "sources",
    )
    report = build(request, settings)
    row = next(v for v in report["variants"] if v["name"] == "onnx-int8")
    if row["status"] != "accepted":
        raise RuntimeError(f"onnx-int8 was not accepted: {row.get('reason')}")
    # The variant's own repository folder, as the operator points a pod at it.
    return Path(report["repository"]) / "onnx-int8", str(row["tritonModel"])


def _artifact(repository: Path, triton_model: str) -> Path:
    config = (repository / triton_model / "config.pbtxt").read_text()
    match = re.search(r'key:\s*"artifact"\s*value:\s*\{\s*string_value:\s*"([^"]+)"', config)
    if match is None:
        raise RuntimeError(f"no artifact parameter in {triton_model}/config.pbtxt")
    return repository / triton_model / "1" / match[1]


def _inputs(batch: int, rng: np.random.Generator) -> dict[str, NDArray[Any]]:
    return {
        "input_ids": rng.integers(1000, 20000, size=(batch, SEQUENCE), dtype=np.int64),
        "attention_mask": np.ones((batch, SEQUENCE), dtype=np.int64),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=12.0, help="per batch size")
    parser.add_argument("--min-iterations", type=int, default=30)
    parser.add_argument("--block", type=int, default=5, help="calls of one side in a row")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-serving.json"))
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    import onnxruntime as ort
    import tritonclient.http as httpclient

    from lepton_e2e.triton import TritonServer

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    print(f"building MiniLM onnx-int8 with the builder in {work} ...", file=sys.stderr)
    repository, triton_model = _build_minilm(work, args.threads, batch_sizes)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(
        str(_artifact(repository, triton_model)), options, providers=["CPUExecutionProvider"]
    )
    server = TritonServer(repository, work, [triton_model], address=ADDRESS)
    rows: list[Row] = []
    try:
        server.wait_ready()
        client = httpclient.InferenceServerClient(server.http, network_timeout=120)

        def served(arrays: dict[str, NDArray[Any]]) -> NDArray[Any]:
            inputs = []
            for name, array in arrays.items():
                tensor = httpclient.InferInput(name, list(array.shape), "INT64")
                tensor.set_data_from_numpy(array, binary_data=True)
                inputs.append(tensor)
            wanted = [httpclient.InferRequestedOutput("last_hidden_state", binary_data=True)]
            result = client.infer(triton_model, inputs, outputs=wanted)
            output: NDArray[Any] = result.as_numpy("last_hidden_state")
            return output

        def raw(arrays: dict[str, NDArray[Any]]) -> NDArray[Any]:
            output: NDArray[Any] = session.run(["last_hidden_state"], arrays)[0]
            return output

        rng = np.random.default_rng(0)
        for batch in batch_sizes:
            arrays = _inputs(batch, rng)
            difference = float(np.max(np.abs(raw(arrays) - served(arrays))))
            calls = {
                "raw": functools.partial(raw, arrays),
                "triton": functools.partial(served, arrays),
            }
            alternate(calls, 0, 5)  # warm-up, untimed
            timings = alternate(calls, args.seconds, args.min_iterations, args.block)
            rows.append(
                Row(
                    batch,
                    summarize(timings["raw"], batch),
                    summarize(timings["triton"], batch),
                    difference,
                )
            )
    finally:
        server.stop()
    args.out.write_text(
        json.dumps([{**asdict(r), "overhead": round(r.overhead, 4)} for r in rows], indent=2)
    )
    print(
        f"\nMiniLM-L6 onnx-int8, sequence {SEQUENCE}, {args.threads} threads: raw onnxruntime "
        f"vs tritonserver (python backend, HTTP), one run, blocks of {args.block} calls:\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
