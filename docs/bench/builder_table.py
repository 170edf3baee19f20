"""Write the builder benchmark's tables into docs/builder.md from docs/bench/builder.json.

    python docs/bench/builder_table.py          # rewrite the table between its markers
    python docs/bench/builder_table.py --check  # exit 1 if it is not what the JSON says

``make bench-builder`` writes the JSON; the prose around the table reads its figures,
so the table must be the JSON's own. It sits between ``<!-- builder-table -->`` and
``<!-- /builder-table -->``; tests/unit/builder/test_bench_table.py runs the check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "builder.md"
DATA = HERE / "builder.json"
BEGIN, END = "<!-- builder-table -->", "<!-- /builder-table -->"


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _speed(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _model(model: dict[str, Any]) -> list[str]:
    lines = [
        f"**{model['model']}**: {model['statistic']}; {model['calibrationSamples']} "
        f"calibration samples ({model['inputs']}), {model['heldOutSamples']} held out "
        "for variants that learn from them",
        "",
        "| variant | status | mean | p5 | judged on | x fp32 @1 | x fp32 @8 | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in model["variants"]:
        name = row["variant"]
        if row.get("trainingSeconds") is not None:
            name += f" ({row['trainingSeconds']:g} s training)"
        lines.append(
            f"| {name} | {row['status']} | {_number(row['mean'])} | {_number(row['p5'])} | "
            f"{row.get('judgedSamples') or ''} | {_speed(row['speedupB1'])} | "
            f"{_speed(row['speedupB8'])} | {row['reason']} |"
        )
        for number, attempt in enumerate(row.get("fallback") or []):
            lines.append(
                f"| &nbsp;&nbsp;try {number}: {attempt['fp32Nodes']} nodes fp32 | "
                f"{'accepted' if attempt['accepted'] else 'missed'} | "
                f"{_number(attempt['mean'])} | {_number(attempt['p5'])} | | "
                f"{attempt['p50MsB1']:.2f} ms | | |"
            )
    return lines


def render(document: dict[str, Any]) -> str:
    """The tables, one per model, with when and how they were measured."""
    lines = [
        f"Measured {document['measured']} by `make bench-builder` ({document['threads']} "
        f"threads, {document['secondsPerBatchSize']:g} s per variant and batch size; "
        "speedups are p50 over the same run's fp32, eager torch; a try's figure is its "
        "batch-1 p50).",
        "",
    ]
    for model in document["models"]:
        lines += [*_model(model), ""]
    return "\n".join(lines).rstrip() + "\n"


def rewritten(page: str, document: dict[str, Any]) -> str:
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render(document)}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    page = PAGE.read_text()
    expected = rewritten(page, json.loads(DATA.read_text()))
    if args.check:
        if page != expected:
            print("docs/builder.md's builder table is stale: run docs/bench/builder_table.py")
            return 1
        return 0
    PAGE.write_text(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
