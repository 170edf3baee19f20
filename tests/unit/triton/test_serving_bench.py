"""The pure helpers of ``make bench-serving`` (runtimes/triton/bench.py, a script)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "runtimes" / "triton" / "bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    name = "triton_serving_bench"
    spec = importlib.util.spec_from_file_location(name, BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_summary_is_percentiles_in_ms_and_sequential_throughput(bench) -> None:
    seconds = [0.010] * 19 + [0.100]
    summary = bench.summarize(seconds, batch=8)
    assert summary.p50_ms == 10.0
    assert summary.p95_ms == pytest.approx(14.5)  # linear between the 19th and 20th
    assert summary.samples_per_s == pytest.approx(8 * 20 / 0.29, abs=0.01)
    assert summary.iterations == 20


def test_nothing_timed_is_an_error_not_a_zero(bench) -> None:
    with pytest.raises(ValueError, match="no timed calls"):
        bench.summarize([], batch=1)


def test_overhead_is_relative_to_the_raw_run(bench) -> None:
    assert bench.overhead(14.7, 16.8) == pytest.approx(0.1429, abs=1e-4)
    assert bench.overhead(10.0, 9.0) == pytest.approx(-0.1)


def test_the_table_shows_both_sides_and_the_overhead(bench) -> None:
    row = bench.Row(
        1,
        bench.Summary(14.7, 16.0, 68.0, 100),
        bench.Summary(16.8, 19.0, 59.5, 100),
        0.0,
    )
    lines = bench.table([row]).splitlines()
    assert lines[0].startswith("| batch | raw p50 / p95 (ms) | Triton p50 / p95 (ms)")
    assert lines[2] == (
        "| 1 | 14.7 / 16.0 | 16.8 / 19.0 | 68.0 | 59.5 | +14% (+2.1 ms) | 0.0e+00 |"
    )


def test_alternate_times_every_call_at_least_the_minimum(bench) -> None:
    order: list[str] = []
    timings = bench.alternate(
        {"raw": lambda: order.append("raw"), "triton": lambda: order.append("triton")}, 0, 3
    )
    assert order == ["raw", "triton"] * 3
    assert [len(t) for t in timings.values()] == [3, 3]


def test_alternate_in_blocks_runs_each_side_a_block_at_a_time(bench) -> None:
    order: list[str] = []
    bench.alternate(
        {"raw": lambda: order.append("raw"), "triton": lambda: order.append("triton")}, 0, 2, 2
    )
    assert order == ["raw", "raw", "triton", "triton"]
