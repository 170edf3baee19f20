"""Downloaded sources kept by content, so a rebuild does not download the model again.

The operator names the folder in the build request (``sourceCache``: the namespace's
cache claim where it has one, shared by all its models, else a folder on the model's
ReadWriteMany volume; both outlive every build Job); without it nothing is kept.
Only what its content names can be found again:

- ``https://`` and ``s3://`` files by the spec's ``sha256`` (``sha256/<digest>/<name>``);
  without a ``sha256`` there is no key, and every build downloads;
- ``hf://`` folders by their commit (``hf/<org>/<name>/<commit>/``), which
  ``lepton_builder.hub`` checks file by file against the Hub's listing before use.

An entry is trusted no more than a download: a file is hashed again before it is used,
and one that no longer matches is deleted and downloaded afresh. Entries are written
under a temporary name of their writer's own and renamed, so a build that dies
mid-copy leaves no half entry, and two builds keeping the same entry at once (a
namespace's cache is shared) never write into one copy.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks (the sources and the cache check it)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(cache: Path, sha256: str, name: str) -> Path:
    return cache / "sha256" / sha256 / name


def cached_file(cache: Path | None, sha256: str | None, name: str) -> Path | None:
    """The cached file with this content, hashed again; None when there is none."""
    if cache is None or sha256 is None:
        return None
    entry = file_entry(cache, sha256, name)
    if not entry.is_file():
        return None
    if file_sha256(entry) != sha256:
        log.warning("cached %s no longer matches its sha256; downloading again", entry)
        shutil.rmtree(entry.parent, ignore_errors=True)
        return None
    log.info("%s: from the source cache, sha256 checked", name)
    return entry


def keep_file(cache: Path | None, sha256: str | None, path: Path) -> None:
    """Copy a checked download into the cache (nothing without a cache or a key)."""
    if cache is None or sha256 is None:
        return
    entry = file_entry(cache, sha256, path.name)
    _place(path, entry, shutil.copyfile)


def hub_entry(cache: Path, repo: str, commit: str) -> Path:
    return cache / "hf" / repo / commit


def keep_folder(source: Path, entry: Path) -> None:
    """Copy a checked Hub folder into the cache."""
    _place(source, entry, shutil.copytree)


def _place(source: Path, entry: Path, copy: Callable[[Path, Path], object]) -> None:
    """Copy under a name of this writer's own, then rename: a namespace's cache is shared
    by every build there, and two that keep the same entry at once must not write into
    one temporary copy. A file's rename replaces the other's whole, equal copy; a
    folder's fails on the other's, which stays."""
    if entry.exists():
        return
    partial = entry.with_name(f"{entry.name}.partial-{uuid.uuid4().hex}")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        copy(source, partial)
        partial.rename(entry)
        log.info("kept %s in the source cache", entry)
    except OSError as error:  # a full or read-only volume costs the next build a download
        if not entry.exists():
            log.warning("could not keep %s in the source cache: %s", entry, error)
    finally:
        _remove(partial)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
