"""``make bench-builder``: each CPU variant's speedup over fp32, its size and its accuracy,
for the digits CNN and MiniLM-L6, measured side by side in one run by the builder's own
code: fp32, int8, ONNX (+int8), pruned at each ratio (+int8) and distilled (+int8).

Absolute times move a lot on a shared 2-core machine; the ratios within one run are
what to read. Prints a table and writes bench-builder.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from lepton_builder.build import Settings, build
from lepton_builder.profiling import Budget
from lepton_builder.request import BuildRequest
from lepton_builder.selection import ALL_VARIANTS, CPU_VARIANTS
from lepton_e2e import models

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
    },
}


def cpu_request(name: str, work: Path, optimization: dict[str, Any], **extra: Any) -> BuildRequest:
    """The build request of one of ``CASES`` on a CPU pool, as both builder benchmarks
    send it (``search_bench.py`` too): its calibration data and accuracy guard, plus
    ``optimization`` and ``extra`` top-level fields."""
    case = CASES[name]
    return BuildRequest.model_validate(
        {
            "requestVersion": 1,
            "modelName": name,
            "pool": "cpu",
            "device": "cpu",
            "model": {
                "uri": case["uri"],
                "format": case["format"],
                "inputs": case["inputs"],
                "outputs": case["outputs"],
            },
            "optimization": {
                "calibrationUri": case["calibration"],
                "accuracy": {"metric": case["metric"], "tolerance": case["tolerance"]},
                **optimization,
            },
            "repository": str(work / "repository" / name),
            **extra,
        }
    )


def speedups(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {r["name"]: r for r in report["variants"]}
    base = {p["batchSize"]: p["p50Ms"] for p in rows["fp32"].get("profiles", [])}
    table = []
    for row in report["variants"]:
        if row["status"] in ("skipped",):
            continue
        entry = {
            "variant": row["name"],
            "status": row["status"],
            "accuracy": row.get("accuracy"),
            "sizeMB": round(row["sizeBytes"] / 1e6, 2) if row.get("sizeBytes") else None,
            "reason": row.get("reason", ""),
        }
        if row.get("training"):
            entry["training"] = row["training"]
        for p in row.get("profiles", []):
            entry[f"p50@{p['batchSize']}"] = p["p50Ms"]
            entry[f"speedup@{p['batchSize']}"] = round(base[p["batchSize"]] / p["p50Ms"], 2)
        table.append(entry)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant and batch")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-builder.json"))
    parser.add_argument(
        "--training-seconds", type=float, default=60, help="per pruned or distilled variant"
    )
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-builder-"))
    models.train_digits(work / "sources" / "models")
    models.copy_minilm(work / "sources" / "models")
    results = {}
    for name in CASES:
        request = cpu_request(
            name,
            work,
            {
                "batchSizes": batch_sizes,
                "variants": [v for v in ALL_VARIANTS if v in CPU_VARIANTS],
                "trainingSeconds": args.training_seconds,
            },
        )
        report = build(
            request,
            Settings(
                budget=Budget(seconds=args.seconds),
                threads=args.threads,
                sources_root=work / "sources",
            ),
        )
        results[name] = speedups(report)
    args.out.write_text(json.dumps(results, indent=2))
    for name, table in results.items():
        print(f"\n{name} (p50 ms and speedup over fp32, same run)")
        header = f"{'variant':<16}{'status':<10}{'accuracy':>9}{'MB':>7}"
        for b in batch_sizes:
            header += f"{f'p50@{b}':>10}{f'x@{b}':>7}"
        print(header)
        for e in table:
            accuracy = "" if e["accuracy"] is None else f"{e['accuracy']:.4f}"
            size = "" if e["sizeMB"] is None else f"{e['sizeMB']:.2f}"
            line = f"{e['variant']:<16}{e['status']:<10}{accuracy:>9}{size:>7}"
            for b in batch_sizes:
                p50, x = e.get(f"p50@{b}"), e.get(f"speedup@{b}")
                line += f"{'' if p50 is None else f'{p50:.2f}':>10}"
                line += f"{'' if x is None else f'{x:.2f}':>7}"
            print(line + (f"  {e['reason']}" if e["reason"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
