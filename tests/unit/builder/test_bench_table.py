"""docs/builder.md's benchmark table is docs/bench/builder.json's own, and the JSON
carries what the issue's acceptance reads (mean, p5, speedups, every fallback try)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "docs" / "bench"))

import builder_table  # noqa: E402


def test_the_page_shows_the_json():
    assert builder_table.main(["--check"]) == 0


def test_every_fallback_try_is_a_row_of_the_table():
    document = json.loads(builder_table.DATA.read_text())
    rendered = builder_table.render(document)
    for model in document["models"]:
        assert model["heldOutSamples"] > 0 and model["statistic"]
        for row in model["variants"]:
            assert {"variant", "device", "accepted", "mean", "p5", "speedupB1"} <= set(row)
            tries = row.get("fallback") or []
            for number, attempt in enumerate(tries):
                assert f"try {number}: {attempt['fp32Nodes']} nodes fp32" in rendered


def test_rendering_names_the_training_budget_and_the_reason():
    document = {
        "measured": "2026-12-05",
        "threads": 2,
        "secondsPerBatchSize": 3,
        "models": [
            {
                "model": "m",
                "statistic": "mean and p5",
                "calibrationSamples": 8,
                "heldOutSamples": 2,
                "inputs": "generated",
                "variants": [
                    {
                        "variant": "distilled",
                        "status": "rejected",
                        "mean": 0.5,
                        "p5": 0.25,
                        "judgedSamples": 2,
                        "speedupB1": 3.0,
                        "speedupB8": None,
                        "reason": "cosine mean 0.5000 below the guard 0.99",
                        "trainingSeconds": 60.0,
                    }
                ],
            }
        ],
    }
    table = builder_table.render(document)
    assert (
        "| distilled (60 s training) | rejected | 0.5000 | 0.2500 | 2 | 3.00x |  | "
        "cosine mean 0.5000 below the guard 0.99 |"
    ) in table
