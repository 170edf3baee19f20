"""Finished builds kept by what decides them, so the same build is never made twice.

A build is a pure function of its inputs, up to the noise of its measurements: the
model's and the calibration data's bytes, the request's settings (variants, batch
sizes, guard, the serving search's target), the builder's own code and libraries, and
the hardware it profiled on. ``build_key`` hashes exactly those, and nothing that only
says *where* or *who* (the repository's path, the report ConfigMap, the pool's name, the
model's name: a reused build's Triton models are renamed), so a model deleted and made
again, a second model of the same source in the namespace, or a spec changed and
changed back finds its build here instead of spending minutes (hours on a GPU pool)
making it again.

The operator names the folder (``buildCache`` in the request) only where the namespace
has its cache claim (``builds.sourceCacheClaim``): a model's own volume already keeps
its current build, and a second copy there would double its size for nothing. Entries
are written like the source cache's (``sourcecache``): under a writer's own temporary
name, then renamed. Each holds the report, the repository, and the SHA-256 of every
file, checked again before the entry is used (a half-copied or damaged entry is
dropped and the build made afresh). The cache trusts its writers as the source cache
does: everything that may write it runs the namespace's builds. The least recently
used entries beyond ``ENTRIES_KEPT`` are removed after each write.

Builds with a failed variant are not kept: a failure may be the moment's (memory, a
node), and its row would be served from the cache until the builder changed.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import uuid
from pathlib import Path
from typing import Any

from lepton_builder import tritonrepo
from lepton_builder.sourcecache import file_sha256

log = logging.getLogger(__name__)

ENTRIES_KEPT = 8
# The libraries whose versions change what a build makes or measures.
LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy", "nvidia-pytriton")
REPORT = "report.json"
FILES = "files.json"
REPOSITORY = "repository"


def builder_digest() -> str:
    """The builder's own code (every module of this package) and its libraries'
    versions: a builder that changed in any way makes its builds again."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".pbtxt", ".json"}:
            digest.update(str(path.relative_to(package)).encode() + b"\0")
            digest.update(path.read_bytes())
    for name in LIBRARIES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{name}={version}\0".encode())
    return digest.hexdigest()


def content_digest(path: Path) -> str:
    """A file's SHA-256, or a folder's over its files' relative paths and digests."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for name, sha256 in _file_digests(path).items():
        digest.update(f"{name}\0{sha256}\0".encode())
    return digest.hexdigest()


def hardware(device: str) -> dict[str, Any]:
    """What the profiles were measured on: the CPU's model and count, and the GPU's."""
    facts: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def build_key(
    decided_by: dict[str, Any], model: Path, calibration: Path | None, device: str
) -> str:
    """The key of a build: ``decided_by`` (the request's and settings' fields that
    decide what is built and measured, with no path and no name of a place in it), the
    bytes of the model and of its calibration data, the builder and the hardware."""
    parts = {
        "request": decided_by,
        "model": content_digest(model),
        "calibration": content_digest(calibration) if calibration else None,
        "builder": builder_digest(),
        "hardware": hardware(device),
    }
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def entry_path(cache: Path, key: str) -> Path:
    return cache / key


def reuse(cache: Path | None, key: str, repository: Path, model_name: str) -> dict[str, Any] | None:
    """The kept build's report, its repository copied to ``repository`` and its models
    named ``model_name`` (a model of another name may have kept it: the name is the
    clients', not the build's); None when there is none or it no longer checks (then
    it is removed and built afresh)."""
    if cache is None:
        return None
    entry = entry_path(cache, key)
    if not (entry / REPORT).is_file():
        return None
    try:
        report: dict[str, Any] = json.loads((entry / REPORT).read_text())
        files: dict[str, str] = json.loads((entry / FILES).read_text())
        kept = entry / REPOSITORY
        if _file_digests(kept) != files:
            log.warning("kept build %s no longer matches its digests; building afresh", key)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        if repository.exists():
            shutil.rmtree(repository)
        shutil.copytree(kept, repository)
        _rename(report, repository, model_name)
        os.utime(entry / REPORT)  # used: the last to be removed
    except (OSError, ValueError, KeyError) as error:  # removed beside us, unreadable: build
        log.warning("could not reuse kept build %s: %s", key, error)
        shutil.rmtree(repository, ignore_errors=True)  # no half copy under the new build
        return None
    log.info("reused the build kept as %s (made %s)", key, report.get("builtAt", "?"))
    return report


def keep(cache: Path | None, key: str, repository: Path, report: dict[str, Any]) -> None:
    """Keep a finished build whose every variant ended on its merits (none failed)."""
    if cache is None or any(row.get("status") == "failed" for row in report["variants"]):
        return
    entry = entry_path(cache, key)
    if entry.exists():
        return
    partial = entry.with_name(f"{key}.partial-{uuid.uuid4().hex}")
    try:
        partial.mkdir(parents=True)
        shutil.copytree(repository, partial / REPOSITORY)
        (partial / FILES).write_text(json.dumps(_file_digests(partial / REPOSITORY)))
        (partial / REPORT).write_text(json.dumps(report))
        partial.rename(entry)
        log.info("kept the build as %s", entry)
    except OSError as error:  # a full or read-only volume costs the next build its time
        if not entry.exists():
            log.warning("could not keep the build in the build cache: %s", error)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    _remove_least_used(cache)


def reused_report(
    kept: dict[str, Any], key: str, pool: str, repository: str, seconds: float
) -> dict[str, Any]:
    """The kept report as this build's: its place and pool, and what it reused."""
    report = copy.deepcopy(kept)
    report.update(pool=pool, repository=repository, buildSeconds=round(seconds, 1))
    report["reused"] = {
        "key": key,
        "builtAt": kept.get("builtAt"),
        "buildSeconds": kept.get("buildSeconds"),
    }
    report["builtAt"] = kept.get("builtAt")
    return report


def _rename(report: dict[str, Any], repository: Path, model_name: str) -> None:
    for row in report["variants"]:
        old = row.get("tritonModel")
        if old and old != model_name:
            tritonrepo.rename_model(repository / row["name"], old, model_name)
            row["tritonModel"] = model_name


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _remove_least_used(cache: Path) -> None:
    entries = [e for e in cache.iterdir() if ".partial-" not in e.name and (e / REPORT).is_file()]
    if len(entries) <= ENTRIES_KEPT:
        return
    entries.sort(key=lambda e: (e / REPORT).stat().st_mtime, reverse=True)
    for old in entries[ENTRIES_KEPT:]:
        log.info("removing the least recently used kept build %s", old.name)
        shutil.rmtree(old, ignore_errors=True)
