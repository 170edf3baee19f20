"""The cluster's teardown stops its components at once: one grace period for all.

Real processes, each detached in a session of its own with ``setsid --fork`` as the
cluster's components are (so init, not this test, reaps them).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from lepton_e2e.cluster import pid_file_running, stop_process_groups

# Ignores SIGTERM, as a component lingering in its graceful shutdown does.
STUBBORN = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
# Leaves on SIGTERM.
OBEDIENT = "pass"
# Says it is ready (its handler set) in a file, then sleeps.
READY_THEN_SLEEP = "; import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"


def _start(tmp_path: Path, name: str, code: str) -> Path:
    pid_file, ready = tmp_path / f"{name}.pid", tmp_path / f"{name}.ready"
    detach = ["setsid", "--fork", "sh", "-c", 'echo $$ > "$0" && exec "$@"', str(pid_file)]
    subprocess.run([*detach, sys.executable, "-c", code + READY_THEN_SLEEP, str(ready)], check=True)
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert time.monotonic() < deadline, f"{name} never started"
        time.sleep(0.05)
    return pid_file


def test_stubborn_groups_share_one_grace_period_then_are_killed(tmp_path: Path) -> None:
    pid_files = [_start(tmp_path, f"stubborn-{i}", STUBBORN) for i in range(3)]
    began = time.monotonic()
    stop_process_groups(pid_files, grace=1.0)
    took = time.monotonic() - began
    assert all(pid_file_running(pid_file) for pid_file in pid_files)  # SIGTERM ignored...
    deadline = time.monotonic() + 10
    while any(pid_file_running(pid_file) for pid_file in pid_files):  # ...SIGKILL is not
        assert time.monotonic() < deadline, "a group outlived SIGKILL"
        time.sleep(0.1)
    # In turn they would take three grace periods; at once, one (and polling).
    assert 1.0 <= took < 2.5


def test_obedient_groups_end_without_waiting_and_missing_files_are_skipped(
    tmp_path: Path,
) -> None:
    pid_file = _start(tmp_path, "obedient", OBEDIENT)
    stale = tmp_path / "stale.pid"
    stale.write_text("not a pid")
    began = time.monotonic()
    stop_process_groups([pid_file, stale, tmp_path / "absent.pid"], grace=30)
    assert time.monotonic() - began < 10
    assert not pid_file_running(pid_file)
