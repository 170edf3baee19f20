"""Inputs the guard judges on: generated token ids from a real vocabulary at realistic
lengths, and the real English sentences MiniLM's examples ship."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_builder.calibration import SENTENCE_TOKENS, generate, vocabulary
from lepton_builder.request import Tensor

TOKENS = [
    Tensor(name="input_ids", dtype="int64", shape=[-1]),
    Tensor(name="attention_mask", dtype="int64", shape=[-1]),
    Tensor(name="token_type_ids", dtype="int64", shape=[-1]),
]


def _vocab(tmp_path: Path) -> Path:
    words = [f"{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(200)]
    tokens = ["[PAD]", "[unused0]", "[CLS]", "[SEP]", "##ing", ",", *words]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return tmp_path


def test_generated_sentences_use_whole_words_framed_and_masked_at_realistic_lengths(tmp_path):
    vocab = vocabulary(_vocab(tmp_path))
    assert vocab is not None and (vocab.cls, vocab.sep, vocab.pad) == (2, 3, 0)
    ids, mask, types = generate(TOKENS, 50, 128, vocab=vocab)
    lengths = mask.sum(axis=1)
    assert SENTENCE_TOKENS[0] <= lengths.min() and lengths.max() <= SENTENCE_TOKENS[1]
    assert ids.shape[1] == lengths.max() and len(set(lengths.tolist())) > 5
    for row, length in zip(ids, lengths, strict=True):
        assert row[0] == 2 and row[length - 1] == 3 and set(row[length:]) <= {0}
        assert set(row[1 : length - 1]) <= set(range(6, 206))  # no special or ## pieces
    assert not types.any()


def test_without_a_vocabulary_the_old_signature_fallback_stays(tmp_path):
    assert vocabulary(tmp_path) is None
    ids, mask, _ = generate(TOKENS, 4, 16)
    assert ids.shape == (4, 16) and mask.all()


def test_the_shipped_sentences_are_hundreds_of_distinct_real_ones():
    sentences = pytest.importorskip("lepton_e2e.sentences")
    if not (sentences.FORTUNES / "fortunes").is_file():
        pytest.skip("fortunes-min is not installed (make deps installs it)")
    texts = sentences.english_sentences()
    assert len(texts) >= 500 and len(set(texts)) == len(texts)
    assert all(6 <= len(t.split()) <= 40 for t in texts)


def test_fortunes_are_split_into_plain_sentences_without_attributions():
    from lepton_e2e.sentences import split

    text = (
        "A journey of a thousand miles begins with a single step.  Or so they say.\n"
        "\t\t-- Lao Tzu\n%\nShort one.\n%\n"
        "This sentence has a tab\tand ~weird~ characters in it, so it goes.\n"
    )
    assert split(text) == ["A journey of a thousand miles begins with a single step."]
