"""``python -m lepton_e2e.prebuild cluster|argocd``: the Go builds the tests need, run by
``make`` with the system Python (standard library only, no venv).

Why apart from ``python -m lepton_e2e``: that CLI needs the venv (yaml, the kubernetes
client), so a build started from it waits for pip. From here ``make test`` compiles the
cluster and Argo CD while pip downloads torch, which takes minutes off a cold run.
"""

from __future__ import annotations

import argparse
import sys

from lepton_e2e import argocd_build, binaries

BUILDS = {"cluster": binaries.ensure_built, "argocd": argocd_build.ensure_built}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_e2e.prebuild", description=__doc__)
    parser.add_argument("what", choices=sorted(BUILDS), nargs="+")
    for what in parser.parse_args(argv).what:
        print(BUILDS[what]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
