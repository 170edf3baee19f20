"""Download a model from the Hugging Face Hub (``hf://org/name[@revision]``), data only.

A Hub repository can hold anything: pickled weights (``pytorch_model.bin``), Python
files that ``trust_remote_code`` would run, other formats in sub-folders. The builder
takes only what it loads and what a tokenizer reads, from the repository's top level:
``.safetensors``, ``.onnx`` and ``.json`` files and the tokenizer vocabularies
(``TOKENIZER_FILES``); never code, never a pickle. A repository without safetensors
weights is refused, naming what it holds instead.

``huggingface_hub`` does the talking (its redirects to the Hub's storage, its Xet
transfers), pointed at the Secret's ``HF_ENDPOINT`` for a mirror and authenticated by
its ``HF_TOKEN`` (``lepton_builder.fetch.source_env``; else the pod's own ``HF_*``).
Around it:

- the revision (a branch, a tag, default ``main``) is resolved to one commit first and
  every file is downloaded at that commit, so a branch that moves mid-download cannot
  mix two versions; a revision written as a full commit hash must resolve to itself
  (a Hub that answers another commit is refused). The commit is returned to be
  recorded in the build report;
- the build's environment keeps the Hub offline (``HF_HUB_OFFLINE=1``, so that loading
  never reaches out); this download is the one step that goes online, and only while
  it runs (``_online``);
- the sizes the Hub lists are summed against the cap before anything is fetched;
- every file is checked against the Hub's own listing before any loader reads it: its
  size, and its SHA-256 for LFS files (the weights) or its git blob hash for the
  others. A mismatch deletes everything downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_builder import sourcecache
from lepton_builder.fetch import Retry, Retryable, require_secret_keys, source_env
from lepton_builder.untrusted import LoadError

log = logging.getLogger(__name__)

# The CRD's language (lepton_operator.api.spec.HF_URI, which the builder may not import;
# tests/unit/operator/test_source_credentials.py runs both on the same URIs).
_URI = re.compile(
    r"^hf://(?P<repo>[A-Za-z0-9][-A-Za-z0-9_.]*/[A-Za-z0-9][-A-Za-z0-9_.]*)"
    r"(@(?P<rev>[^@\t\n\v\f\r ]+))?$"
)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
DATA_SUFFIXES = (".safetensors", ".onnx", ".json")
TOKENIZER_FILES = ("vocab.txt", "merges.txt", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model")  # fmt: skip


@dataclass(frozen=True)
class HubModel:
    """The downloaded folder and the commit it came from."""

    path: Path
    commit: str
    files: tuple[str, ...]


def parse_hf_uri(uri: str) -> tuple[str, str]:
    """``hf://org/name[@revision]`` -> (``org/name``, revision, default ``main``)."""
    match = _URI.match(uri)
    if match is None:
        raise LoadError(f"{uri!r} is not hf://<org>/<name>[@<revision>]")
    return match["repo"], match["rev"] or "main"


def wanted(name: str) -> bool:
    """A top-level data or tokenizer file; never code, never a pickle."""
    return "/" not in name and (name.endswith(DATA_SUFFIXES) or name in TOKENIZER_FILES)


def _git_blob_sha1(path: Path) -> str:
    """Git's object id of the file, as the Hub lists small files (not a security hash:
    the weights, in LFS, are checked by SHA-256)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(uri: str, path: Path, sibling: Any) -> None:
    """The file is what the Hub listed: its size, then its SHA-256 or git blob id."""
    size = path.stat().st_size
    listed = sibling.lfs.size if sibling.lfs else sibling.size
    if listed is not None and size != listed:
        raise LoadError(f"{uri}: {sibling.rfilename} is {size} bytes, the Hub listed {listed}")
    if sibling.lfs:
        actual, expected = sourcecache.file_sha256(path), sibling.lfs.sha256
    else:
        actual, expected = _git_blob_sha1(path), sibling.blob_id
    if expected and actual != expected:
        raise LoadError(
            f"{uri}: {sibling.rfilename} does not match the Hub's checksum "
            f"(expected {expected}, got {actual}); nothing was loaded"
        )


@contextlib.contextmanager
def _online() -> Iterator[None]:
    """huggingface_hub's offline switch (read from ``HF_HUB_OFFLINE`` at import) turned
    off for the download alone, and back as it was after."""
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def _hub_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(refusals, retryable) exception types of huggingface_hub and its HTTP client."""
    from huggingface_hub import errors

    refusals = (
        errors.OfflineModeIsEnabled,
        errors.RepositoryNotFoundError,
        errors.RevisionNotFoundError,
        errors.EntryNotFoundError,
        errors.GatedRepoError,
    )
    return refusals, (errors.HfHubHTTPError, OSError)


def fetch_hf(
    uri: str,
    folder: Path,
    *,
    max_bytes: int,
    retry: Retry | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    cache: Path | None = None,
) -> HubModel:
    """Resolve, list, cap, download at one commit, verify; ``folder`` receives the files."""
    with _online():
        return _fetch(
            uri,
            folder,
            max_bytes=max_bytes,
            retry=retry,
            endpoint=endpoint,
            token=token,
            cache=cache,
        )


def _fetch(
    uri: str,
    folder: Path,
    *,
    max_bytes: int,
    retry: Retry | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    cache: Path | None = None,
) -> HubModel:
    from huggingface_hub import HfApi, hf_hub_download

    repo, revision = parse_hf_uri(uri)
    require_secret_keys(uri)
    endpoint = endpoint or source_env("HF_ENDPOINT") or os.environ.get("HF_ENDPOINT") or None
    token = token or source_env("HF_TOKEN") or os.environ.get("HF_TOKEN") or None
    refusals, retryable = _hub_errors()
    api = HfApi(endpoint=endpoint, token=token)
    attempts = retry or Retry()

    def listing() -> Any:
        try:
            return api.model_info(repo, revision=revision, files_metadata=True)
        except refusals as error:
            raise LoadError(f"{uri}: {type(error).__name__}: {error}") from error
        except retryable as error:
            raise Retryable(f"the Hub did not answer: {error}") from error

    info = attempts.run(uri, listing)
    commit = info.sha
    if not commit or not _COMMIT.match(commit):
        raise LoadError(f"{uri}: the Hub named no commit for revision {revision!r}")
    if _COMMIT.match(revision) and commit != revision:
        raise LoadError(
            f"{uri}: revision {revision} resolved to commit {commit}; a commit must "
            "resolve to itself, so the repository's history was rewritten. Refused"
        )
    siblings = list(info.siblings or [])
    chosen = [s for s in siblings if wanted(s.rfilename)]
    if not any(s.rfilename.endswith(".safetensors") for s in chosen):
        held = ", ".join(sorted(s.rfilename for s in siblings)) or "nothing"
        raise LoadError(
            f"{uri} has no .safetensors weights at its top level (it holds: {held}); "
            "pickled weights (.bin, .pt, .pkl) and code are never downloaded"
        )
    total = sum((s.lfs.size if s.lfs else s.size) or 0 for s in chosen)
    if total > max_bytes:
        raise LoadError(f"{uri} lists {total} bytes of files, over the limit of {max_bytes}")
    log.info("%s: revision %s is commit %s; %d files, %d bytes", uri, revision, commit,
             len(chosen), total)  # fmt: skip
    files = tuple(s.rfilename for s in chosen)
    entry = sourcecache.hub_entry(cache, repo, commit) if cache else None
    if entry is not None and _cached(uri, entry, chosen):
        log.info("%s: commit %s from the source cache, every file checked", uri, commit)
        return HubModel(entry, commit, files)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for number, sibling in enumerate(chosen, 1):
            name = sibling.rfilename

            def download(name: str = name) -> Path:
                try:
                    return Path(
                        hf_hub_download(
                            repo,
                            name,
                            revision=commit,
                            local_dir=folder,
                            endpoint=endpoint,
                            token=token,
                        )
                    )
                except refusals as error:
                    raise LoadError(f"{uri}: {name}: {type(error).__name__}: {error}") from error
                except retryable as error:
                    raise Retryable(f"{name}: {error}") from error

            path = attempts.run(uri, download)
            _verify(uri, path, sibling)
            log.info("%s: %s verified (%d of %d)", uri, name, number, len(chosen))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(folder / ".cache", ignore_errors=True)  # huggingface_hub's own metadata
    if entry is not None:
        sourcecache.keep_folder(folder, entry)
    return HubModel(folder, commit, files)


def _cached(uri: str, entry: Path, chosen: list[Any]) -> bool:
    """Whether the cache holds this commit's files as the Hub lists them now; an entry
    that does not is deleted (it will be downloaded again)."""
    if not entry.is_dir():
        return False
    try:
        for sibling in chosen:
            path = entry / sibling.rfilename
            if not path.is_file():
                raise LoadError(f"{sibling.rfilename} is missing")
            _verify(uri, path, sibling)
    except LoadError as error:
        log.warning("%s: the cached copy at %s is not usable (%s); downloading", uri, entry, error)
        shutil.rmtree(entry, ignore_errors=True)
        return False
    return True
