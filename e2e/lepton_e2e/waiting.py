"""Polling for a condition with a deadline: the one wait loop of the e2e harness and its
tests, below every module that needs it (``fixtures`` re-exports it for the tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    check: Callable[[], Any], timeout: float = 60, interval: float = 0.5, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy, and return that; on timeout fail
    with ``what`` and the check's last answer (so a falsy answer that says why, such as
    ``crds.CrdStates``, is the failure's message)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
