"""``make bench-builder``: each CPU variant's speedup over fp32 and its accuracy on what
clients consume, for the digits CNN and MiniLM-L6, measured side by side in one run by
the builder's own code; then pruned and distilled MiniLM at each training budget.

Absolute times move a lot on a shared 2-core machine; the ratios within one run are
what to read. Writes ``docs/bench/builder.json`` (``--out``) and prints the tables
``docs/bench/builder_table.py`` renders into docs/builder.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lepton_builder.build import Settings, build
from lepton_builder.profiling import Budget
from lepton_builder.request import BuildRequest
from lepton_e2e import models

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "bench"))
from builder_table import render

CASES: dict[str, dict[str, Any]] = {
    "digits": {
        "uri": "pvc://models/digits.pt",
        "format": "torchscript",
        "calibration": "pvc://models/digits-calibration.npz",
        "inputs": models.DIGITS_INPUTS,
        "outputs": models.DIGITS_OUTPUTS,
        "metric": "top1-agreement",
        "tolerance": 0.98,
    },
    "minilm": {
        "uri": "pvc://models/minilm",
        "format": "safetensors",
        "calibration": "pvc://models/minilm-calibration.npz",
        "inputs": models.MINILM_INPUTS,
        "outputs": models.MINILM_OUTPUTS,
        "metric": "cosine",
        "tolerance": 0.99,
        # Clients read the mean-pooled, normalized sentence embedding (examples/minilm.yaml).
        "tailTolerance": 0.98,
        "output": {"pooling": "mean", "normalize": True},
    },
}
# Served as built, no training: every CPU variant that is not pruned or distilled.
UNTRAINED = ["fp32", "int8-dynamic", "bf16", "onnx", "onnx-int8", "onnx-int8-static", "torchscript"]
TRAINED = ["pruned-25", "distilled"]


def build_request(
    name: str, work: Path, optimization: dict[str, Any], device: str = "cpu", **extra: Any
) -> BuildRequest:
    """The build request of one of ``CASES`` for a CPU pool or (``device="cuda"``) a GPU
    one, as the builder benchmarks send it (``search_bench.py`` and ``gpu_check.py``
    too): its calibration data and accuracy guard, plus ``optimization`` and ``extra``
    top-level fields."""
    case = CASES[name]
    return BuildRequest.model_validate(
        {
            "requestVersion": 1,
            "modelName": name,
            "pool": "cpu" if device == "cpu" else "gpu",
            "device": device,
            "model": {
                "uri": case["uri"],
                "format": case["format"],
                "inputs": case["inputs"],
                "outputs": case["outputs"],
            },
            "optimization": {
                "calibrationUri": case["calibration"],
                "accuracy": {
                    "metric": case["metric"],
                    "tolerance": case["tolerance"],
                    **{k: case[k] for k in ("tailTolerance", "output") if k in case},
                },
                **optimization,
            },
            "repository": str(work / "repository" / name),
            **extra,
        }
    )


def speedups(report: dict[str, Any]) -> dict[str, dict[int, float]]:
    """Per variant of a build report, per batch size: fp32's median latency over the
    variant's, both of the same build on the same device (batch sizes fp32 has)."""
    fp32 = next((r for r in report["variants"] if r["name"] == "fp32"), {})
    base = {p["batchSize"]: p["p50Ms"] for p in fp32.get("profiles", [])}
    return {
        row["name"]: {
            p["batchSize"]: base[p["batchSize"]] / p["p50Ms"]
            for p in row.get("profiles", [])
            if p["batchSize"] in base
        }
        for row in report["variants"]
    }


def rows(report: dict[str, Any], training_seconds: float | None = None) -> list[dict[str, Any]]:
    """The report's variants as the JSON's rows: speedups over fp32 of the same run."""
    over_fp32 = speedups(report)
    table = []
    for row in report["variants"]:
        if row["status"] == "skipped" and not row.get("profiles"):
            continue
        if training_seconds is not None and row["name"] == "fp32":
            continue  # the baseline of a training run: already in the main table
        speed = over_fp32[row["name"]]
        entry: dict[str, Any] = {
            "variant": row["name"],
            "device": report["device"],
            "accepted": row["status"] == "accepted",
            "status": row["status"],
            "mean": row.get("accuracy"),
            "p5": row.get("accuracyTail"),
            "judgedSamples": row.get("judgedSamples"),
            "speedupB1": round(speed[1], 2) if 1 in speed else None,
            "speedupB8": round(speed[8], 2) if 8 in speed else None,
            "p50MsB1": next(
                (p["p50Ms"] for p in row.get("profiles", []) if p["batchSize"] == 1), None
            ),
            "reason": row.get("reason", ""),
        }
        if training_seconds is not None:
            entry["trainingSeconds"] = training_seconds
            entry["training"] = row.get("training")
        if row.get("fallback"):
            entry["fallback"] = [
                {
                    "fp32Nodes": len(t["fp32Nodes"]),
                    "mean": t["accuracy"],
                    "p5": t["accuracyTail"],
                    "accepted": t["accepted"],
                    "p50MsB1": t["p50MsBatch1"],
                }
                for t in row["fallback"]
            ]
        table.append(entry)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant and batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/bench/builder.json"))
    parser.add_argument(
        "--training-seconds",
        default="60,600",
        help="training budgets of the pruned and distilled MiniLM, comma-separated; empty: none",
    )
    args = parser.parse_args(argv)
    budgets = [float(b) for b in args.training_seconds.split(",") if b]
    work = Path(tempfile.mkdtemp(prefix="bench-builder-"))
    models.train_digits(work / "sources" / "models")
    models.copy_minilm(work / "sources" / "models")
    settings = Settings(
        budget=Budget(seconds=args.seconds), threads=args.threads, sources_root=work / "sources"
    )
    started = time.strftime("%Y-%m-%d")
    results = []
    for name in CASES:
        optimization = {"batchSizes": [1, 8], "variants": UNTRAINED}
        report = build(build_request(name, work, optimization), settings)
        entry: dict[str, Any] = {
            "model": name,
            "calibrationSamples": report["guard"]["calibrationSamples"],
            "heldOutSamples": report["guard"]["calibrationSamples"] // 4,
            "statistic": report["guard"]["statistic"],
            "inputs": report["guard"]["inputs"],
            "variants": rows(report),
        }
        if name == "minilm":
            for seconds in budgets:
                trained = {
                    "batchSizes": [1, 8],
                    "variants": TRAINED,
                    "trainingSeconds": seconds,
                }
                report = build(build_request(name, work, trained), settings)
                entry["variants"] += rows(report, seconds)
        results.append(entry)
    document = {
        "measured": started,
        "threads": args.threads,
        "secondsPerBatchSize": args.seconds,
        "models": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(render(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
