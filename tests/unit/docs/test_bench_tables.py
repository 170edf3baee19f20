"""docs/planner.md's replay tables are the JSON's figures (docs/bench/generate.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


def _generate() -> ModuleType:
    name = "bench_tables_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "docs" / "bench" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_committed_tables_are_what_the_json_says():
    """Fails after `make bench-replay` until `python docs/bench/generate.py` ran."""
    assert _generate().main(["--check"]) == 0


def test_a_figure_edited_by_hand_is_put_back():
    generate = _generate()
    page = generate.PAGE.read_text()
    ours = next(line for line in page.splitlines() if line.startswith("| **ours** | $"))
    tampered = page.replace(ours, ours.replace("$", "$1", 1), 1)
    assert tampered != page
    # What the JSON says, whatever the page said (stale or edited by hand).
    assert generate.rewrite(tampered) == generate.rewrite(page)
    assert ours.replace("$", "$1", 1) not in generate.rewrite(tampered)


def test_every_table_is_on_the_page_and_every_marker_is_known():
    generate = _generate()
    page = generate.PAGE.read_text()
    with pytest.raises(SystemExit, match="missing"):
        generate.rewrite(page.replace("<!-- replay-table:idle -->", "", 1))
    with pytest.raises(SystemExit, match="no table named"):
        generate.rewrite(page + "\n<!-- replay-table:nope -->\n<!-- /replay-table -->\n")


def test_the_tables_read_the_json_row_of_each_policy():
    generate = _generate()
    table = generate.render(generate.TABLES["day"])
    ours = generate._rows("diurnal")["ours"]
    assert f"| **ours** | ${ours['spendUSD']:.2f}, {ours['spendVsOptimum']:.2f}x" in table
