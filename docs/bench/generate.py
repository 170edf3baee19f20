"""Write the replay benchmark's tables into docs/planner.md from docs/bench/replay-*.json.

    python docs/bench/generate.py          # rewrite the tables between their markers
    python docs/bench/generate.py --check  # exit 1 if a table is not what the JSON says

``make bench-replay`` writes the JSON; the page's prose reads the figures, so the
tables must be the JSON's own, not figures pasted once and left behind by the next run.
Each table sits between ``<!-- replay-table:<id> -->`` and ``<!-- /replay-table -->``;
the text around it is the writer's. tests/unit/docs runs ``--check``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "planner.md"

Row = dict[str, Any]


def _day(row: Row) -> str:
    """Spend, its ratio to the optimum, and the share of minutes over the SLO."""
    return f"${row['spendUSD']:.2f}, {row['spendVsOptimum']:.2f}x, {row['overSLOShare']:.1%}"


def _causes(row: Row) -> str:
    """The same with two decimals of share, and over-SLO minutes by cause."""
    return (
        f"${row['spendUSD']:.2f}, {row['spendVsOptimum']:.2f}x, {row['overSLOShare']:.2%}, "
        f"{row['overSLOMinutesColdStart']} / {row['overSLOMinutesCapacity']}"
    )


@dataclass(frozen=True)
class Table:
    """One table: a column per trace, a row per policy (with the page's label and a
    note after the first cell where the prose needs one)."""

    header: tuple[str, ...]
    traces: tuple[str, ...]
    policies: tuple[str, ...]
    cell: Callable[[Row], str]
    labels: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


ALWAYS_ON = {"hpa-gpu-l4": "hpa-gpu-l4 (always on)"}
TABLES = {
    "day": Table(
        ("policy", "diurnal", "ramp", "spiky", "step"),
        ("diurnal", "ramp", "spiky", "step"),
        (
            "ours",
            "static-cpu-peak",
            "static-gpu-peak",
            "hpa-cpu-standard",
            "hpa-gpu-l4",
            "keda-cpu-standard",
            "keda-gpu-l4",
            "two-pool-1.1x3m5m",
            "two-pool-tuned",
            "greedy-per-minute",
            "optimum",
        ),
        _day,
    ),
    "idle": Table(
        (
            "policy",
            "low-traffic (week): spend, x optimum, over SLO, cold / capacity min",
            "bursty (day)",
        ),
        ("low-traffic", "bursty"),
        (
            "ours",
            "static-gpu-peak",
            "hpa-cpu-standard",
            "hpa-gpu-l4",
            "keda-gpu-l4",
            "gpu-l4-to-zero",
            "two-pool-1.1x3m5m",
            "two-pool-tuned",
            "greedy-per-minute",
            "optimum",
        ),
        _causes,
        labels=ALWAYS_ON,
    ),
    "daily-steps": Table(
        ("policy", "daily-steps (4 days): spend, x optimum, over SLO, cold / capacity min"),
        ("daily-steps",),
        ("ours", "static-gpu-peak", "hpa-gpu-l4", "keda-gpu-l4", "optimum"),
        _causes,
        labels=ALWAYS_ON,
        notes={
            "ours": "all on days 1 and 2; none on days 3 and 4",
            "hpa-gpu-l4": "every day's 6,000 req/s step waits for a second L4",
        },
    ),
}
MARKED = re.compile(
    r"(<!-- replay-table:(?P<id>[\w-]+) -->\n)(?P<body>.*?)(<!-- /replay-table -->)", re.S
)


def _rows(trace: str) -> dict[str, Row]:
    data = json.loads((HERE / f"replay-{trace}.json").read_text())
    return {row["policy"]: row for row in data["policies"]}


def render(table: Table) -> str:
    """The Markdown table, one line per policy, as the JSON says."""
    by_trace = {trace: _rows(trace) for trace in table.traces}
    lines = ["| " + " | ".join(table.header) + " |", "|" + " --- |" * len(table.header)]
    for policy in table.policies:
        label = table.labels.get(policy, policy)
        cells = [f"**{label}**" if policy == "ours" else label]
        for trace in table.traces:
            if policy not in by_trace[trace]:
                raise SystemExit(f"replay-{trace}.json has no policy {policy!r}")
            cells.append(table.cell(by_trace[trace][policy]))
        if policy in table.notes:
            cells[1] += f" ({table.notes[policy]})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rewrite(page: str) -> str:
    """The page with every marked table rendered afresh; an unknown id is an error."""
    found: list[str] = []

    def replace(match: re.Match[str]) -> str:
        table_id = match["id"]
        if table_id not in TABLES:
            raise SystemExit(f"{PAGE}: no table named {table_id!r} (known: {sorted(TABLES)})")
        found.append(table_id)
        return match.group(1) + render(TABLES[table_id]) + match.group(4)

    text = MARKED.sub(replace, page)
    missing = sorted(set(TABLES) - set(found))
    if missing:
        raise SystemExit(f"{PAGE}: the markers of {missing} are missing")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args(argv)
    current = PAGE.read_text()
    wanted = rewrite(current)
    if args.check:
        if wanted != current:
            print(f"{PAGE} is stale: run python docs/bench/generate.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(wanted)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
