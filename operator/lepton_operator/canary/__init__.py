"""The canary check: one real inference against each new Triton pod before it serves.

Each serving pod carries a readiness gate (``GATE``); Kubernetes keeps the pod out of
the Service's endpoints, and a rolling update keeps the old pods, until the operator
has sent the pod the builder's sample input and found the answer it recorded. A pod
that answers wrongly never serves, and the operator rolls the model back.
"""

from lepton_operator.constants import GATE

__all__ = ["GATE"]
