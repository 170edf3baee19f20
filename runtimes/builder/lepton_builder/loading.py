"""Load the source model safely, as a callable in the signature's tensor order.

Nothing is unpickled from an untrusted file: Hugging Face directories load with
safetensors only, torch.export programs with ``torch.export.load``, and TorchScript
archives with ``torch.jit.load``, whose restricted unpickler rebuilds only TorchScript
types and tensors. Before any of them reads the file, ``lepton_builder.untrusted``
refuses what is hostile or broken: a URI of an unknown scheme or that escapes its
claim, a file over the size limit, a sha256 mismatch, a truncated safetensors file,
and an archive whose pickles would import anything but tensor types. A remote source
(``s3://``, ``https://``, ``hf://``) is first downloaded into the Job's scratch folder
by ``lepton_builder.fetch`` or ``lepton_builder.hub``, with checks of their own, and
then meets the same checks as a file on a claim.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_builder import fetch, hub, sourcecache, untrusted
from lepton_builder.request import Source
from lepton_builder.sourcecache import file_sha256
from lepton_builder.untrusted import LoadError as LoadError

MAX_MODEL_BYTES = 8 * 1024**3
SOURCES_ROOT = Path("/sources")
# Remote sources land here: the Job's /tmp, an emptyDir that goes with the pod.
DOWNLOADS_ROOT = Path(tempfile.gettempdir()) / "lepton-sources"
# torch.load reads this on every call and then ignores ``weights_only=False``.
FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


@dataclass
class LoadedModel:
    """What the variant builders start from."""

    format: str
    path: Path
    module: Any | None  # a torch.nn.Module taking the inputs positionally, when torch
    onnx_path: Path | None  # the source ONNX file, when the source is ONNX
    commit: str | None = None  # the Hub commit an hf:// revision resolved to


def local_source(
    uri: str,
    *,
    sha256: str | None = None,
    sources_root: Path = SOURCES_ROOT,
    downloads_root: Path | None = None,
    max_bytes: int | None = None,
    cache: Path | None = None,
) -> tuple[Path, str | None]:
    """Where the source's bytes are on this machine, and the Hub commit for ``hf://``.

    A claim's file is used in place; a remote one is downloaded (capped, retried,
    its sha256 checked while it streams) into a folder named by the URI's hash, or
    taken from ``cache`` (``lepton_builder.sourcecache``) when it holds that content."""
    limit = MAX_MODEL_BYTES if max_bytes is None else max_bytes
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise LoadError(f"{uri!r} holds a control character; a source URI is plain text")
    scheme = uri.partition("://")[0]
    folder = (downloads_root or DOWNLOADS_ROOT) / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if scheme == "hf":
        model = hub.fetch_hf(uri, folder, max_bytes=limit, cache=cache)
        return model.path, model.commit
    if scheme in fetch.SCHEMES:
        hit = sourcecache.cached_file(cache, sha256, fetch.target_name(uri))
        if hit is not None:
            return hit, None
        path = fetch.fetch(uri, folder, max_bytes=limit, sha256=sha256)
        sourcecache.keep_file(cache, sha256, path)
        return path, None
    return resolve_uri(uri, sources_root, limit), None


def resolve_uri(uri: str, sources_root: Path = SOURCES_ROOT, max_bytes: int | None = None) -> Path:
    """``pvc://claim/path`` -> its real path on the claim the Job mounts under /sources.

    Every check that needs no reading is made here, so the model and the calibration
    data get the same ones: the scheme, the claim's name, that the path (symlinks
    followed) stays on the claim, that something regular is there, and its size
    (``max_bytes``, default ``MAX_MODEL_BYTES``, read at call time).
    """
    claim, relative = untrusted.parse_uri(uri)
    root = untrusted.claim_root(sources_root, claim)
    path = untrusted.inside_claim(uri, root, root / relative)
    limit = MAX_MODEL_BYTES if max_bytes is None else max_bytes
    untrusted.check_size(uri, untrusted.measure(uri, path, root), limit)
    return path


def verify_sha256(path: Path, expected: str) -> None:
    """Compare the file (a folder's one .safetensors file) with the spec's digest."""
    target = path
    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if len(candidates) != 1:
            raise LoadError(
                "sha256 was given but the directory does not hold exactly one "
                ".safetensors file to check it against"
            )
        target = candidates[0]
    actual = file_sha256(target)
    if actual != expected:
        raise LoadError(f"sha256 mismatch for {target.name}: expected {expected}, got {actual}")


def check_format(source: Source, path: Path, limit: int) -> None:
    """The file is what its format says, read without running any of it."""
    if source.format == "safetensors":
        weights = sorted(path.glob("*.safetensors")) if path.is_dir() else []
        if not weights:
            raise LoadError(
                f"{source.uri} is not a folder with .safetensors weights; pickled weights "
                "(.bin, .pt) are never loaded"
            )
        for file in weights:
            untrusted.check_safetensors(source.uri, file)
    elif source.format in ("torchscript", "torch-export"):
        untrusted.check_archive(source.uri, path, limit, source.format)
    elif not path.is_file():
        raise LoadError(f"{source.uri} is a folder; an onnx source is a single .onnx file")


@contextlib.contextmanager
def weights_only() -> Iterator[None]:
    """Every ``torch.load`` inside refuses pickled code, even one a torch loader calls
    with ``weights_only=False`` (``torch.export.load`` does, for some payloads): a second
    line behind the archive scan, should a new torch grow a path the scan does not know."""
    previous = os.environ.get(FORCE_WEIGHTS_ONLY)
    os.environ[FORCE_WEIGHTS_ONLY] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[FORCE_WEIGHTS_ONLY]
        else:
            os.environ[FORCE_WEIGHTS_ONLY] = previous


def _check_onnx(uri: str, path: Path) -> None:
    """An ONNX file whose tensors are all inside it: external data names other files by
    path (``../`` included), and the builder copies only the one file anyway."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    onnx.checker.check_model(str(path))
    proto = onnx.load(str(path), load_external_data=False)
    if any(uses_external_data(tensor) for tensor in _get_all_tensors(proto)):
        raise LoadError(f"{uri} keeps tensors in external data files; save them inside the model")


class _HuggingFaceSignature:  # built lazily: torch is imported only when needed
    @staticmethod
    def wrap(model: Any, inputs: list[str], outputs: list[str]) -> Any:
        import torch

        class Wrapper(torch.nn.Module):
            """Positional inputs in signature order, outputs as a tuple in signature order."""

            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
                result = self.model(**dict(zip(inputs, tensors, strict=True)))
                return tuple(result[name] for name in outputs)

        return Wrapper().eval()


def load_model(
    source: Source,
    sources_root: Path = SOURCES_ROOT,
    max_bytes: int | None = None,
    downloads_root: Path | None = None,
    cache: Path | None = None,
) -> LoadedModel:
    """The model, after every check in ``lepton_builder.untrusted`` has passed."""
    limit = MAX_MODEL_BYTES if max_bytes is None else max_bytes
    path, commit = local_source(
        source.uri,
        sha256=source.sha256,
        sources_root=sources_root,
        downloads_root=downloads_root,
        max_bytes=limit,
        cache=cache,
    )
    if source.sha256:
        verify_sha256(path, source.sha256)
    check_format(source, path, limit)
    inputs = [t.name for t in source.inputs]
    outputs = [t.name for t in source.outputs]
    try:
        if source.format == "onnx":
            _check_onnx(source.uri, path)
            return LoadedModel("onnx", path, None, path, commit)
        with weights_only():
            loaded = _load_torch(source, path, inputs, outputs)
        loaded.commit = commit
        return loaded
    except LoadError:
        raise
    except Exception as error:  # malformed files raise many kinds of errors
        raise LoadError(
            f"cannot load {source.format} model from {source.uri}: {type(error).__name__}: {error}"
        ) from error


def _load_torch(source: Source, path: Path, inputs: list[str], outputs: list[str]) -> LoadedModel:
    import torch

    if source.format == "safetensors":
        from transformers import AutoModel

        model = AutoModel.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True
        ).eval()
        return LoadedModel(
            "safetensors", path, _HuggingFaceSignature.wrap(model, inputs, outputs), None
        )
    if source.format == "torchscript":
        return LoadedModel("torchscript", path, torch.jit.load(str(path)).eval(), None)
    program = torch.export.load(str(path))
    return LoadedModel("torch-export", path, program.module(), None)
