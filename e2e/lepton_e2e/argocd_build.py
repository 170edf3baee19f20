"""Builds Argo CD (one multi-call binary, its CRDs and git wrapper) from Go modules, once
per pinned version, into a cache folder keyed by ``e2e/argocd/go.mod``, ``go.sum`` and
the ldflags, like the cluster's binaries.

Apart from ``argocd.py`` (which runs it), and standard library only, for the same reason
as ``binaries.py``: ``make`` builds it with the system Python while pip fills the venv.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lepton_e2e import binaries

ARGOCD_SRC = Path(__file__).resolve().parents[1] / "argocd"
VERSION = "3.6.1"
MODULE = "github.com/argoproj/argo-cd/v3"
# Argo CD 3.6 needs Go 1.27; the go command fetches this toolchain from the module proxy.
GOTOOLCHAIN = "go1.27.3"
COMPONENTS = ("argocd-repo-server", "argocd-application-controller")


def _ldflags() -> str:
    package = f"{MODULE}/common"
    # Unstamped, it reports version 99.99.99, which hides which Argo CD ran a test.
    stamps = {
        "version": VERSION,
        "gitTag": f"v{VERSION}",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "kubectlVersion": "v0.37.0",
    }
    return " ".join(["-s", "-w"] + [f"-X {package}.{k}={v}" for k, v in stamps.items()])


def cache_key() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update(name.encode())
        digest.update((ARGOCD_SRC / name).read_bytes())
    digest.update(f"{GOTOOLCHAIN} {_ldflags()}".encode())
    return digest.hexdigest()[:16]


def bin_dir() -> Path:
    return binaries.cache_root() / f"argocd-{cache_key()}"


def ensure_built(log: bool = True) -> Path:
    """The folder holding ``argocd``, its CRDs and ``git-verify-wrapper.sh``, built first
    when the cache misses (cold: 9 to 20 minutes on 2 cores), or once the build another
    process started ends (``make test`` starts one in the background).

    The CRDs and the wrapper are copied from the very module the binary was built from,
    so they always match it. A build lands in a temporary folder renamed into place only
    when complete, so an interrupted build is never reused.
    """
    target = bin_dir()
    if (target / "argocd").exists():
        return target
    if shutil.which("go") is None:
        raise RuntimeError("Go is needed to build Argo CD; `make deps` checks for it")
    out = sys.stderr if log else subprocess.DEVNULL

    def build(staging: Path) -> None:
        started = time.monotonic()
        print(f"building Argo CD {VERSION} into {target}", file=sys.stderr)
        _build(staging, out)
        (staging / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
        print(f"built Argo CD in {time.monotonic() - started:.0f} s", file=sys.stderr)

    return binaries.build_once(target, target / "argocd", build)


def _build(staging: Path, out: Any) -> None:
    env = {**os.environ, "GOTOOLCHAIN": GOTOOLCHAIN, "GOFLAGS": "-mod=mod -buildvcs=false"}
    subprocess.run(
        ["go", "build", "-ldflags", _ldflags(), "-o", str(staging / "argocd"), f"{MODULE}/cmd"],
        cwd=ARGOCD_SRC,
        env=env,
        check=True,
        stdout=out,
        stderr=out,
    )
    module_dir = Path(
        subprocess.run(
            ["go", "list", "-m", "-f", "{{.Dir}}", MODULE],
            cwd=ARGOCD_SRC,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    for crd in ("application-crd.yaml", "appproject-crd.yaml"):
        shutil.copy(module_dir / "manifests" / "crds" / crd, staging / crd)
    # The defaults a real install ships in argocd-cm (among them: status-only updates do
    # not refresh an Application unless its health changes).
    shutil.copy(module_dir / "manifests" / "base" / "config" / "argocd-cm.yaml", staging)
    wrapper = staging / "git-verify-wrapper.sh"
    shutil.copy(module_dir / "hack" / "git-verify-wrapper.sh", wrapper)
    wrapper.chmod(0o755)  # the module cache keeps files read-only, and not executable
    for component in COMPONENTS:
        (staging / component).symlink_to("argocd")
