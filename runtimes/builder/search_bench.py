"""``make bench-search``: the serving search on a real Triton, default against chosen.

The builder builds one variant of each model with ``servingSearch`` on and the latency
target given here; the search serves each configuration it tries on the wheel's
``tritonserver`` (the builder image's launcher) under closed-loop load at concurrency 1, 4
and 8. Printed: every configuration tried, its requests per second within the target
and its p95 at each level, the default (what the builder writes without a search) and
the one chosen, all from the same run. Absolute figures move with the machine's load;
the default and the chosen are measured minutes apart in one run, so read the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import build_request
from lepton_builder.build import Settings, build
from lepton_builder.profiling import Budget
from lepton_e2e import models

# The variant searched and the latency target, per model of bench.py's CASES.
SEARCHED: dict[str, tuple[str, float]] = {"digits": ("onnx", 50.0), "minilm": ("onnx", 500.0)}


def table(name: str, search: dict[str, Any]) -> str:
    lines = [
        f"{name}: target p95 {search['targetP95Ms']:g} ms",
        "| configuration | req/s within target | p95 at 1 / 4 / 8 clients (ms) "
        "| req/s at 1 / 4 / 8 |",
        "|---|---|---|---|",
    ]
    for trial in search["trials"]:
        config = trial["config"]
        preferred = ",".join(map(str, config["preferredBatchSizes"])) or "any"
        label = (
            f"{config['instances']} inst, batch {config['maxBatchSize']}, preferred "
            f"{preferred}, delay {config['maxQueueDelayUs']} us"
        )
        if trial == search["default"]:
            label += " (default)"
        if trial == search["chosen"]:
            label += " **chosen**"
        p95 = " / ".join(f"{lv['p95Ms']:.1f}" for lv in trial["levels"])
        rates = " / ".join(f"{lv['throughputRps']:.0f}" for lv in trial["levels"])
        lines.append(f"| {label} | {trial['capacityRps']:.1f} | {p95} | {rates} |")
    gain = search["chosen"]["capacityRps"] / max(search["default"]["capacityRps"], 1e-9)
    lines.append(f"\nchosen / default: {gain:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per load level")
    parser.add_argument("--threads", type=int, default=1, help="per model instance")
    parser.add_argument("--models", default="digits,minilm")
    parser.add_argument("--out", type=Path, default=Path("bench-search.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    models.train_digits(work / "sources" / "models")
    models.copy_minilm(work / "sources" / "models")
    results = {}
    for name in args.models.split(","):
        variant, target = SEARCHED[name]
        request = build_request(
            name,
            work,
            {"variants": [variant], "batchSizes": [1, 8], "servingSearch": True},
            latencyTargetMs=target,
        )
        report = build(
            request,
            Settings(
                budget=Budget(seconds=1.0),
                threads=args.threads,
                sources_root=work / "sources",
                search_seconds=args.seconds,
            ),
        )
        row = next(v for v in report["variants"] if v["name"] == variant)
        results[name] = row.get("servingSearch") or {"skipped": row.get("reason")}
    args.out.write_text(json.dumps(results, indent=2))
    for name, search in results.items():
        print()
        print(table(name, search) if "trials" in search else f"{name}: {search}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
