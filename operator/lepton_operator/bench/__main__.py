"""``python -m lepton_operator.bench replay``: the planner against its baselines on a trace.

    python -m lepton_operator.bench replay --trace e2e/traces/diurnal.csv \\
        --profiles e2e/traces/minilm-cpu-standard.json \\
        --profiles e2e/traces/minilm-gpu-l4.derived.json \\
        --pools e2e/traces/pools.yaml --slo-ms 100 --budget 10 \\
        --json out.json --plot out.png

``--all-traces`` replays every ``*.csv`` in ``--trace-dir`` (default: the folder of
``--trace``, else ``e2e/traces``) and writes ``replay-<trace>.json`` and ``.png`` into
``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lepton_operator.bench.replay import (
    Scenario,
    capacities_from_reports,
    parse_pools,
    parse_trace,
    table,
)
from lepton_operator.bench.replay import replay as run_replay
from lepton_operator.report import ReportError, parse_report


def _one(
    trace: Path, args: argparse.Namespace, json_path: Path | None, plot_path: Path | None
) -> bool:
    reports = [parse_report(path.read_text()) for path in args.profiles]
    pools = parse_pools(args.pools.read_text())
    known = {p.name for p in pools}
    for report in reports:
        if report.pool not in known:
            raise ValueError(f"report for pool {report.pool} names no pool in {args.pools}")
    capacities = capacities_from_reports(reports, args.slo_ms)
    scenario = Scenario(
        rates=parse_trace(trace.read_text()),
        capacities=capacities,
        pools=[p for p in pools if any(c.pool == p.name for c in capacities)],
        slo_ms=args.slo_ms,
        budget_usd=args.budget,
    )
    started = time.perf_counter()
    result = run_replay(scenario)
    elapsed = time.perf_counter() - started
    document = result.as_json()
    document["trace"] = str(trace)
    document["profiles"] = [str(p) for p in args.profiles]
    verdict = document["verdict"]
    print(
        f"\n{trace.stem}: {len(scenario.rates)} minutes, peak {max(scenario.rates):,.0f} req/s, "
        f"SLO p95 {args.slo_ms:g} ms, budget "
        f"{'none' if args.budget is None else f'${args.budget:g}/h'} "
        f"(replayed in {elapsed:.1f} s)"
    )
    print(table(result.summaries))
    print(
        f"bar (<= 1.15x optimum, >= 99% of minutes within SLO, cheaper than baselines "
        f"meeting the same SLO share): {'met' if verdict['met'] else 'MISSED'}"
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=2) + "\n")
    if plot_path is not None:
        from lepton_operator.bench.plot import plot

        plot(result, plot_path, title=f"{trace.stem} (SLO p95 {args.slo_ms:g} ms)")
    return bool(verdict["met"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_operator.bench")
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay", help=__doc__.splitlines()[0] if __doc__ else None)
    replay.add_argument("--trace", type=Path, help="CSV: minute,requests_per_second")
    replay.add_argument("--all-traces", action="store_true", help="every *.csv in --trace-dir")
    replay.add_argument("--trace-dir", type=Path)
    replay.add_argument(
        "--profiles", type=Path, action="append", required=True, help="a build report (repeat)"
    )
    replay.add_argument("--pools", type=Path, required=True, help="YAML list of pools")
    replay.add_argument("--slo-ms", type=float, required=True)
    replay.add_argument("--budget", type=float, default=None, help="$/h")
    replay.add_argument("--json", type=Path, help="write the results here (one trace)")
    replay.add_argument("--plot", type=Path, help="write a PNG here (one trace)")
    replay.add_argument("--out-dir", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    try:
        if args.all_traces:
            folder = args.trace_dir or (args.trace.parent if args.trace else Path("e2e/traces"))
            traces = sorted(folder.glob("*.csv"))
            if not traces:
                parser.error(f"no *.csv trace in {folder}")
            results = [
                _one(
                    trace,
                    args,
                    args.out_dir / f"replay-{trace.stem}.json",
                    args.out_dir / f"replay-{trace.stem}.png",
                )
                for trace in traces
            ]
            print(f"\nbar met on {sum(results)} of {len(results)} traces")
        elif args.trace is None:
            parser.error("--trace or --all-traces is needed")
        else:
            _one(args.trace, args, args.json, args.plot)
    except (OSError, ValueError, ReportError) as error:
        print(f"replay: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
