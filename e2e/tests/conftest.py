"""Every test here runs against the real local cluster (see lepton_e2e.fixtures)."""

from lepton_e2e.fixtures import kube, namespace, prometheus

__all__ = ["kube", "namespace", "prometheus"]
