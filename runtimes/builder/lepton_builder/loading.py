"""Load the source model safely, as a callable in the signature's tensor order.

Nothing is unpickled from an untrusted file: Hugging Face directories load with
safetensors only, torch.export programs with ``torch.export.load`` (no pickle), and
TorchScript archives with ``torch.jit.load``, which rebuilds code from TorchScript,
not from Python pickles. A sha256 given in the spec is checked before anything is
read, and oversized or malformed inputs are refused with a message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_builder.request import Source

MAX_MODEL_BYTES = 8 * 1024**3
SOURCES_ROOT = Path("/sources")


class LoadError(Exception):
    """The model cannot be used; the message says why (the Job exits non-zero)."""


@dataclass
class LoadedModel:
    """What the variant builders start from."""

    format: str
    path: Path
    module: Any | None  # a torch.nn.Module taking the inputs positionally, when torch
    onnx_path: Path | None  # the source ONNX file, when the source is ONNX


def resolve_uri(uri: str, sources_root: Path = SOURCES_ROOT) -> Path:
    """``pvc://claim/path`` -> the claim mounted under /sources by the operator's Job."""
    scheme, _, rest = uri.partition("://")
    rest = rest.split("?", 1)[0]
    if scheme == "pvc":
        return sources_root / rest
    if scheme == "file":
        return Path("/" + rest.lstrip("/"))
    raise LoadError(
        f"{scheme}:// sources are not supported by this builder yet; use pvc://<claim>/<path>"
    )


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def verify_sha256(path: Path, expected: str) -> None:
    target = path
    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if len(candidates) != 1:
            raise LoadError(
                "sha256 was given but the directory does not hold exactly one "
                ".safetensors file to check it against"
            )
        target = candidates[0]
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise LoadError(
            f"sha256 mismatch for {target.name}: expected {expected}, got {digest.hexdigest()}"
        )


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


def load_model(source: Source, sources_root: Path = SOURCES_ROOT) -> LoadedModel:
    path = resolve_uri(source.uri, sources_root)
    if not path.exists():
        raise LoadError(f"model not found at {source.uri} (looked in {path})")
    size = _size(path)
    if size > MAX_MODEL_BYTES:
        raise LoadError(
            f"model is {size / 1024**3:.1f} GiB, over the {MAX_MODEL_BYTES / 1024**3:.0f} GiB limit"
        )
    if source.sha256:
        verify_sha256(path, source.sha256)
    inputs = [t.name for t in source.inputs]
    outputs = [t.name for t in source.outputs]
    try:
        if source.format == "onnx":
            import onnx

            onnx.checker.check_model(str(path))
            return LoadedModel("onnx", path, None, path)
        import torch

        if source.format == "safetensors":
            if not path.is_dir() or not list(path.glob("*.safetensors")):
                raise LoadError(f"{source.uri} is not a directory with .safetensors weights")
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
    except LoadError:
        raise
    except Exception as error:  # malformed files raise many kinds of errors
        raise LoadError(
            f"cannot load {source.format} model from {source.uri}: {type(error).__name__}: {error}"
        ) from error
