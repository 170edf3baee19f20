"""``make gpu-check``: the builder's GPU variants of the digits CNN and MiniLM-L6 built,
guarded and profiled at batch 1, 8, 32 and 128 by the builder's own ``build()``, as a
GPU build Job runs them; writes ``docs/bench/gpu.json``.

The GPU machine lent to this project has no network and takes 64 MiB of files per
call, so the check has two halves:

- ``--pack DIR`` (here, where the models and their calibration data are): trains
  digits and writes MiniLM with only the word-embedding rows its calibration sentences
  use (46 of its 91 MB are the embedding table; every input the check sends is one of
  those sentences, so every output is MiniLM's own, bit for bit).
- ``--sources DIR`` (on the GPU): restores MiniLM and builds. The JSON is rewritten
  after every build, so a run stopped at its time limit still returns what it measured.

``--dry-run`` runs the same halves on this CPU with tiny budgets (``make gpu-check
DRY_RUN=1``): the GPU-only variants are then skipped with the builder's own reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
USED_ROWS = "lepton.used_token_ids"  # the pack's index of the rows it kept
PACKED_WEIGHTS = "model.packed.safetensors"
Tensors = dict[str, npt.NDArray[Any]]
GPU_BATCH_SIZES = [1, 8, 32, 128]
# Built as served, no training; tensorrt and onnx stay in the list so their rows say why
# they were not built where they were not (no TensorRT, no ONNX Runtime CUDA provider).
UNTRAINED = ["fp32", "fp16", "bf16", "onnx", "tensorrt"]
# Minutes of compilation per shape in max-autotune: last, so a time limit takes only it.
COMPILED = ["torch-compile"]
TRAINED = ["pruned-25", "distilled"]


@dataclass(frozen=True)
class Plan:
    """What one run measures: the device, the batch sizes, the seconds per batch size
    and the training budget of the pruned and distilled students."""

    device: str
    batch_sizes: list[int]
    seconds: float
    training_seconds: float


GPU_PLAN = Plan("cuda", GPU_BATCH_SIZES, 1.0, 20.0)
DRY_PLAN = Plan("cpu", [1, 8], 0.05, 2.0)


# ---- the pack: here -------------------------------------------------------------------
def pack(folder: Path) -> None:
    """Digits and MiniLM with their calibration data, small enough to travel."""
    from safetensors.numpy import load_file, save_file

    from lepton_e2e import models

    folder.mkdir(parents=True, exist_ok=True)
    models.train_digits(folder)
    with tempfile.TemporaryDirectory() as scratch:
        models.copy_minilm(Path(scratch))
        source = Path(scratch) / "minilm"
        shutil.move(str(Path(scratch) / "minilm-calibration.npz"), folder)
        target = folder / "minilm"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
        tensors = load_file(str(source / "model.safetensors"))
    used = np.load(folder / "minilm-calibration.npz")["input_ids"]
    save_file(keep_rows(tensors, used), str(target / PACKED_WEIGHTS))


def keep_rows(tensors: Tensors, token_ids: npt.NDArray[np.int64]) -> Tensors:
    """The weights with the word-embedding table cut to the rows ``token_ids`` read,
    and the index of those rows beside it."""
    used = np.unique(token_ids).astype(np.int64)
    return {
        **tensors,
        USED_ROWS: used,
        WORD_EMBEDDINGS: np.ascontiguousarray(tensors[WORD_EMBEDDINGS][used]),
    }


def restore_rows(packed: Tensors, vocabulary: int) -> Tensors:
    """``keep_rows`` undone: the kept rows in place, zeros in the rows no input read."""
    tensors = dict(packed)
    used = tensors.pop(USED_ROWS)
    rows = tensors[WORD_EMBEDDINGS]
    table = np.zeros((vocabulary, rows.shape[1]), dtype=rows.dtype)
    table[used] = rows
    tensors[WORD_EMBEDDINGS] = table
    return tensors


def unpack(folder: Path, vocabulary: int) -> None:
    """MiniLM's ``model.safetensors`` again: the kept rows in place, zeros elsewhere
    (rows no input of the check reads)."""
    from safetensors.numpy import load_file, save_file

    target = folder / "minilm"
    tensors = restore_rows(load_file(str(target / PACKED_WEIGHTS)), vocabulary)
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    (target / PACKED_WEIGHTS).unlink()


# ---- the check: on the GPU ------------------------------------------------------------
# The check in two device calls if need be: what a GPU pool serves, then torch.compile
# (the first try ran all in one call, and the machine died with nothing returned).
PARTS = {"served": slice(0, 3), "compiled": slice(3, None), "all": slice(None)}


def builds(plan: Plan, part: str = "all") -> list[tuple[str, dict[str, Any]]]:
    """(model, optimization) per build of ``part``, cheapest first."""
    base = {"batchSizes": plan.batch_sizes}
    return [
        ("digits", {**base, "variants": UNTRAINED}),
        ("minilm", {**base, "variants": UNTRAINED}),
        ("minilm", {**base, "variants": TRAINED, "trainingSeconds": plan.training_seconds}),
        ("digits", {**base, "variants": COMPILED}),
        ("minilm", {**base, "variants": COMPILED}),
    ][PARTS[part]]


def merge_documents(first: dict[str, Any], *others: dict[str, Any]) -> dict[str, Any]:
    """Parts measured in separate calls, as one document (each part's speedups stay
    over its own fp32, measured in the same call)."""
    for other in others:
        for entry in other["models"]:
            known = next((m for m in first["models"] if m["model"] == entry["model"]), None)
            if known is None:
                first["models"].append(entry)
                continue
            names = {v["variant"] for v in known["variants"]}
            known["variants"] += [v for v in entry["variants"] if v["variant"] not in names]
            known["buildSeconds"] += entry["buildSeconds"]
        first.setdefault("failedBuilds", []).extend(other.get("failedBuilds", []))
    return first


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's variants as gpu.json's rows: speedups over the fp32 of the same
    build, on the same device."""
    from bench import speedups

    over_fp32 = speedups(report)
    table = []
    for row in report["variants"]:
        profiles = {p["batchSize"]: p for p in row.get("profiles", [])}
        speed = over_fp32[row["name"]]
        table.append(
            {
                "variant": row["name"],
                "status": row["status"],
                "accepted": row["status"] == "accepted",
                "mean": row.get("accuracy"),
                "p5": row.get("accuracyTail"),
                "speedupB1": round(speed[1], 2) if 1 in speed else None,
                "speedupB8": round(speed[8], 2) if 8 in speed else None,
                "p95MsB1": profiles[1]["p95Ms"] if 1 in profiles else None,
                "throughputBest": max(
                    (p["throughputRps"] for p in profiles.values()), default=None
                ),
                "reason": row.get("reason", ""),
                "profiles": list(profiles.values()),
                **({"training": row["training"]} if row.get("training") else {}),
                **({"notServed": row["notServed"]} if row.get("notServed") else {}),
            }
        )
    return table


def merge(document: dict[str, Any], model: str, report: dict[str, Any]) -> None:
    """One build's rows into the model's entry; fp32 is kept once (each build has its
    own, as its speedups' base)."""
    entry = next((m for m in document["models"] if m["model"] == model), None)
    if entry is None:
        entry = {"model": model, "guard": report["guard"], "variants": []}
        document["models"].append(entry)
    known = {v["variant"] for v in entry["variants"]}
    entry["variants"] += [r for r in rows(report) if r["variant"] not in known]
    entry.setdefault("buildSeconds", []).append(report["buildSeconds"])


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return str(torch.cuda.get_device_name(0))
    return "cpu (dry run)"


def check(sources: Path, plan: Plan, out: Path, part: str = "all") -> dict[str, Any]:
    import torch

    from bench import build_request
    from lepton_builder.build import Settings, build
    from lepton_builder.profiling import Budget

    models_dir = sources / "models"
    if (models_dir / "minilm" / PACKED_WEIGHTS).exists():
        config = json.loads((models_dir / "minilm" / "config.json").read_text())
        unpack(models_dir, int(config["vocab_size"]))
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    settings = Settings(budget=Budget(seconds=plan.seconds), sources_root=sources)
    document: dict[str, Any] = {
        "measured": time.strftime("%Y-%m-%d"),
        "device": device_name(plan.device),
        "torch": torch.__version__,
        "secondsPerBatchSize": plan.seconds,
        "models": [],
    }
    for model, optimization in builds(plan, part):
        request = build_request(model, work, optimization, device=plan.device)
        started = time.monotonic()
        try:
            report = build(request, settings)
        except Exception as error:  # a whole build failing is a finding, not the end
            logging.exception("%s %s failed", model, optimization["variants"])
            document.setdefault("failedBuilds", []).append(
                {"model": model, "variants": optimization["variants"], "reason": repr(error)}
            )
            continue
        finally:
            logging.info(
                "%s %s: %.0f s", model, optimization["variants"], time.monotonic() - started
            )
        merge(document, model, report)
        out.write_text(json.dumps(document, indent=2) + "\n")
    out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pack", type=Path, help="write the models and calibration data here")
    parser.add_argument("--sources", type=Path, help="a --pack folder's parent: build from it")
    parser.add_argument("--out", type=Path, default=Path("docs/bench/gpu.json"))
    parser.add_argument("--dry-run", action="store_true", help="on this CPU, tiny budgets")
    parser.add_argument("--part", choices=sorted(PARTS), default="all")
    parser.add_argument("--merge", type=Path, nargs="+", help="parts' JSON files into --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        args.out.write_text(json.dumps(merge_documents(*parts), indent=2) + "\n")
        return 0
    if args.pack:
        pack(args.pack / "models")
        return 0
    if args.sources is None:
        parser.error("--pack or --sources is required")
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    if plan.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: run with --dry-run here, or on the GPU machine", file=sys.stderr)
            return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    check(args.sources, plan, args.out, args.part)
    print(summary(json.loads(args.out.read_text())))
    return 0


def summary(document: dict[str, Any]) -> str:
    lines = [f"device: {document['device']}"]
    for entry in document["models"]:
        for v in entry["variants"]:
            lines.append(
                f"{entry['model']:<7} {v['variant']:<14} {v['status']:<9} "
                f"x{v['speedupB1'] or 0:>5.2f} @1 x{v['speedupB8'] or 0:>5.2f} @8 "
                f"p95@1 {v['p95MsB1'] or 0:>7.2f} ms best {v['throughputBest'] or 0:>9.1f}/s "
                f"{v['reason'][:60]}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
