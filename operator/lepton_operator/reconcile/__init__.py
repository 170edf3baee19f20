"""One idempotent pass over a LeptonModel, in steps: ``reconciler`` runs them,
``builds`` reads build Jobs and reports, ``record`` writes what was decided and
observed into the typed status, ``state`` carries the status, conditions and Events
of one pass."""

from lepton_operator.reconcile.reconciler import LiveSource, Reconciler
from lepton_operator.reconcile.state import Event, Outcome

__all__ = ["Event", "LiveSource", "Outcome", "Reconciler"]
