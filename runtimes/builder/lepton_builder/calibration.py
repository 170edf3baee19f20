"""Inputs for the accuracy guard and for profiling: the user's, or made from the signature."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lepton_builder.request import Tensor
from lepton_builder.untrusted import LoadError

NUMPY_DTYPES = {
    "fp32": np.float32,
    "fp16": np.float16,
    "bf16": np.float32,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "bool": np.bool_,
}


@dataclass(frozen=True)
class Vocabulary:
    """What generated token inputs are drawn from: a WordPiece vocabulary's whole words
    (no special, unused or continuation pieces) and its framing tokens."""

    words: npt.NDArray[np.int64]
    cls: int
    sep: int
    pad: int


SENTENCE_TOKENS = (8, 48)  # the lengths generated sentences take, framing included


def vocabulary(model_path: Path) -> Vocabulary | None:
    """The model folder's ``vocab.txt`` (BERT-style), or None where there is none.

    Read as plain text, never through a tokenizer's code: the folder is untrusted.
    """
    file = model_path / "vocab.txt" if model_path.is_dir() else None
    if file is None or not file.is_file():
        return None
    tokens = file.read_text(encoding="utf-8", errors="replace").splitlines()
    index = {token: i for i, token in enumerate(tokens)}
    if not {"[CLS]", "[SEP]", "[PAD]"} <= set(index):
        return None
    words = [i for i, t in enumerate(tokens) if t.isalpha() and t.isascii() and len(t) > 1]
    if len(words) < 100:
        return None
    return Vocabulary(
        np.asarray(words, dtype=np.int64), index["[CLS]"], index["[SEP]"], index["[PAD]"]
    )


def _sentences(
    vocab: Vocabulary, samples: int, rng: np.random.Generator, dynamic_dim: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Token ids and mask of ``samples`` generated sentences, padded to the longest."""
    low, high = SENTENCE_TOKENS
    lengths = rng.integers(low, min(high, dynamic_dim) + 1, size=samples)
    width = int(lengths.max())
    ids = np.full((samples, width), vocab.pad, dtype=np.int64)
    mask = np.zeros((samples, width), dtype=np.int64)
    for row, length in enumerate(lengths):
        ids[row, 0], ids[row, length - 1] = vocab.cls, vocab.sep
        ids[row, 1 : length - 1] = rng.choice(vocab.words, size=length - 2)
        mask[row, :length] = 1
    return ids, mask


def generate(
    inputs: list[Tensor],
    samples: int,
    dynamic_dim: int,
    seed: int = 0,
    vocab: Vocabulary | None = None,
) -> list[npt.NDArray[Any]]:
    """Deterministic inputs in the signature's dtypes; -1 dims become ``dynamic_dim``.

    With a vocabulary, inputs named like token ids are sentences of real whole-word
    tokens framed as the tokenizer frames them, of realistic lengths (8 to 48 tokens),
    with masks that match and zero token types. Without one, integer inputs named like
    masks are all ones, other integers ids in [0, 1000), floats standard normal. Real
    data (``calibrationUri``) is better, and the report says an acceptance on these
    inputs is weaker: this is the fallback the spec promises when none is given.
    """
    rng = np.random.default_rng(seed)
    names = [t.name.lower() for t in inputs]
    if vocab is not None and any("input_ids" in n for n in names):
        ids, mask = _sentences(vocab, samples, rng, dynamic_dim)
        sentence: dict[str, npt.NDArray[np.int64]] = {"ids": ids, "mask": mask}
        arrays = []
        for tensor, name in zip(inputs, names, strict=True):
            dtype = NUMPY_DTYPES[tensor.dtype]
            if "input_ids" in name:
                arrays.append(sentence["ids"].astype(dtype))
            elif "mask" in name:
                arrays.append(sentence["mask"].astype(dtype))
            elif "token_type" in name:
                arrays.append(np.zeros_like(sentence["ids"]).astype(dtype))
            else:
                arrays.extend(generate([tensor], samples, ids.shape[1], seed))
        return arrays
    arrays = []
    for tensor in inputs:
        shape = (samples, *[dynamic_dim if d == -1 else d for d in tensor.shape])
        dtype = NUMPY_DTYPES[tensor.dtype]
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif "mask" in tensor.name.lower() or dtype == np.bool_:
            arrays.append(np.ones(shape, dtype=dtype))
        else:
            arrays.append(rng.integers(0, 1000, size=shape).astype(dtype))
    return arrays


def load(path: Path, inputs: list[Tensor]) -> list[npt.NDArray[Any]]:
    """An .npz with one array per input name, batch first, all the same length.

    Whatever is wrong with the file (not an npz, truncated, object arrays, a missing
    input, a shape the model cannot take) ends the build with ``LoadError`` naming it,
    as the model's own checks do, not with a traceback.
    """
    try:
        # Opened here: np.load leaves its own handle open when the archive is broken.
        with path.open("rb") as file, np.load(file, allow_pickle=False) as data:
            missing = [t.name for t in inputs if t.name not in data]
            if missing:
                raise LoadError(f"calibration data lacks inputs: {', '.join(missing)}")
            arrays = [np.asarray(data[t.name], dtype=NUMPY_DTYPES[t.dtype]) for t in inputs]
    except LoadError:
        raise
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise LoadError(f"calibration data {path.name} cannot be read: {error}") from error
    lengths = {len(a) if a.ndim else 0 for a in arrays}
    if len(lengths) != 1 or 0 in lengths:
        raise LoadError(
            f"calibration data {path.name}: every input needs the same number (>0) of "
            f"samples, batch first; found {sorted(lengths)}"
        )
    return arrays


def load_labels(path: Path, name: str, samples: int) -> npt.NDArray[np.int64]:
    """The expected classes of the calibration samples (``label-accuracy``): one per
    sample, or one per position for per-token outputs (negative: no label there, as
    Hugging Face's -100), as integers; ``LoadError`` naming what is wrong."""
    try:
        with path.open("rb") as file, np.load(file, allow_pickle=False) as data:
            if name not in data:
                raise LoadError(
                    f"calibration data lacks the labels array '{name}' that "
                    "label-accuracy judges by (accuracy.labels names it)"
                )
            labels = np.asarray(data[name])
    except LoadError:
        raise
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise LoadError(f"calibration data {path.name} cannot be read: {error}") from error
    if labels.ndim == 0 or len(labels) != samples or not np.issubdtype(labels.dtype, np.integer):
        raise LoadError(
            f"calibration labels '{name}': integer classes, one row per sample ({samples}); "
            f"found {labels.dtype} of shape {list(labels.shape)}"
        )
    return labels.astype(np.int64)


def batch(arrays: list[npt.NDArray[Any]], size: int) -> list[npt.NDArray[Any]]:
    """The first ``size`` samples, repeated when there are fewer."""
    count = len(arrays[0])
    index = np.arange(size) % count
    return [a[index] for a in arrays]
