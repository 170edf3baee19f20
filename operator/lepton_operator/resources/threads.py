"""How many CPU threads one replica's runtime gets: its pool's CPU request.

ONNX Runtime and torch size their thread pools to the cores of the node they run on,
not to the pod's share of it: on a 64-core node a replica requesting 2 CPUs would run
dozens of threads, contend with its neighbours (or be throttled under a CPU limit), and
the builder's profile, measured with every core of the build node, would overstate what
one replica carries. So each build is told the pool's CPU request, rounded down and at
least one; it profiles with that many threads and writes the same count into the
Triton model configuration it serves with.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from lepton_operator.api.spec import PoolSpec

# The suffixes of QUANTITY_PATTERN (an exponent such as "2e3" Decimal reads itself).
_QUANTITY = re.compile(
    r"^(?P<number>[+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)(?P<suffix>[KMGTPE]i|[numkMGTPE])?$"
)
_DECIMAL_SUFFIX = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIX = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
# More threads than any node has cores would only be a typo's consequence.
MAX_THREADS = 1024


def cpu_cores(quantity: str) -> Decimal | None:
    """A Kubernetes CPU quantity ("2", "500m", "1.5", "2e0") in cores; None if unreadable."""
    match = _QUANTITY.match(quantity.strip())
    if not match:
        return None
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        return None
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SUFFIX:
        return number * Decimal(2 ** _BINARY_SUFFIX[suffix])
    return number.scaleb(_DECIMAL_SUFFIX.get(suffix, 0))


def runtime_threads(pool: PoolSpec) -> int:
    """The intra-op threads of the pool's replicas: its CPU request rounded down, at
    least 1 and at most MAX_THREADS; 0 (the runtime's own default) where the pool
    requests no CPU."""
    quantity = pool.resources.get("cpu")
    cores = cpu_cores(quantity) if quantity else None
    if cores is None or not cores.is_finite() or cores <= 0:
        return 0
    return min(MAX_THREADS, max(1, math.floor(cores)))
