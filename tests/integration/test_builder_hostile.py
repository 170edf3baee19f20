"""Hostile model files for the builder: each is refused, unread and unrun.

``model.uri`` and ``calibrationUri`` are written by whoever may create a LeptonModel,
and the files they name are whatever sits on the claim. A build Job that unpickled a
checkpoint, followed ``../`` off its claim or read a 100 GiB file would hand that
person the builder's service account, or the node. So every hostile input here must
fail the real builder entry point (``lepton_builder.cli.main``) with a reason a person
can act on in the termination message, must run none of its code (a pickle payload
here would create a marker file), and must write nothing outside the build's own
output folder. Where an escape would have reached a perfectly good model, the only
thing standing between the test and a successful build is the check under test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_builder import cli, loading, untrusted
from lepton_builder.request import Source
from lepton_e2e import models

pytestmark = pytest.mark.integration

FAST = ["--profile-seconds", "0.1", "--min-iterations", "2", "--threads", "1"]
LIMIT = loading.MAX_MODEL_BYTES
ALLOWED = untrusted.ALLOWED
NOT_A_ZIP = (
    "cannot load {} model from pvc://models/evil.pt: not a zip archive, as TorchScript and "
    "torch.export files are; a bare pickle is never unpickled, since unpickling runs code"
)
Snapshot = dict[str, tuple[str, int, int]]


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file is proof it ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@dataclass
class Workspace:
    """A claim to put hostile files on, a folder beside it an escape would reach, and
    the build's output folder: the one place the builder may write."""

    root: Path
    claim: Path  # mounted as pvc://models/...
    outside: Path
    build: Path
    marker: Path
    digits: Path  # an honest TorchScript model, to copy
    calibration: Path  # honest calibration data for it

    def payload(self, protocol: int = 2) -> bytes:
        return pickle.dumps(Payload(self.marker), protocol=protocol)

    def snapshot(self) -> Snapshot:
        """Every path under ``root`` but the build folder: kind, size, mtime."""
        seen: Snapshot = {}
        for parent, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if Path(parent, d) != self.build]
            for name in dirs + files:
                info = Path(parent, name).lstat()
                kind = "link" if Path(parent, name).is_symlink() else "entry"
                seen[str(Path(parent, name).relative_to(self.root))] = (
                    kind,
                    info.st_size,
                    info.st_mtime_ns,
                )
        return seen

    def refuse(self, uri: str, fmt: str, calibration: str | None = None, **model: Any) -> str:
        """Run the builder; assert it failed, ran nothing and wrote nothing outside the
        build folder; return its termination message."""
        request = {
            "requestVersion": 1,
            "modelName": "digits",
            "pool": "cpu",
            "device": "cpu",
            "model": {
                "uri": uri,
                "format": fmt,
                "inputs": models.DIGITS_INPUTS,
                "outputs": models.DIGITS_OUTPUTS,
                **model,
            },
            "optimization": {"batchSizes": [1], "calibrationUri": calibration},
            "repository": str(self.build / "repository"),
        }
        before = self.snapshot()
        argv = ["--request", json.dumps(request), "--sources-root", str(self.root / "sources")]
        assert cli.main([*argv, *FAST]) == 1
        assert not self.marker.exists(), "a pickle payload ran"
        assert self.snapshot() == before, "the builder wrote outside its build folder"
        return (self.build / "termination-log").read_text()


@pytest.fixture
def ws(tmp_path: Path, digits: Any, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    claim = tmp_path / "sources" / "models"
    claim.mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    build = tmp_path / "build"
    build.mkdir()
    monkeypatch.setattr(cli, "TERMINATION_LOG", build / "termination-log")
    honest = digits.sources_root / "models"
    return Workspace(
        tmp_path,
        claim,
        tmp_path / "outside",
        build,
        tmp_path / "outside" / "payload-ran",
        honest / "digits.pt",
        honest / "digits-calibration.npz",
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite_zip(source: Path, target: Path, change: Callable[[str, bytes], bytes]) -> None:
    """Copy a zip archive, passing each member's bytes through ``change``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info)))


def _export_digits(target: Path) -> None:
    """A small torch.export program with the digits signature, saved as pt2."""
    import torch

    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    program = torch.export.export(module, (torch.zeros(1, 1, 8, 8),))
    torch.export.save(program, str(target))


def _safetensors(target: Path) -> None:
    from safetensors.numpy import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({"weight": np.arange(256, dtype=np.float32).reshape(16, 16)}, str(target))


# --- the honest files pass the very same checks (else every refusal below is moot) ---


def test_honest_torchscript_and_torch_export_files_pass_the_checks(ws: Workspace) -> None:
    shutil.copy(ws.digits, ws.claim / "digits.pt")
    _export_digits(ws.claim / "digits.pt2")
    _safetensors(ws.claim / "mini" / "model.safetensors")
    for uri, fmt in (
        ("pvc://models/digits.pt", "torchscript"),
        ("pvc://models/digits.pt2", "torch-export"),
    ):
        source = Source.model_validate(
            {
                "uri": uri,
                "format": fmt,
                "inputs": models.DIGITS_INPUTS,
                "outputs": models.DIGITS_OUTPUTS,
            }
        )
        loaded = loading.load_model(source, ws.root / "sources")
        assert loaded.module is not None and loaded.path.parent == ws.claim
    untrusted.check_safetensors("pvc://models/mini", ws.claim / "mini" / "model.safetensors")
    assert os.environ.get(loading.FORCE_WEIGHTS_ONLY) is None  # restored after loading


# --- a wrong sha256 ---


def test_a_wrong_sha256_is_refused_naming_both_digests(ws: Workspace) -> None:
    shutil.copy(ws.digits, ws.claim / "digits.pt")
    message = ws.refuse("pvc://models/digits.pt", "torchscript", sha256="0" * 64)
    assert message == (
        f"sha256 mismatch for digits.pt: expected {'0' * 64}, got {_sha256(ws.digits)}"
    )


# --- pickles: never unpickled, so never run ---


def _bare_pickle(ws: Workspace) -> tuple[str, str]:
    (ws.claim / "evil.pt").write_bytes(ws.payload())
    return (
        "torchscript",
        NOT_A_ZIP.format("torchscript"),
    )


def _bare_pickle_as_export(ws: Workspace) -> tuple[str, str]:
    (ws.claim / "evil.pt").write_bytes(ws.payload(protocol=4))
    return (
        "torch-export",
        NOT_A_ZIP.format("torch-export"),
    )


def _torchscript_with_a_hostile_data_pkl(ws: Workspace, protocol: int) -> tuple[str, str]:
    top = zipfile.ZipFile(ws.digits).namelist()[0].split("/")[0]
    _rewrite_zip(
        ws.digits,
        ws.claim / "evil.pt",
        lambda name, data: ws.payload(protocol) if name.endswith("/data.pkl") else data,
    )
    return "torchscript", (
        f"pvc://models/evil.pt: {top}/data.pkl would import io.open, which is not a tensor "
        "type; pickled code is never run"
    )


def _export_with_a_pickled_weight(ws: Workspace) -> tuple[str, str]:
    honest = ws.outside / "honest.pt2"
    _export_digits(honest)
    config_name = "honest/data/weights/model_weights_config.json"
    config = json.loads(zipfile.ZipFile(honest).read(config_name))
    config["config"]["1.weight"]["use_pickle"] = True
    weight = f"honest/data/weights/{config['config']['1.weight']['path_name']}"
    replaced = {config_name: json.dumps(config).encode(), weight: ws.payload()}
    _rewrite_zip(honest, ws.claim / "evil.pt2", lambda name, data: replaced.get(name, data))
    honest.unlink()
    return "torch-export", (
        f"pvc://models/evil.pt2: '1.weight' in {config_name} is stored as a pickle, which "
        "torch.export.load would unpickle with code; only raw tensor payloads are read"
    )


def _export_with_an_opaque_constant(ws: Workspace) -> tuple[str, str]:
    _export_digits(ws.outside / "honest.pt2")
    opaque = {
        "config": {
            "c": {
                "path_name": "opaque_obj_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }
        }
    }

    def change(name: str, data: bytes) -> bytes:
        return json.dumps(opaque).encode() if name.endswith("model_constants_config.json") else data

    _rewrite_zip(ws.outside / "honest.pt2", ws.claim / "evil.pt2", change)
    with zipfile.ZipFile(ws.claim / "evil.pt2", "a") as archive:
        archive.writestr("honest/data/constants/opaque_obj_0", ws.payload())
    (ws.outside / "honest.pt2").unlink()
    return "torch-export", (
        "pvc://models/evil.pt2: 'c' in honest/data/constants/model_constants_config.json is "
        "stored as a pickle, which torch.export.load would unpickle with code; only raw "
        "tensor payloads are read"
    )


def _export_with_hostile_sample_inputs(ws: Workspace) -> tuple[str, str]:
    _export_digits(ws.outside / "honest.pt2")
    with zipfile.ZipFile(ws.outside / "honest.pt2") as archive:
        inner = archive.read("honest/data/sample_inputs/model.pt")
    (ws.outside / "inner.pt").write_bytes(inner)
    _rewrite_zip(
        ws.outside / "inner.pt",
        ws.outside / "evil-inner.pt",
        lambda name, data: ws.payload() if name.endswith("data.pkl") else data,
    )
    poisoned = (ws.outside / "evil-inner.pt").read_bytes()
    _rewrite_zip(
        ws.outside / "honest.pt2",
        ws.claim / "evil.pt2",
        lambda name, data: poisoned if name.endswith("sample_inputs/model.pt") else data,
    )
    for name in ("honest.pt2", "inner.pt", "evil-inner.pt"):
        (ws.outside / name).unlink()
    top = zipfile.ZipFile(io.BytesIO(poisoned)).namelist()[0].split("/")[0]
    return "torch-export", (
        f"pvc://models/evil.pt2: honest/data/sample_inputs/model.pt: {top}/data.pkl would "
        "import io.open, which is not a tensor type; pickled code is never run"
    )


def _hugging_face_folder_with_only_a_pickle(ws: Workspace) -> tuple[str, str]:
    (ws.claim / "evil").mkdir()
    (ws.claim / "evil" / "config.json").write_text('{"model_type": "bert"}')
    (ws.claim / "evil" / "pytorch_model.bin").write_bytes(ws.payload())
    return "safetensors", (
        "pvc://models/evil is not a folder with .safetensors weights; pickled weights "
        "(.bin, .pt) are never loaded"
    )


PICKLES: dict[str, Callable[[Workspace], tuple[str, str]]] = {
    "bare-pickle-as-torchscript": _bare_pickle,
    "bare-pickle-as-torch-export": _bare_pickle_as_export,
    "torchscript-data-pkl-protocol-2": lambda ws: _torchscript_with_a_hostile_data_pkl(ws, 2),
    "torchscript-data-pkl-protocol-4": lambda ws: _torchscript_with_a_hostile_data_pkl(ws, 4),
    "torch-export-pickled-weight": _export_with_a_pickled_weight,
    "torch-export-opaque-constant": _export_with_an_opaque_constant,
    "torch-export-hostile-sample-inputs": _export_with_hostile_sample_inputs,
    "hugging-face-folder-with-only-a-pickle": _hugging_face_folder_with_only_a_pickle,
}


@pytest.mark.parametrize("case", PICKLES)
def test_a_pickle_payload_is_refused_and_never_run(ws: Workspace, case: str) -> None:
    fmt, expected = PICKLES[case](ws)
    uri = "pvc://models/" + next(p.name for p in ws.claim.iterdir() if p.name.startswith("evil"))
    assert ws.refuse(uri, fmt) == expected


@pytest.mark.parametrize(
    ("case", "fmt", "reason"),
    [
        ("torchscript-data-pkl-protocol-2", "torchscript", "Unknown type name 'io.open'"),
        ("torch-export-pickled-weight", "torch-export", "Weights only load failed"),
    ],
)
def test_without_the_scan_torch_still_refuses_the_pickle(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, case: str, fmt: str, reason: str
) -> None:
    """The second line: were the archive scan missing, torch's restricted unpicklers
    (``weights_only`` forced on for torch.export) refuse the payload; it still never runs."""
    PICKLES[case](ws)
    monkeypatch.setattr(untrusted, "check_archive", lambda *args, **kwargs: None)
    uri = "pvc://models/" + next(p.name for p in ws.claim.iterdir() if p.name.startswith("evil"))
    message = ws.refuse(uri, fmt)
    assert message.startswith(f"cannot load {fmt} model from {uri}: ")
    assert reason in message


# --- truncated safetensors ---


def _cut(path: Path, keep: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(keep)


def test_a_safetensors_file_cut_in_its_tensor_data_is_refused_with_the_numbers(
    ws: Workspace,
) -> None:
    weights = ws.claim / "mini" / "model.safetensors"
    _safetensors(weights)
    (header,) = struct.unpack("<Q", weights.read_bytes()[:8])
    _cut(weights, 8 + header + 1000)
    message = ws.refuse("pvc://models/mini", "safetensors")
    assert message == (
        "pvc://models/mini: model.safetensors is truncated: its header places 1024 bytes "
        "of tensor data, the file holds 1000"
    )


def test_a_safetensors_file_cut_in_its_header_is_refused(ws: Workspace) -> None:
    weights = ws.claim / "mini" / "model.safetensors"
    _safetensors(weights)
    (header,) = struct.unpack("<Q", weights.read_bytes()[:8])
    _cut(weights, 8 + header // 2)
    assert ws.refuse("pvc://models/mini", "safetensors") == (
        "pvc://models/mini: model.safetensors is truncated or corrupt: its header claims "
        f"{header} bytes, the file holds {header // 2} after the length"
    )
    _cut(weights, 5)
    assert ws.refuse("pvc://models/mini", "safetensors") == (
        "pvc://models/mini: model.safetensors is truncated: 5 bytes, too short for a header"
    )


# --- oversize: refused from stat alone, before a byte is read ---


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def _oversize(uri: str) -> str:
    return (
        f"{uri} is {LIMIT + 1} bytes (8.0 GiB), over the builder's limit of {LIMIT} bytes "
        "(8.0 GiB); refused before reading it"
    )


def test_an_oversize_file_is_refused_before_it_is_read(ws: Workspace) -> None:
    _sparse(ws.claim / "huge.pt", LIMIT + 1)
    # A sha256 is given too: had the builder read the file, the reason would be a mismatch.
    message = ws.refuse("pvc://models/huge.pt", "torchscript", sha256="0" * 64)
    assert message == _oversize("pvc://models/huge.pt")


def test_an_oversize_folder_and_oversize_calibration_data_are_refused(ws: Workspace) -> None:
    _safetensors(ws.claim / "big" / "model.safetensors")
    size = (ws.claim / "big" / "model.safetensors").stat().st_size
    _sparse(ws.claim / "big" / "extra.bin", LIMIT + 1 - size)
    assert ws.refuse("pvc://models/big", "safetensors") == _oversize("pvc://models/big")
    shutil.copy(ws.digits, ws.claim / "digits.pt")
    _sparse(ws.claim / "calibration.npz", LIMIT + 1)
    message = ws.refuse("pvc://models/digits.pt", "torchscript", "pvc://models/calibration.npz")
    assert message == _oversize("pvc://models/calibration.npz")


def test_the_limit_is_read_at_call_time_so_a_test_may_lower_it(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(ws.digits, ws.claim / "digits.pt")
    size = ws.digits.stat().st_size
    monkeypatch.setattr(loading, "MAX_MODEL_BYTES", size - 1)
    message = ws.refuse("pvc://models/digits.pt", "torchscript")
    assert message.startswith(f"pvc://models/digits.pt is {size} bytes (")
    assert f"KiB), over the builder's limit of {size - 1} bytes (" in message
    assert message.endswith("KiB); refused before reading it")


# --- paths that escape their claim: each would reach an honest model, were it allowed ---


def _escape(ws: Workspace, uri_path: str, target: Path) -> str:
    return f"pvc://models/{uri_path} escapes its claim: it resolves to {target}, outside {ws.claim}"


def test_dot_dot_and_absolute_paths_escape_their_claim(ws: Workspace) -> None:
    shutil.copy(ws.digits, ws.outside / "digits.pt")
    secret = ws.outside / "digits.pt"
    (ws.root / "sources" / "other").mkdir()
    shutil.copy(ws.digits, ws.root / "sources" / "other" / "digits.pt")
    for uri_path, target in (
        ("../../outside/digits.pt", secret),
        ("../other/digits.pt", ws.root / "sources" / "other" / "digits.pt"),
        (f"/{secret}", secret),
        ("sub/../../../outside/digits.pt", secret),
    ):
        message = ws.refuse(f"pvc://models/{uri_path}", "torchscript")
        assert message == _escape(ws, uri_path, target)
    assert ws.refuse("pvc://../outside/digits.pt", "torchscript") == (
        "pvc://../outside/digits.pt escapes its claim: '..' is not a PersistentVolumeClaim name"
    )


def test_a_symlink_on_the_claim_that_points_off_it_escapes(ws: Workspace) -> None:
    shutil.copy(ws.digits, ws.outside / "digits.pt")
    (ws.claim / "link.pt").symlink_to(ws.outside / "digits.pt")
    assert ws.refuse("pvc://models/link.pt", "torchscript") == _escape(
        ws, "link.pt", ws.outside / "digits.pt"
    )
    _safetensors(ws.outside / "secret.safetensors")
    (ws.claim / "mini").mkdir()
    (ws.claim / "mini" / "model.safetensors").symlink_to(ws.outside / "secret.safetensors")
    assert ws.refuse("pvc://models/mini", "safetensors") == (
        f"pvc://models/mini escapes its claim: model.safetensors resolves to "
        f"{ws.outside / 'secret.safetensors'}, outside {ws.claim}"
    )
    (ws.claim / "mini" / "model.safetensors").unlink()
    (ws.claim / "mini" / "nested").symlink_to(ws.outside, target_is_directory=True)
    _safetensors(ws.claim / "mini" / "model.safetensors")
    assert ws.refuse("pvc://models/mini", "safetensors") == (
        "pvc://models/mini: nested is a symlinked folder; a model folder's folders must be "
        "real ones"
    )


def test_calibration_data_off_the_claim_escapes(ws: Workspace) -> None:
    shutil.copy(ws.digits, ws.claim / "digits.pt")
    shutil.copy(ws.calibration, ws.outside / "calibration.npz")
    uri = "pvc://models/../../outside/calibration.npz"
    assert ws.refuse("pvc://models/digits.pt", "torchscript", uri) == (
        f"{uri} escapes its claim: it resolves to {ws.outside / 'calibration.npz'}, "
        f"outside {ws.claim}"
    )


def _onnx_with_external_data(folder: Path, location: str) -> None:
    """A digits-shaped ONNX model whose one weight lives in the file ``location`` names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((64, 10), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["pixels"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "digits",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [None, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])],
        [weight],
    )
    onnx.save_model(
        helper.make_model(graph),
        str(folder / "ext.onnx"),
        save_as_external_data=True,
        location="ext.bin",
        size_threshold=0,
    )
    proto = onnx.load(str(folder / "ext.onnx"), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save_model(proto, str(folder / "ext.onnx"))


def test_onnx_external_data_off_the_folder_or_on_it_is_refused(ws: Workspace) -> None:
    _onnx_with_external_data(ws.claim, "../../outside/ext.bin")
    shutil.copy(ws.claim / "ext.bin", ws.outside / "ext.bin")
    message = ws.refuse("pvc://models/ext.onnx", "onnx")
    assert message.startswith("cannot load onnx model from pvc://models/ext.onnx: ")
    assert "'../../outside/ext.bin' points outside the directory" in message
    _onnx_with_external_data(ws.claim, "ext.bin")
    assert ws.refuse("pvc://models/ext.onnx", "onnx") == (
        "pvc://models/ext.onnx keeps tensors in external data files; save them inside the model"
    )


# --- URI schemes the builder does not read ---


@pytest.mark.parametrize("scheme", ["file", "ftp", "http", "PVC"])
def test_an_unknown_scheme_is_refused_naming_it(ws: Workspace, scheme: str) -> None:
    shutil.copy(ws.digits, ws.outside / "digits.pt")
    uri = f"{scheme}://{ws.outside / 'digits.pt'}"  # file:// would reach an honest model
    assert ws.refuse(uri, "torchscript") == (
        f"{scheme}:// sources are not supported by this builder; {ALLOWED}"
    )


@pytest.mark.parametrize(
    ("scheme", "reason"),
    [
        ("https", "is not an https:// URL"),
        ("s3", "is not s3://[[http(s)://]host:port/]bucket/prefix"),
        ("hf", "is not hf://<org>/<name>[@<revision>]"),
    ],
)
def test_a_remote_scheme_never_reads_a_local_path(ws: Workspace, scheme: str, reason: str) -> None:
    """``https:///path`` and kin name no server: refused, never read from this machine
    (the remote schemes themselves: tests/integration/test_builder_sources.py)."""
    shutil.copy(ws.digits, ws.outside / "digits.pt")
    message = ws.refuse(f"{scheme}://{ws.outside / 'digits.pt'}", "torchscript")
    assert reason in message, message


def test_a_calibration_uri_with_another_scheme_or_none_is_refused(ws: Workspace) -> None:
    shutil.copy(ws.digits, ws.claim / "digits.pt")
    shutil.copy(ws.calibration, ws.outside / "calibration.npz")
    path = ws.outside / "calibration.npz"
    assert ws.refuse("pvc://models/digits.pt", "torchscript", f"file://{path}") == (
        f"file:// sources are not supported by this builder; {ALLOWED}"
    )
    assert ws.refuse("pvc://models/digits.pt", "torchscript", str(path)) == (
        f"{str(path)!r} is not a URI; {ALLOWED}"
    )


def test_a_uri_with_a_control_character_is_refused(ws: Workspace) -> None:
    shutil.copy(ws.digits, ws.claim / "digits.pt")
    uri = "pvc://models/digits.pt\x00.onnx"
    assert ws.refuse(uri, "torchscript") == (
        f"{uri!r} holds a control character; a source URI is plain text"
    )


def _npz(path: Path, **arrays: Any) -> None:
    with path.open("wb") as file:
        np.savez(file, **arrays)


def test_broken_calibration_data_ends_the_build_with_a_reason_not_a_traceback(
    ws: Workspace,
) -> None:
    shutil.copy(ws.digits, ws.claim / "digits.pt")
    pixels = np.zeros((4, 1, 8, 8), dtype=np.float32)
    cases = {
        "truncated.npz": lambda p: (shutil.copy(ws.calibration, p), _cut(p, 100)),
        "objects.npz": lambda p: _npz(p, pixels=np.array([{"a": 1}] * 4, dtype=object)),
        "other-input.npz": lambda p: _npz(p, image=pixels),
        "empty.npz": lambda p: _npz(p, pixels=pixels[:0]),
        "text.npz": lambda p: p.write_text("not an archive"),
    }
    said = {}
    for name, make in cases.items():
        make(ws.claim / name)
        message = ws.refuse("pvc://models/digits.pt", "torchscript", f"pvc://models/{name}")
        assert "Traceback" not in message, message
        said[name] = message
    assert said["other-input.npz"].endswith("calibration data lacks inputs: pixels"), said
    assert "every input needs the same number (>0) of samples" in said["empty.npz"], said
    for name in ("truncated.npz", "objects.npz", "text.npz"):
        assert f"calibration data {name} cannot be read:" in said[name], said
