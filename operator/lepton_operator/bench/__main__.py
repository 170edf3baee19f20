"""``python -m lepton_operator.bench replay``: the planner against its peers on traces.

    python -m lepton_operator.bench replay --trace e2e/traces/diurnal.csv \\
        --profiles e2e/traces/minilm-cpu-standard.json \\
        --profiles e2e/traces/minilm-gpu-l4.derived.json \\
        --pools e2e/traces/pools.yaml --slo-ms 100 --budget 10 \\
        --json out.json --plot out.png

``--all-traces`` replays every ``*.csv`` in ``--trace-dir`` (default: the folder of
``--trace``, else ``e2e/traces``), writing ``replay-<trace>.json`` and ``.png`` into
``--out-dir``, and then the generated families (``bench.families``), writing
``replay-families.json`` and the tables of ``replay-families.md`` from it. The two-pool
rule is tuned once over all of those traces together (never per trace), and replayed
with its tuned settings beside the settings issue 25 wrote down. The first seed of
each family is replayed again with the capacity model off by +20% and -20%.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from lepton_operator.bench.families import traces as family_traces
from lepton_operator.bench.replay import (
    MEAN_SPEND_BAR,
    MEAN_SPEND_STRETCH,
    Ours,
    Result,
    Run,
    Scenario,
    TwoPoolSettings,
    capacities_from_reports,
    optimum,
    parse_pools,
    parse_trace,
    simulate,
    table,
    tune_two_pool,
)
from lepton_operator.bench.replay import replay as run_replay
from lepton_operator.report import ReportError, parse_report

MODEL_ERRORS = (0.2, -0.2)


def _scenario(rates: list[float], args: argparse.Namespace) -> Scenario:
    reports = [parse_report(path.read_text()) for path in args.profiles]
    pools = parse_pools(args.pools.read_text())
    known = {p.name for p in pools}
    for report in reports:
        if report.pool not in known:
            raise ValueError(f"report for pool {report.pool} names no pool in {args.pools}")
    capacities = capacities_from_reports(reports, args.slo_ms)
    return Scenario(
        rates=rates,
        capacities=capacities,
        pools=[p for p in pools if any(c.pool == p.name for c in capacities)],
        slo_ms=args.slo_ms,
        budget_usd=args.budget,
    )


def _verdict_line(verdict: dict[str, Any]) -> str:
    missed = []
    if not verdict["sloWithinBar"]:
        missed.append("under 99% of minutes within the SLO")
    if verdict["cheaperPeersAtSameOrBetterSLO"]:
        missed.append(
            "cheaper at the same SLO share: " + ", ".join(verdict["cheaperPeersAtSameOrBetterSLO"])
        )
    if verdict["cheaperThanOptimumWithEveryMinuteWithinSLO"]:
        missed.append(
            "optimum beaten by " + ", ".join(verdict["cheaperThanOptimumWithEveryMinuteWithinSLO"])
        )
    return "targets met" if not missed else "MISSED: " + "; ".join(missed)


def _one(
    name: str,
    scenario: Scenario,
    two_pool: TwoPoolSettings | None,
    best: Run | None,
    json_path: Path | None,
    plot_path: Path | None,
    extra: dict[str, Any],
) -> tuple[Result, dict[str, Any]]:
    started = time.perf_counter()
    result = run_replay(scenario, two_pool, best)
    elapsed = time.perf_counter() - started
    document = result.as_json() | extra
    print(
        f"\n{name}: {len(scenario.rates)} minutes, peak {max(scenario.rates):,.0f} req/s, "
        f"SLO p95 {scenario.slo_ms:g} ms, budget "
        f"{'none' if scenario.budget_usd is None else f'${scenario.budget_usd:g}/h'}"
        + (f", capacity model off by {scenario.model_error:+.0%}" if scenario.model_error else "")
        + f" (replayed in {elapsed:.1f} s)"
    )
    print(table(result.summaries))
    print(_verdict_line(document["verdict"]))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=2) + "\n")
    if plot_path is not None:
        from lepton_operator.bench.plot import plot

        plot(result, plot_path, title=f"{name} (SLO p95 {scenario.slo_ms:g} ms)")
    return result, document


def _family_rows(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per policy over a family's traces: mean spend/optimum, mean and worst share of
    minutes within the SLO."""
    names = [p["policy"] for p in documents[0]["policies"]]
    rows = []
    for name in names:
        found = [next(p for p in d["policies"] if p["policy"] == name) for d in documents]
        rows.append(
            {
                "policy": name,
                "meanSpendVsOptimum": round(
                    sum(p["spendVsOptimum"] for p in found) / len(found), 4
                ),
                "meanOverSLOShare": round(sum(p["overSLOShare"] for p in found) / len(found), 4),
                "worstOverSLOShare": max(p["overSLOShare"] for p in found),
            }
        )
    return rows


def _family_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'policy':<22}{'mean x optimum':>16}{'mean over SLO':>15}{'worst over SLO':>16}"]
    for r in rows:
        lines.append(
            f"{r['policy']:<22}{r['meanSpendVsOptimum']:>16.3f}"
            f"{r['meanOverSLOShare']:>15.2%}{r['worstOverSLOShare']:>16.2%}"
        )
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    """``replay-families.md``: every table written from ``replay-families.json``."""
    out = [
        "# Replay over trace families (generated from replay-families.json; do not edit)",
        "",
        f"Mean of ours' spend/optimum over all {summary['traceCount']} traces: "
        f"**{summary['oursMeanSpendVsOptimum']:.3f}** (target <= {MEAN_SPEND_BAR}, "
        f"stretch <= {MEAN_SPEND_STRETCH}). Traces with every issue-25 target met: "
        f"{summary['tracesMet']} of {summary['traceCount']}.",
        "",
        f"Two-pool rule tuned over all traces: headroom {summary['twoPoolTuned']['headroom']}, "
        f"lookback {summary['twoPoolTuned']['lookbackMinutes']} min, "
        f"hold {summary['twoPoolTuned']['holdMinutes']} min.",
        "",
        "## Per trace: ours",
        "",
        "| trace | x optimum | over SLO | greedy x optimum | targets |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in summary["traces"]:
        rows = {p["policy"]: p for p in t["policies"]}
        out.append(
            f"| {t['trace']} | {rows['ours']['spendVsOptimum']:.3f} | "
            f"{rows['ours']['overSLOShare']:.2%} | "
            f"{rows['greedy-per-minute']['spendVsOptimum']:.3f} | "
            f"{_verdict_line(t['verdict'])} |"
        )
    for family, rows in summary["families"].items():
        out += [
            "",
            f"## Family {family}: means over its traces",
            "",
            "| policy | mean x optimum | mean over SLO | worst over SLO |",
            "| --- | --- | --- | --- |",
        ]
        for r in rows:
            out.append(
                f"| {r['policy']} | {r['meanSpendVsOptimum']:.3f} | "
                f"{r['meanOverSLOShare']:.2%} | {r['worstOverSLOShare']:.2%} |"
            )
    out += [
        "",
        "## Capacity model off (first seed of each family)",
        "",
        "Ours plans with the model off; beside it, ours planning with the world's own "
        "capacities (what the correction could at best learn), on the same world.",
        "",
        "| trace | model error | ours x optimum | ours over SLO "
        "| with the world's model: x optimum, over SLO "
        "| cheapest peer at ours' SLO share or better |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in summary["modelError"]:
        out.append(
            f"| {t['trace']} | {t['modelError']:+.0%} | {t['oursSpendVsOptimum']:.3f} | "
            f"{t['oursOverSLOShare']:.2%} | {t['oursWithWorldModelSpendVsOptimum']:.3f}, "
            f"{t['oursWithWorldModelOverSLOShare']:.2%} | {t['bestPeer'] or '-'} |"
        )
    for error in sorted({t["modelError"] for t in summary["modelError"]}, reverse=True):
        group = [t for t in summary["modelError"] if t["modelError"] == error]
        out.append(
            f"| mean | {error:+.0%} | {_mean(group, 'oursSpendVsOptimum'):.3f} | "
            f"{_mean(group, 'oursOverSLOShare'):.2%} | "
            f"{_mean(group, 'oursWithWorldModelSpendVsOptimum'):.3f}, "
            f"{_mean(group, 'oursWithWorldModelOverSLOShare'):.2%} | |"
        )
    out += [
        "",
        "## Two-pool rule: the grid",
        "",
        "| headroom | lookback min | hold min | mean x optimum | mean within SLO "
        "| worst within SLO |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for g in summary["twoPoolGrid"]:
        mark = " (chosen)" if g["chosen"] else ""
        out.append(
            f"| {g['headroom']}{mark} | {g['lookbackMinutes']} | {g['holdMinutes']} | "
            f"{g['meanSpendVsOptimum']:.3f} | {g['meanWithinSLOShare']:.2%} | "
            f"{g['worstWithinSLOShare']:.2%} |"
        )
    return "\n".join(out) + "\n"


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in rows) / len(rows)


def _all(args: argparse.Namespace, folder: Path) -> bool:
    shipped = sorted(folder.glob("*.csv"))
    if not shipped:
        raise ValueError(f"no *.csv trace in {folder}")
    named = [(t.stem, "shipped", _scenario(parse_trace(t.read_text()), args)) for t in shipped]
    generated = family_traces()
    named += [(t.name, t.family, _scenario(t.rates, args)) for t in generated]
    started = time.perf_counter()
    optima = [optimum(s) for _, _, s in named]  # solved once, for the tuning and the tables
    tuned, grid = tune_two_pool([s for _, _, s in named], optima=optima)
    print(
        f"optimum solved and two-pool rule tuned over {len(named)} traces in "
        f"{time.perf_counter() - started:.1f} s: "
        f"headroom {tuned.headroom}, lookback {tuned.lookback} min, hold {tuned.hold} min"
    )
    documents = []
    for (name, family, scenario), path, solved in zip(
        named, [*shipped, *([None] * len(generated))], optima, strict=True
    ):
        out = args.out_dir if path is not None else None
        _, document = _one(
            name,
            scenario,
            tuned,
            solved,
            out / f"replay-{name}.json" if out else None,
            out / f"replay-{name}.png" if out else None,
            {"trace": str(path) if path else name, "family": family}
            | ({"profiles": [str(p) for p in args.profiles]} if path else {}),
        )
        document["trace"] = name
        documents.append(document)
    families: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        families.setdefault(document["family"], []).append(document)
    family_rows = {family: _family_rows(docs) for family, docs in families.items()}
    for family, rows in family_rows.items():
        print(f"\nfamily {family} ({len(families[family])} traces): means over its traces")
        print(_family_table(rows))
    errors = []
    for trace in generated:
        if trace.seed != generated[0].seed:
            continue
        for error in MODEL_ERRORS:
            scenario = _scenario(trace.rates, args)
            scenario = replace(scenario, model_error=error)
            _, document = _one(trace.name, scenario, tuned, None, None, None, {})
            ours = next(p for p in document["policies"] if p["policy"] == "ours")
            peers = [
                p
                for p in document["policies"]
                if p["policy"] not in ("ours", "optimum", "greedy-per-minute")
                and p["overSLOShare"] <= ours["overSLOShare"]
            ]
            best = min(peers, key=lambda p: p["spendUSD"], default=None)
            # The yardstick for the correction: ours planning with the world's own model.
            world = scenario.truth()
            known = simulate(world, Ours(world))
            floor = next(p for p in document["policies"] if p["policy"] == "optimum")["spendUSD"]
            errors.append(
                {
                    "trace": trace.name,
                    "modelError": error,
                    "oursSpendVsOptimum": ours["spendVsOptimum"],
                    "oursOverSLOShare": ours["overSLOShare"],
                    "oursWithWorldModelSpendVsOptimum": round(sum(known.cost_usd) / floor, 4),
                    "oursWithWorldModelOverSLOShare": round(
                        known.over_slo_minutes(world.slo_ms) / len(world.rates), 4
                    ),
                    "bestPeer": None
                    if best is None
                    else f"{best['policy']} {best['spendVsOptimum']:.3f}x",
                }
            )
    ratios = [
        next(p for p in d["policies"] if p["policy"] == "ours")["spendVsOptimum"] for d in documents
    ]
    summary = {
        "traceCount": len(documents),
        "oursMeanSpendVsOptimum": round(sum(ratios) / len(ratios), 4),
        "meanSpendBar": MEAN_SPEND_BAR,
        "meanSpendWithinBar": sum(ratios) / len(ratios) <= MEAN_SPEND_BAR,
        "tracesMet": sum(1 for d in documents if d["verdict"]["met"]),
        "twoPoolTuned": {
            "headroom": tuned.headroom,
            "lookbackMinutes": tuned.lookback,
            "holdMinutes": tuned.hold,
        },
        "twoPoolGrid": grid,
        "families": family_rows,
        "traces": [
            {
                "trace": d["trace"],
                "family": d["family"],
                "minutes": d["minutes"],
                "peakRps": d["peakRps"],
                "policies": d["policies"],
                "verdict": d["verdict"],
            }
            for d in documents
        ],
        "modelError": errors,
    }
    print(
        f"\nours: mean spend/optimum {summary['oursMeanSpendVsOptimum']:.3f} over "
        f"{len(documents)} traces (target <= {MEAN_SPEND_BAR}, stretch <= "
        f"{MEAN_SPEND_STRETCH}); every target met on {summary['tracesMet']} of them"
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "replay-families.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out_dir / "replay-families.md").write_text(markdown(summary))
    return bool(summary["meanSpendWithinBar"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_operator.bench")
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay", help=__doc__.splitlines()[0] if __doc__ else None)
    replay.add_argument("--trace", type=Path, help="CSV: minute,requests_per_second")
    replay.add_argument(
        "--all-traces", action="store_true", help="every *.csv in --trace-dir, then the families"
    )
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
            _all(args, folder)
        elif args.trace is None:
            parser.error("--trace or --all-traces is needed")
        else:
            scenario = _scenario(parse_trace(args.trace.read_text()), args)
            _one(
                args.trace.stem,
                scenario,
                None,
                None,
                args.json,
                args.plot,
                {"trace": str(args.trace), "profiles": [str(p) for p in args.profiles]},
            )
    except (OSError, ValueError, ReportError) as error:
        print(f"replay: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
