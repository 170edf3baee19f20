"""Pure decision logic: plain data in, plain data out, deterministic.

Never imports Kubernetes, Prometheus, Triton or torch clients, never reads a clock
(an import-linter contract enforces it), so a benchmark, a test and the operator
all run this very code.
"""

from lepton_operator.planning.outcome import NoPlan, Plan
from lepton_operator.planning.table import variant_rows

__all__ = ["NoPlan", "Plan", "variant_rows"]
