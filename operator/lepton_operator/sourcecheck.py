"""Whether anything checks that a model's bytes are the ones meant, for its condition.

A ``pvc://`` model is on the cluster's own volume; an ``hf://`` model is checked file by
file against the Hub's listing at one commit (``lepton_builder.hub``). An ``https://``
or ``s3://`` file has nothing but ``spec.model.sha256``: without it a replaced object,
a proxy, or a wrong URL serves other weights under the same name, and the build would
profile and serve them. That deserves a warning the user sees (the ``SourceVerified``
condition and an Event), not a refusal: many teams pin by path and trust the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from lepton_operator.api.spec import ModelSource

REMOTE_FILE_SCHEMES = ("https://", "s3://")


@dataclass(frozen=True)
class SourceVerdict:
    verified: bool
    reason: str
    message: str


def source_verdict(model: ModelSource) -> SourceVerdict | None:
    """None for a model on a PVC (nothing to say)."""
    if model.uri.startswith("hf://"):
        return SourceVerdict(
            True,
            "HubChecksums",
            "every file is checked against the Hub's listing at the one commit the "
            "revision resolved to, before any loader reads it",
        )
    if not model.uri.startswith(REMOTE_FILE_SCHEMES):
        return None
    if model.sha256:
        return SourceVerdict(
            True,
            "ChecksumPinned",
            "the build checks the downloaded file against spec.model.sha256 before any "
            "loader reads it",
        )
    scheme = model.uri.split("://", 1)[0]
    return SourceVerdict(
        False,
        "NoChecksum",
        f"the {scheme}:// model has no spec.model.sha256: nothing checks that the file "
        "downloaded is the one meant (a replaced object or a wrong URL would be built "
        "and served); set spec.model.sha256 to pin it",
    )
