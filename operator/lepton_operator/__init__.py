"""lepton-operator: cost-aware AI inference on Kubernetes.

The public surface is re-exported here with ``__all__``; everything else is private.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
