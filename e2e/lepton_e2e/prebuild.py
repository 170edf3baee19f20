"""``python -m lepton_e2e.prebuild [--background] cluster|argocd``: the Go builds the tests
need, run by ``make`` with the system Python (standard library only, no venv).

Why apart from ``python -m lepton_e2e``: that CLI needs the venv (yaml, the kubernetes
client), so a build started from it waits for pip. From here ``make test`` compiles the
cluster while pip downloads torch, which takes minutes off a cold run.

``--background`` starts the builds in a process of their own at the lowest CPU priority
and returns at once: ``make test`` builds Argo CD so, since only the GitOps tests need
it. Cold, the cluster's build then has both cores (the tests wait for it), and Argo CD's
uses what the cluster's build, lint and the mostly waiting e2e tests leave idle; a test
that needs it first waits for it and raises its priority (``binaries.build_once``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from lepton_e2e import argocd_build, binaries

BUILDS = {"cluster": binaries.ensure_built, "argocd": argocd_build.ensure_built}
LOWEST_PRIORITY = 19


def start_in_background(what: list[str]) -> Path:
    """Start ``python -m lepton_e2e.prebuild what...`` in a session of its own at the
    lowest CPU priority, its output in a log file; the path of that log."""
    log = binaries.cache_root() / f"prebuild-{'-'.join(what)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        subprocess.Popen(
            [sys.executable, "-m", "lepton_e2e.prebuild", *what],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the one a waiter raises
            preexec_fn=lambda: os.nice(LOWEST_PRIORITY),
        )
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_e2e.prebuild", description=__doc__)
    parser.add_argument(
        "--background", action="store_true", help="build at the lowest priority, return at once"
    )
    parser.add_argument("what", choices=sorted(BUILDS), nargs="+")
    args = parser.parse_args(argv)
    if args.background:
        log = start_in_background(args.what)
        print(f"building {' '.join(args.what)} in the background if not cached (log: {log})")
        return 0
    for what in args.what:
        print(BUILDS[what]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
