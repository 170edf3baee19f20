"""The replay's picture: load, replicas per pool (ours and the optimum) and cumulative
spend per policy. matplotlib is imported here only, when a plot is asked for."""

from __future__ import annotations

import itertools
from pathlib import Path

from lepton_operator.bench.replay import Result


def plot(result: Result, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenario = result.scenario
    hours = [m / 60 for m in range(len(scenario.rates))]
    figure, (load, replicas, spend) = plt.subplots(
        3, 1, figsize=(9, 8), sharex=True, height_ratios=[1, 1.2, 1.4]
    )
    load.plot(hours, scenario.rates, color="black", linewidth=0.8)
    load.set_yscale("log")
    load.set_ylabel("load (req/s)")
    load.set_title(title)

    by_name = {run.name: run for run in result.runs}
    styles = itertools.cycle(["-", "--", ":", "-."])
    for name in ("ours", "optimum"):
        run = by_name[name]
        style = "-" if name == "ours" else ":"
        for pool in scenario.pools:
            replicas.step(
                hours,
                run.paid[pool.name],
                where="post",
                linestyle=style,
                linewidth=1.0,
                label=f"{name} {pool.name}",
            )
    replicas.set_ylabel("replicas paid")
    replicas.legend(fontsize=7, ncol=2, loc="upper left")

    for run in result.runs:
        total, cumulative = 0.0, []
        for cost in run.cost_usd:
            total += cost
            cumulative.append(total)
        emphasis = run.name in ("ours", "optimum")
        spend.plot(
            hours,
            cumulative,
            linestyle="-" if emphasis else next(styles),
            linewidth=2.0 if emphasis else 0.9,
            label=f"{run.name} ${total:.2f}",
        )
    spend.set_ylabel("cumulative spend ($)")
    spend.set_xlabel("hour")
    spend.legend(fontsize=7, ncol=2, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=72)
    plt.close(figure)
