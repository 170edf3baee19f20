"""Pure decision logic: plain data in, plain data out, deterministic.

Never imports Kubernetes, Prometheus, Triton or torch clients, never reads a clock
(an import-linter contract enforces it), so a benchmark, a test and the operator
all run this very code.
"""

from lepton_operator.planning.choice import Candidate, NoPlan, Plan, initial_plan
from lepton_operator.planning.table import variant_rows

__all__ = ["Candidate", "NoPlan", "Plan", "initial_plan", "variant_rows"]
