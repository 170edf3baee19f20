"""Which Triton the serving search starts: NGC's on PATH, else the nvidia-pytriton
wheel's through the builder's launcher (what the builder image has), else none."""

from __future__ import annotations

import os
import stat
import sys

from lepton_builder import wheel_triton
from lepton_builder.servingsearch import find_server


def _on_path(monkeypatch, tmp_path, *names: str) -> None:
    for name in names:
        exe = tmp_path / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))


def test_ngc_tritonserver_on_path_comes_first(monkeypatch, tmp_path):
    _on_path(monkeypatch, tmp_path, "tritonserver")
    assert find_server() == ("tritonserver",)


def test_without_one_on_path_the_wheel_is_launched_by_this_python(monkeypatch, tmp_path):
    _on_path(monkeypatch, tmp_path)
    assert find_server() == (sys.executable, "-m", "lepton_builder.wheel_triton")


def test_without_either_there_is_none_and_a_named_server_must_exist(monkeypatch, tmp_path):
    _on_path(monkeypatch, tmp_path, "my-triton")
    monkeypatch.setattr(wheel_triton, "available", lambda: False)
    assert find_server() is None
    assert find_server("my-triton") == ("my-triton",)
    assert find_server("absent-triton") is None


def test_the_backend_folder_gets_the_stub_of_the_running_python(tmp_path):
    backends = wheel_triton.prepare_backends(tmp_path / "backends")
    stub = backends / "python" / "triton_python_backend_stub"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheel_stub = (
        wheel_triton.binary().parents[1]
        / "python_backend_stubs"
        / version
        / "triton_python_backend_stub"
    )
    assert stub.read_bytes() == wheel_stub.read_bytes()
    assert os.access(wheel_triton.binary(), os.X_OK)
    assert (wheel_triton.cache_directory() / "local").is_dir()


def test_a_server_that_did_not_start_is_reported_by_its_error_lines_not_its_tail():
    """Seen on the builder image: the log's last 2000 characters began with the options
    table, the report keeps a reason's first 1000, so the stub's missing libpython
    never reached the report."""
    from lepton_builder.servingsearch import _why

    table = "\n".join(f"| option_{i} | value |" for i in range(60))
    log = (
        'I1207 01:10:38.202214 28586 model_lifecycle.cc:472] "loading: digits:1"\n'
        'E1207 01:10:38.201176 28586 server.cc:241] "CudaDriverHelper has not been initialized."\n'
        f"{table}\n"
        "error: creating server: Invalid argument - load failed for model 'digits'\n"
    )
    why = _why(log)
    assert why.startswith("E1207 01:10:38.201176 28586 server.cc:241]")
    assert why.endswith("load failed for model 'digits'")
    assert "option_" not in why
    assert _why("no error lines at all") == "no error lines at all"
