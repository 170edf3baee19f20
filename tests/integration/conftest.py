"""Real models for the builder's tests (see lepton_e2e.models): made here, never downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lepton_e2e import models


@dataclass
class SourceModel:
    sources_root: Path
    uri: str
    calibration_uri: str | None
    extra: Any


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> SourceModel:
    root = tmp_path_factory.mktemp("digits-sources")
    trained = models.train_digits(root / "models")
    return SourceModel(
        root, "pvc://models/digits.pt", "pvc://models/digits-calibration.npz", trained
    )


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> SourceModel:
    root = tmp_path_factory.mktemp("minilm-sources")
    models.copy_minilm(root / "models")
    return SourceModel(root, "pvc://models/minilm", "pvc://models/minilm-calibration.npz", None)
