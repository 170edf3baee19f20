"""Checks on a source named by a user, made before any loader reads a byte of it.

A LeptonModel's ``model.uri`` and ``calibrationUri`` are written by whoever may create
the object, and the files they name are whatever sits on the claim; both are untrusted.
Each check here refuses with a reason a person can act on (the build Job's termination
message), and none of them runs code from the file: pickles are scanned with
``pickletools`` (it decodes opcodes, it never imports or calls), safetensors headers are
read as JSON, and sizes come from ``stat`` before anything is opened.
"""

from __future__ import annotations

import json
import os
import pickletools
import re
import struct
import zipfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO

ALLOWED_SCHEMES = ("pvc",)
ALLOWED = (
    "allowed: pvc://<claim>/<path> (the claim the build Job mounts read-only), "
    "s3://[[http(s)://]host:port/]<bucket>/<key>, https://<host>/<path> and "
    "hf://<org>/<name>[@<revision>]"
)
# A PersistentVolumeClaim's name is a DNS-1123 subdomain: never "..", never empty.
_CLAIM_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
# The safetensors format's own bound on its JSON header.
SAFETENSORS_MAX_HEADER = 100_000_000

# What the pickles inside TorchScript and torch.export archives may name: TorchScript's
# own types (resolved from the archive's TorchScript code, never imported as Python) and
# the tensor-rebuilding helpers torch's weights-only unpickler allows. Anything else (a
# module function such as builtins.open, os.system, subprocess.Popen) is a program.
_ALLOWED_MODULE_PREFIXES = ("__torch__.", "torch.jit._pickle.")
_ALLOWED_MODULES = {"__torch__", "torch.jit._pickle"}
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_wrapper_subclass"),
    ("torch.serialization", "_get_layout"),
}
_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GETS = {"GET", "BINGET", "LONG_BINGET"}
_EXTENSIONS = {"EXT1", "EXT2", "EXT4"}
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_NESTING = 2
# torch.export archive members loaded as native code, or unpickled without restriction.
_EXPORT_NATIVE_DIRS = ("data/aotinductor/",)
_PICKLED_CONSTANT_PREFIXES = ("custom_obj_", "opaque_obj_")


class LoadError(Exception):
    """The model cannot be used; the message says why (the Job exits non-zero)."""


def _allowed_global(module: str, name: str) -> bool:
    """Whether a pickle may name ``module.name``: TorchScript types, or tensor storage."""
    if module in _ALLOWED_MODULES or module.startswith(_ALLOWED_MODULE_PREFIXES):
        return True
    if module == "torch" and name.endswith("Storage"):
        return True  # torch.FloatStorage and kin: typed storages, plain data
    return (module, name) in _ALLOWED_GLOBALS


def parse_uri(uri: str) -> tuple[str, str]:
    """``pvc://claim/path`` -> (claim, path inside it); any other form is refused.

    Only ``pvc://`` is read by this builder: ``file://`` would reach the builder's own
    filesystem (service account token, other mounts), and no caller uses it.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise LoadError(f"{uri!r} holds a control character; a source URI is plain text")
    scheme, separator, rest = uri.partition("://")
    if not separator:
        raise LoadError(f"{uri!r} is not a URI; {ALLOWED}")
    if scheme not in ALLOWED_SCHEMES:
        raise LoadError(f"{scheme}:// sources are not supported by this builder; {ALLOWED}")
    claim, _, relative = rest.split("?", 1)[0].partition("/")
    if not _CLAIM_NAME.fullmatch(claim):
        raise LoadError(f"{uri} escapes its claim: {claim!r} is not a PersistentVolumeClaim name")
    return claim, relative


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def claim_root(sources_root: Path, claim: str) -> Path:
    """Where the Job mounts the claim (``/sources/<claim>``), as a real path."""
    return _real(sources_root / claim)


def inside_claim(uri: str, root: Path, path: Path) -> Path:
    """The real path (symlinks followed), refused unless it lies under the claim's root.

    ``..`` segments, an absolute path after the claim (``pvc://c//etc``) and a symlink
    on the claim that points elsewhere all resolve outside ``root``.
    """
    real = _real(path)
    if not real.is_relative_to(root):
        raise LoadError(f"{uri} escapes its claim: it resolves to {real}, outside {root}")
    return real


def _folder_entries(uri: str, folder: Path, root: Path) -> Iterator[Path]:
    """Every file under a model folder, each checked to stay on the claim."""
    for parent, dirs, files in os.walk(folder):  # never follows symlinked folders
        for name in dirs:
            entry = Path(parent) / name
            if entry.is_symlink():
                raise LoadError(
                    f"{uri}: {entry.relative_to(folder)} is a symlinked folder; "
                    "a model folder's folders must be real ones"
                )
        for name in files:
            entry = Path(parent) / name
            real = _real(entry)
            if not real.is_relative_to(root):
                raise LoadError(
                    f"{uri} escapes its claim: {entry.relative_to(folder)} resolves to "
                    f"{real}, outside {root}"
                )
            if not real.is_file():
                raise LoadError(f"{uri}: {entry.relative_to(folder)} is not a regular file")
            yield real


def measure(uri: str, path: Path, root: Path) -> int:
    """Bytes a source holds, from ``stat`` alone; a missing or special file is refused."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in _folder_entries(uri, path, root))
    if not path.exists():
        raise LoadError(f"nothing at {uri} (looked in {path})")
    raise LoadError(f"{uri} is neither a regular file nor a folder")


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def check_size(uri: str, size: int, limit: int) -> None:
    """Refuse before reading: a huge file would fill the Job's memory or disk first."""
    if size > limit:
        raise LoadError(
            f"{uri} is {size} bytes ({_human(size)}), over the builder's limit of "
            f"{limit} bytes ({_human(limit)}); refused before reading it"
        )


def check_safetensors(uri: str, path: Path) -> None:
    """A safetensors file whose header and length agree: a truncated or padded file is
    refused here with its numbers, not deep inside a loader with a stack trace."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise LoadError(
                f"{uri}: {path.name} is truncated: {size} bytes, too short for a header"
            )
        (length,) = struct.unpack("<Q", prefix)
        if length > min(SAFETENSORS_MAX_HEADER, size - 8):
            raise LoadError(
                f"{uri}: {path.name} is truncated or corrupt: its header claims {length} bytes, "
                f"the file holds {size - 8} after the length"
            )
        header = _safetensors_header(f"{uri}: {path.name}", handle.read(length))
    data = size - 8 - length
    end = max((_tensor_end(f"{uri}: {path.name}", k, v) for k, v in header.items()), default=0)
    if end != data:
        state = "truncated" if end > data else "padded"
        raise LoadError(
            f"{uri}: {path.name} is {state}: its header places {end} bytes of tensor data, "
            f"the file holds {data}"
        )


def _safetensors_header(name: str, raw: bytes) -> dict[str, object]:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LoadError(f"{name} has a corrupt header: {error}") from error
    if not isinstance(header, dict):
        raise LoadError(f"{name} has a corrupt header: not a JSON object")
    header.pop("__metadata__", None)
    return header


def _tensor_end(name: str, tensor: str, entry: object) -> int:
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise LoadError(f"{name} has a corrupt header: tensor {tensor!r} has no valid offsets")
    return int(offsets[1])


def check_archive(uri: str, path: Path, limit: int, fmt: str) -> None:
    """A TorchScript or torch.export file is a zip archive whose pickles name only
    tensor types; a bare pickle, or one that imports a function, is refused unread.

    ``torch.jit.load`` unpickles with TorchScript's restricted unpickler, but
    ``torch.export.load`` unpickles some payloads with ``weights_only=False`` or plain
    ``pickle.loads``, and loads AOTInductor shared libraries: those are refused here.
    """
    if not path.is_file():
        raise LoadError(f"cannot load {fmt} model from {uri}: a folder, not an archive file")
    if not zipfile.is_zipfile(path):
        raise LoadError(
            f"cannot load {fmt} model from {uri}: not a zip archive, as TorchScript and "
            "torch.export files are; a bare pickle is never unpickled, since unpickling "
            "runs code"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            _check_members(uri, archive, limit, depth=0)
            if fmt == "torch-export":
                _check_export(uri, archive)
    except (zipfile.BadZipFile, OSError, EOFError) as error:  # a damaged archive
        raise LoadError(f"{uri} is a damaged zip archive: {error}") from error


def _check_members(where: str, archive: zipfile.ZipFile, limit: int, depth: int) -> None:
    """Scan every pickle, and every archive nested inside (torch.save blobs)."""
    entries = [e for e in archive.infolist() if not e.is_dir()]
    check_size(f"{where} (unpacked)", sum(e.file_size for e in entries), limit)
    for entry in entries:
        with archive.open(entry) as stream:
            if entry.filename.endswith("pkl"):  # data.pkl, constants.pkl, *.debug_pkl
                _scan_pickle(where, entry.filename, stream)
            elif stream.read(4) == _ZIP_MAGIC:
                if depth >= _MAX_NESTING:
                    raise LoadError(f"{where}: {entry.filename} nests archives too deep")
                stream.seek(0)
                with zipfile.ZipFile(stream) as inner:
                    _check_members(f"{where}: {entry.filename}", inner, limit, depth + 1)
            elif entry.filename.endswith(".pt"):  # a torch.save blob in the legacy format
                raise LoadError(
                    f"{where}: {entry.filename} is a bare pickle, not a zip archive; "
                    "it is never unpickled, since unpickling runs code"
                )


def _check_export(uri: str, archive: zipfile.ZipFile) -> None:
    """What ``torch.export.load`` would run rather than read is refused by name."""
    names = {name.partition("/")[2]: name for name in archive.namelist()}
    format_file = names.get("archive_format")
    if format_file is None or archive.read(format_file).strip() != b"pt2":
        raise LoadError(
            f"{uri} is not a torch.export archive in the current pt2 format; older formats "
            "unpickle with weights_only=False: save it again with torch.export.save"
        )
    for inner, name in names.items():
        if inner.startswith(_EXPORT_NATIVE_DIRS):
            raise LoadError(
                f"{uri}: {name} is compiled native code (AOTInductor), which loading "
                "would run; export the program without compiling it"
            )
        if inner.startswith(("data/weights/", "data/constants/")) and inner.endswith(
            "_config.json"
        ):
            _check_payload_config(uri, name, archive.read(name))


def _check_payload_config(uri: str, name: str, raw: bytes) -> None:
    """Every weight and constant is raw tensor bytes, never a pickle to unpickle."""
    try:
        config = json.loads(raw).get("config", {})
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        raise LoadError(f"{uri}: {name} is not a valid payload config: {error}") from error
    if not isinstance(config, dict):
        raise LoadError(f"{uri}: {name} is not a valid payload config")
    for key, payload in config.items():
        path_name = str(payload.get("path_name", "")) if isinstance(payload, dict) else ""
        pickled = isinstance(payload, dict) and payload.get("use_pickle") is not False
        if pickled or path_name.startswith(_PICKLED_CONSTANT_PREFIXES):
            raise LoadError(
                f"{uri}: {key!r} in {name} is stored as a pickle, which torch.export.load "
                "would unpickle with code; only raw tensor payloads are read"
            )


def _scan_pickle(uri: str, entry: str, stream: IO[bytes]) -> None:
    for module, name in pickle_globals(uri, entry, stream):
        if not _allowed_global(module, name):
            raise LoadError(
                f"{uri}: {entry} would import {module}.{name}, which is not a tensor type; "
                "pickled code is never run"
            )


def pickle_globals(uri: str, entry: str, stream: IO[bytes]) -> list[tuple[str, str]]:
    """Every (module, name) a pickle would import, read from its opcodes, never run.

    ``STACK_GLOBAL`` takes its names from the stack, so the strings pushed (directly or
    through the memo) are tracked; a name that cannot be followed counts as forbidden.
    """
    found: list[tuple[str, str]] = []
    strings = _Strings()
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            named = _imported(opcode.name, arg, strings)
            if named is not None:
                found.append(named)
            strings.track(opcode.name, arg)
    except ValueError as error:  # pickletools' word for a malformed stream
        raise LoadError(f"{uri}: {entry} is not a well-formed pickle: {error}") from error
    return found


def _imported(op: str, arg: object, strings: _Strings) -> tuple[str, str] | None:
    """The (module, name) this opcode imports, or None when it imports nothing."""
    if op in ("GLOBAL", "INST"):
        module, _, name = str(arg).partition(" ")
        return module, name
    if op == "STACK_GLOBAL":
        pushed_module, pushed_name = strings.last_two()
        return pushed_module or "<unknown>", pushed_name or "<unknown>"
    if op in _EXTENSIONS:  # copyreg's registry names a (module, name) by a number
        return "<extension registry>", str(arg)
    return None


class _Strings:
    """The last two pushes (when strings) and the memoized strings, for STACK_GLOBAL."""

    def __init__(self) -> None:
        self.pushed: deque[str | None] = deque([None, None], maxlen=2)
        self.memo: dict[int, str] = {}
        self.memoized = 0

    def last_two(self) -> tuple[str | None, str | None]:
        return self.pushed[0], self.pushed[1]

    def track(self, op: str, arg: object) -> None:
        if op in _STRING_OPS:
            self.pushed.append(str(arg))
        elif op == "MEMOIZE" or op in _MEMO_PUTS:
            index = self.memoized if op == "MEMOIZE" else int(str(arg))
            self.memoized += 1
            if self.pushed[1] is not None:
                self.memo[index] = self.pushed[1]
        elif op in _MEMO_GETS:
            self.pushed.append(self.memo.get(int(str(arg))))
        else:
            self.pushed.append(None)
