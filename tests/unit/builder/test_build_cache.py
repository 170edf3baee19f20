"""The build cache: a build is kept by what decides it (its inputs' bytes, the settings
that change what is made or measured, the builder, the hardware) and reused, renamed
for the model that asks, never by where it was written or by whom; a damaged entry is
dropped, a build with a failed variant is not kept, and the least used go first."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lepton_builder import buildcache, tritonrepo
from lepton_builder.build import Settings, decided_by
from lepton_builder.request import BuildRequest, Tensor

CONFIG = tritonrepo.render(
    tritonrepo.model_config(
        "digits",
        [Tensor(name="image", dtype="fp32", shape=[1, 8, 8])],
        [Tensor(name="logits", dtype="fp32", shape=[10])],
        "cpu",
        "onnxruntime",
        "model.onnx",
        [1],
        8,
        0,
        1,
        100,
        "onnxruntime",
    )
)


def _request(**changes: Any) -> BuildRequest:
    raw: dict[str, Any] = {
        "requestVersion": 1,
        "modelName": "digits",
        "pool": "cpu-standard",
        "device": "cpu",
        "model": {
            "uri": "pvc://models/digits.pt",
            "format": "torchscript",
            "inputs": [{"name": "image", "dtype": "fp32", "shape": [1, 8, 8]}],
            "outputs": [{"name": "logits", "dtype": "fp32", "shape": [10]}],
        },
        "optimization": {"variants": ["onnx"], "batchSizes": [1, 8]},
        "repository": "/models/abc/cpu-standard",
        "reportConfigMap": "digits-b-1234-report",
        "latencyTargetMs": 50,
    }
    raw.update(changes)
    return BuildRequest.model_validate(raw)


def _written(repository: Path, name: str = "digits") -> dict[str, Any]:
    folder = repository / "onnx" / name
    (folder / "1").mkdir(parents=True)
    tritonrepo.write_configs(folder, CONFIG.replace('"digits"', f'"{name}"'))
    (folder / "1" / "model.onnx").write_bytes(b"onnx bytes")
    return {
        "schemaVersion": 1,
        "pool": "cpu-standard",
        "repository": str(repository),
        "buildSeconds": 41.0,
        "builtAt": "2026-12-07T06:40:00Z",
        "variants": [
            {"name": "fp32", "status": "skipped", "reason": "reference"},
            {"name": "onnx", "status": "accepted", "tritonModel": name},
        ],
    }


def _key(tmp_path: Path, request: BuildRequest, model: bytes = b"weights") -> str:
    source = tmp_path / "source" / "digits.pt"
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(model)
    return buildcache.build_key(decided_by(request, Settings()), source, None, "cpu")


def test_where_and_for_whom_a_build_is_made_do_not_change_its_key(tmp_path: Path) -> None:
    key = _key(tmp_path, _request())
    assert key == _key(
        tmp_path,
        _request(
            modelName="other",
            pool="cpu-large",
            repository="/tmp/x",
            reportConfigMap="elsewhere",
            sourceCache="/source-cache",
            buildCache="/source-cache/builds",
            model={**_request().model.model_dump(by_alias=True), "uri": "https://h/d.pt"},
        ),
    )
    # Without the serving search the latency target decides nothing.
    assert key == _key(tmp_path, _request(latencyTargetMs=80))


def test_what_decides_a_build_changes_its_key(tmp_path: Path) -> None:
    key = _key(tmp_path, _request())
    assert key != _key(tmp_path, _request(), model=b"other weights")
    assert key != _key(tmp_path, _request(optimization={"variants": ["onnx", "onnx-int8"]}))
    assert key != _key(tmp_path, _request(device="cuda"))
    searched = {"variants": ["onnx"], "batchSizes": [1, 8], "servingSearch": True}
    assert _key(tmp_path, _request(optimization=searched)) != _key(
        tmp_path, _request(optimization=searched, latencyTargetMs=80)
    )
    source = tmp_path / "source" / "digits.pt"
    fewer = decided_by(_request(), Settings(threads=2))
    assert key != buildcache.build_key(fewer, source, None, "cpu")
    calibration = tmp_path / "calibration.npz"
    calibration.write_bytes(b"one")
    with_data = buildcache.build_key(decided_by(_request(), Settings()), source, calibration, "cpu")
    calibration.write_bytes(b"two")
    assert with_data != buildcache.build_key(
        decided_by(_request(), Settings()), source, calibration, "cpu"
    )


def test_a_folder_source_is_keyed_by_its_files_names_and_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"w")
    (folder / "config.json").write_text("{}")
    first = buildcache.content_digest(folder)
    (folder / "config.json").rename(folder / "other.json")
    assert buildcache.content_digest(folder) != first


def test_a_kept_build_is_reused_elsewhere_renamed_for_the_model_that_asks(
    tmp_path: Path,
) -> None:
    cache, made = tmp_path / "builds", tmp_path / "made"
    report = _written(made)
    buildcache.keep(cache, "k1", made, report)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "stale").mkdir(parents=True)  # a half-written earlier try is replaced
    kept = buildcache.reuse(cache, "k1", elsewhere, "digits-two")
    assert kept is not None
    assert not (elsewhere / "stale").exists()
    served = elsewhere / "onnx" / "digits-two"
    assert (served / "1" / "model.onnx").read_bytes() == b"onnx bytes"
    assert tritonrepo.parse((served / "config.pbtxt").read_text()).name == "digits-two"
    cached = tritonrepo.parse((served / "configs" / "cached.pbtxt").read_text())
    assert cached.name == "digits-two" and cached.response_cache.enable
    assert [r.get("tritonModel") for r in kept["variants"]] == [None, "digits-two"]
    this = buildcache.reused_report(kept, "k1", "cpu-large", str(elsewhere), 1.24)
    assert this["pool"] == "cpu-large" and this["repository"] == str(elsewhere)
    assert this["buildSeconds"] == 1.2
    assert this["reused"] == {"key": "k1", "builtAt": "2026-12-07T06:40:00Z", "buildSeconds": 41.0}
    # The entry itself still names the model that made it.
    assert buildcache.reuse(cache, "k1", tmp_path / "third", "digits") is not None
    assert (tmp_path / "third" / "onnx" / "digits" / "config.pbtxt").is_file()


def test_nothing_is_reused_without_a_cache_or_an_entry(tmp_path: Path) -> None:
    assert buildcache.reuse(None, "k1", tmp_path / "r", "digits") is None
    assert buildcache.reuse(tmp_path / "builds", "k1", tmp_path / "r", "digits") is None
    buildcache.keep(None, "k1", tmp_path, {"variants": []})  # no cache: nothing kept


def test_a_damaged_entry_is_dropped_and_the_build_made_afresh(tmp_path: Path) -> None:
    cache, made = tmp_path / "builds", tmp_path / "made"
    buildcache.keep(cache, "k1", made, _written(made))
    artifact = cache / "k1" / "repository" / "onnx" / "digits" / "1" / "model.onnx"
    artifact.write_bytes(b"onnx b")  # truncated
    assert buildcache.reuse(cache, "k1", tmp_path / "r", "digits") is None
    assert not (cache / "k1").exists()


def test_a_build_with_a_failed_variant_is_not_kept(tmp_path: Path) -> None:
    cache, made = tmp_path / "builds", tmp_path / "made"
    report = _written(made)
    report["variants"].append({"name": "onnx-int8", "status": "failed", "reason": "OOM"})
    buildcache.keep(cache, "k1", made, report)
    assert not (cache / "k1").exists()


def test_the_least_recently_used_entries_go_first_and_partial_ones_are_not_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buildcache, "ENTRIES_KEPT", 2)
    cache, made = tmp_path / "builds", tmp_path / "made"
    report = _written(made)
    (cache / "k0.partial-writer").mkdir(parents=True)  # another builder still writing
    (cache / "k0.partial-writer" / "report.json").write_text("{}")
    for age, key in enumerate(["k1", "k2"]):
        buildcache.keep(cache, key, made, report)
        stamp = 1_000_000 + age
        (cache / key / "report.json").touch()
        os.utime(cache / key / "report.json", (stamp, stamp))
    buildcache.reuse(cache, "k1", tmp_path / "r", "digits")  # k1 used now: k2 is older
    buildcache.keep(cache, "k3", made, report)
    assert sorted(p.name for p in cache.iterdir()) == ["k0.partial-writer", "k1", "k3"]
    assert json.loads((cache / "k3" / "report.json").read_text())["builtAt"]


def test_an_entry_removed_while_it_is_copied_leaves_no_half_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, made = tmp_path / "builds", tmp_path / "made"
    buildcache.keep(cache, "k1", made, _written(made))

    def copy_half(source: Path, target: Path) -> None:
        (target / "onnx").mkdir(parents=True)
        raise FileNotFoundError("removed by another build's clean-up")

    monkeypatch.setattr(buildcache.shutil, "copytree", copy_half)
    assert buildcache.reuse(cache, "k1", tmp_path / "r", "digits") is None
    assert not (tmp_path / "r").exists()
