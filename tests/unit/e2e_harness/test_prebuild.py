"""The Go builds must start before the venv exists: ``make test`` runs them with the
system Python while pip downloads, so an import from outside the standard library in
``lepton_e2e.prebuild`` (or what it imports) would break every cold run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


# A build run in a child process: it holds the build lock while its ``build`` waits for
# its niceness to drop below where it started (or for 20 s), then writes that niceness
# into the folder it builds and counts itself in ``builds``.
_SLOW_BUILD = """
import os, sys, time
from pathlib import Path
from lepton_e2e.binaries import build_once

target, builds = Path(sys.argv[1]), Path(sys.argv[2])
start = os.nice(0)

def build(staging):
    with builds.open("a") as out:
        out.write("built\\n")
    deadline = time.monotonic() + 20
    while os.nice(0) >= start > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    (staging / "niceness").write_text(str(os.nice(0)))

build_once(target, target / "niceness", build)
"""


def _start_slow_build(target: Path, builds: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _SLOW_BUILD, str(target), str(builds)],
        env={"PYTHONPATH": str(E2E), "PATH": os.environ["PATH"]},
        start_new_session=True,
        preexec_fn=lambda: os.nice(19),
    )


def test_a_second_process_waits_for_the_build_under_way_and_hurries_it(tmp_path: Path):
    from lepton_e2e.binaries import build_once

    target, builds = tmp_path / "argocd-0123", tmp_path / "builds"
    builder = _start_slow_build(target, builds)
    try:
        lock = target.with_name(target.name + ".lock")
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.read_text().strip() == str(builder.pid)  # its own process group

        def must_not_build(staging: Path) -> None:
            raise AssertionError("built a second time beside the first build")

        assert build_once(target, target / "niceness", must_not_build) == target
    finally:
        assert builder.wait(timeout=60) == 0
    assert builds.read_text() == "built\n"  # once
    # Raised from the lowest priority to the normal one, where this process may (root).
    expected = "0" if os.geteuid() == 0 else "19"
    assert (target / "niceness").read_text() == expected


def test_a_failed_build_leaves_no_target_and_the_next_call_builds_again(tmp_path: Path):
    import pytest

    from lepton_e2e.binaries import build_once

    target = tmp_path / "cluster-bin-0123"

    def failing(staging: Path) -> None:
        (staging / "half").write_text("a binary cut short")
        raise subprocess.CalledProcessError(1, ["go", "build"])

    with pytest.raises(subprocess.CalledProcessError):
        build_once(target, target / "done", failing)
    assert not target.exists()
    assert build_once(target, target / "done", lambda s: (s / "done").write_text("")) == target
    assert (target / "done").exists()


def test_background_prebuild_returns_at_once_and_its_process_logs_what_it_did(tmp_path: Path):
    """Run for real, against a cache where Argo CD is already built (the warm case):
    the command returns, and its background process finds the build and says where."""
    env = {"PYTHONPATH": str(E2E), "PATH": os.environ["PATH"], "LEPTON_CACHE_DIR": str(tmp_path)}
    key = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lepton_e2e import argocd_build; print(argocd_build.bin_dir())",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(key).mkdir(parents=True)
    (Path(key) / "argocd").write_text("")
    started = subprocess.run(
        [sys.executable, "-S", "-m", "lepton_e2e.prebuild", "--background", "argocd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    log = tmp_path / "prebuild-argocd.log"
    assert f"(log: {log})" in started.stdout
    deadline = time.monotonic() + 30
    while key not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.read_text().strip() == key
