"""Which namespaces the operator watches: ``config.watchNamespaces``, read as kopf reads it.

Each item is a namespace name or one of kopf's namespace patterns: comma-separated globs
(``*`` and ``?``), a glob starting with ``!`` excluding what it matches, and an item
whose first glob excludes meaning every namespace but those (``!kube-*``). A namespace
is watched when any item matches it; an empty list watches every namespace. kopf picks
the models by these patterns; the fleet sampler must pick the same ones, so both use
kopf's own matcher rather than a second reading of the syntax.
"""

from __future__ import annotations

from collections.abc import Sequence

# kopf's matcher is not exported at the package's top level; the unit tests pin its
# semantics (tests/unit/operator/test_watched.py), so an upgrade that moves it fails there.
from kopf._cogs.structs.references import NamespaceName, match_namespace

_PATTERN_SYNTAX = frozenset("*?!,")


def are_names(patterns: Sequence[str]) -> bool:
    """Whether every item is a plain namespace name (Prometheus can then select them by
    an exact-match regex instead of the operator filtering the answers)."""
    return not any(_PATTERN_SYNTAX & set(pattern) for pattern in patterns)


def watches(namespace: str, patterns: Sequence[str]) -> bool:
    """Whether ``namespace`` is one the operator acts in, as kopf decides it."""
    return not patterns or any(
        match_namespace(NamespaceName(namespace), pattern) for pattern in patterns
    )
