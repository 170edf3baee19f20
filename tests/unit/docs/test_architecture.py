"""docs/architecture.md names only modules, files and links that exist.

The page describes the code by its paths, so a rename that forgets the page fails
here instead of leaving readers a map of modules that are gone.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PAGE = REPO / "docs" / "architecture.md"
# Where each top-level package's source lives.
PACKAGE_ROOTS = {
    "lepton_operator": REPO / "operator",
    "lepton_builder": REPO / "runtimes" / "builder",
    "lepton_e2e": REPO / "e2e",
}
REPO_PATH = re.compile(
    r"(?<![\w/.-])(?:operator|runtimes|e2e|charts|crds|docs|tests|examples)/[\w./-]*[\w/]"
)
DOTTED = re.compile(r"(?<![\w./])((?:lepton_operator|lepton_builder|lepton_e2e)(?:\.\w+)*)")
FILE_NAME = re.compile(r"`(\w+\.py)`")
LINK = re.compile(r"\]\(([^)#]+)(?:#[^)]*)?\)")


def _module_file(dotted: str) -> Path | None:
    top, *rest = dotted.split(".")
    base = PACKAGE_ROOTS[top].joinpath(top, *rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _defines(source: str, name: str) -> bool:
    return re.search(rf"^\s*(?:def|class)\s+{name}\b|^{name}\s*[:=]", source, re.M) is not None


def resolve(dotted: str) -> bool:
    """A module, or a module and up to two names defined in it (a function, a class and
    its method, a constant)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = _module_file(".".join(parts[:cut]))
        if module is not None:
            names = parts[cut:]
            source = module.read_text()
            return len(names) <= 2 and all(_defines(source, n) for n in names)
    return False


def test_every_repository_path_on_the_page_exists():
    text = PAGE.read_text()
    paths = set(REPO_PATH.findall(text))
    assert len(paths) > 20
    missing = sorted(p for p in paths if not (REPO / p.rstrip("/")).exists())
    assert not missing, missing


def test_every_module_on_the_page_exists():
    text = PAGE.read_text()
    names = set(DOTTED.findall(text))
    assert len(names) > 20
    missing = sorted(n for n in names if not resolve(n))
    assert not missing, missing


def test_every_file_name_on_the_page_exists_somewhere():
    known = {p.name for root in PACKAGE_ROOTS.values() for p in root.rglob("*.py")}
    names = set(FILE_NAME.findall(PAGE.read_text()))
    assert names and names <= known, names - known


def test_every_relative_link_resolves():
    links = [link for link in LINK.findall(PAGE.read_text()) if "://" not in link]
    assert links
    missing = [link for link in links if not (PAGE.parent / link).exists()]
    assert not missing, missing


def test_the_resolver_refuses_what_does_not_exist():
    assert resolve("lepton_operator.planning.planner.plan")
    assert resolve("lepton_operator.live.prometheus.PrometheusMetrics.sample")
    assert not resolve("lepton_operator.planning.nothing")
    assert not resolve("lepton_operator.planning.planner.no_such_function")
