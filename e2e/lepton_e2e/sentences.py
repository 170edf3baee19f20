"""Real English sentences for MiniLM's calibration data, from Debian's ``fortunes-min``.

The builder judges compressed variants on what users send; a dozen sentences written
for the tests are too few to judge anything (and to train on), and random token ids
are not language. ``fortunes-min`` (``make deps`` installs it: APT_PACKAGES) holds
quotations, proverbs and riddles in plain English: split into sentences, filtered to
ordinary ones of 6 to 40 words, about 800 remain. Read from the machine, never fetched.
"""

from __future__ import annotations

import re
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
FILES = ("fortunes", "literature", "riddles")
PACKAGE = "fortunes-min"
_PLAIN = re.compile(r"[A-Za-z0-9 ,.;:'\"!?()\-]+")
_SPLIT = re.compile(r"(?<=[.!?])\s+")


def split(text: str) -> list[str]:
    """The plain sentences of a fortune file: entries split on ``%`` lines, their
    attribution lines (``-- Author``) dropped, then split after . ! or ?, kept when
    they are 6 to 40 words of ordinary characters."""
    sentences = []
    for entry in text.split("\n%\n"):
        lines = [line.strip() for line in entry.splitlines()]
        body = " ".join(line for line in lines if line and not line.startswith("--"))
        for sentence in _SPLIT.split(body):
            sentence = sentence.strip()
            if 6 <= len(sentence.split()) <= 40 and _PLAIN.fullmatch(sentence):
                sentences.append(sentence)
    return sentences


def english_sentences(root: Path = FORTUNES) -> list[str]:
    """Every distinct sentence, in the files' order (the same list on every machine
    with the same package version)."""
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{root}/{missing[0]} is missing: install Debian's {PACKAGE} "
            f"(make deps does, or apt-get install {PACKAGE})"
        )
    seen: dict[str, None] = {}
    for name in FILES:
        for sentence in split((root / name).read_text(encoding="utf-8", errors="replace")):
            seen.setdefault(sentence, None)
    return list(seen)
