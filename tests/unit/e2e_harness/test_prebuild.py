"""The Go builds must start before the venv exists: ``make test`` runs them with the
system Python while pip downloads, so an import from outside the standard library in
``lepton_e2e.prebuild`` (or what it imports) would break every cold run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parents[3] / "e2e"


def test_the_go_builds_start_with_the_standard_library_alone():
    # -S: no site-packages, so neither the venv's packages nor the system's are importable.
    result = subprocess.run(
        [sys.executable, "-S", "-m", "lepton_e2e.prebuild", "--help"],
        env={"PYTHONPATH": str(E2E), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "{argocd,cluster}" in result.stdout


def test_prometheus_is_built_with_only_kubernetes_discovery_and_its_tags_key_the_cache():
    from dataclasses import replace

    from lepton_e2e import binaries

    prometheus = binaries.STAMPED_TOOLS[0]
    args = prometheus.install_args()
    assert args[:2] == ["-tags", "remove_all_sd,enable_kubernetes_sd"]
    assert args[-1] == prometheus.spec and "-ldflags" in args
    assert binaries.PROMTOOL.tags == prometheus.tags  # promtool checks the same configs
    # Other tags make another binary: another cache folder.
    assert replace(prometheus, tags=()).identity() != prometheus.identity()
    assert binaries.GOFAKES3.install_args()[0] == "-ldflags"  # no tags, no -tags
