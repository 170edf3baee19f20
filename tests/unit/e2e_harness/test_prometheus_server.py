"""The harness's Prometheus refuses an address another process already serves."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lepton_e2e.prometheus import PrometheusServer


def test_a_taken_address_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """A Prometheus left by an interrupted session would answer for the new one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        listen = f"127.0.0.1:{stranger.getsockname()[1]}"
        server = PrometheusServer(tmp_path, listen, [], binary=Path("/bin/true"))
        with pytest.raises(RuntimeError, match=f"{listen} is taken"):
            server.start()
        assert server.process is None
        assert not (tmp_path / "data").exists()
