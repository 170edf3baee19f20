"""Run the wheel's ``tritonserver`` with a Deployment's own arguments.

The NGC image finds its backends at ``/opt/tritonserver/backends``; the wheel's binary
needs ``--backend-directory`` (a writable copy with this Python's stub, made under
``$TMPDIR``, which is the pod's emptyDir), ``--cache-directory`` (the wheel's response
cache) and its libraries on ``LD_LIBRARY_PATH``.
Everything else, ports, repository, models and metrics flags, comes from the pod.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from lepton_e2e import triton


def main() -> None:
    backends = triton.prepare_backends(Path(tempfile.gettempdir()) / "triton-backends")
    argv = [
        str(triton.binary()),
        f"--backend-directory={backends}",
        f"--cache-directory={triton.cache_directory()}",
        *sys.argv[1:],
    ]
    os.execve(argv[0], argv, triton.server_env())


if __name__ == "__main__":
    main()
