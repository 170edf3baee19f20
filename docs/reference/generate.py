"""Write docs/reference/ from the sources it documents, so the pages cannot drift.

    python docs/reference/generate.py          # rewrite leptonmodel.md and configuration.md
    python docs/reference/generate.py --check  # exit 1 if either is not what the sources give

- ``leptonmodel.md`` comes from the CRD's schema (``lepton_operator.api.reference``,
  which renders ``crd.render_crd()``): the same schema ``make crds`` writes, so the
  page and the apiserver cannot disagree.
- ``configuration.md`` comes from the chart: the ``# --`` comments in
  ``charts/lepton-operator/values.yaml`` (helm-docs' convention, ``# @default --`` too)
  for descriptions and defaults, ``values.schema.json`` for types and constraints.
  Pure Python, so no helm-docs binary is needed. YAML parsers drop comments, so the
  comments are read line by line, and the keys found that way are checked against
  what ``yaml.safe_load`` sees: a layout the reader misunderstands stops here.

tests/unit/docs runs ``--check``, and ``make lint`` does too.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lepton_operator.api import reference

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
CHART = REPO_ROOT / "charts" / "lepton-operator"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
_ITEM = re.compile(r"^(?P<indent> *)- ")
_COMMENT = re.compile(r"^ *#(?P<text>.*)$")


@dataclass
class Key:
    """One key of values.yaml with its ``# --`` comment (empty when it has none)."""

    path: tuple[str, ...]
    description: str
    default_text: str | None  # from ``# @default --``, shown instead of the value
    inline: bool  # its value is written on its own line ({a: 1}, [x], a scalar)


def _comment(lines: list[str]) -> tuple[str, str | None]:
    """(description, @default text) from the comment block right above a key."""
    start = next((i for i, line in enumerate(lines) if line.startswith("--")), None)
    if start is None:
        return "", None
    description: list[str] = []
    default = None
    for line in lines[start:]:
        if line.startswith("--"):
            description.append(line[2:].strip())
        elif line.startswith("@default --"):
            default = line[len("@default --") :].strip()
        else:
            description.append(line.strip())
    return " ".join(d for d in description if d), default


def read_keys(text: str) -> list[Key]:
    """Mapping keys of a values file, in file order, with their comments.

    Keys inside list items (``config.pools``) are the list's content, not options of
    their own, and are skipped, as helm-docs does; so is a block scalar's text.
    """
    keys: list[Key] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    block: list[str] = []  # comment lines right above the current line
    inside: int | None = None  # indent of the key whose list or text is being skipped
    for line in text.splitlines():
        if not line.strip():
            block = []
            continue
        if match := _COMMENT.match(line):
            block.append(match["text"].strip())
            continue
        indent = len(line) - len(line.lstrip(" "))
        if inside is not None:
            if indent > inside or (indent == inside and _ITEM.match(line)):
                block = []
                continue
            inside = None
        if item := _ITEM.match(line):
            owners = [i for i, _ in stack if i <= len(item["indent"])]
            inside, block = (owners[-1] if owners else 0), []
            continue
        key = _KEY.match(line)
        if key is None:
            raise ValueError(f"values.yaml: cannot read this line: {line!r}")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key["key"]))
        rest = line[key.end() :].split(" #")[0].strip()
        if rest[:1] in ("|", ">"):
            inside = indent
        description, default = _comment(block)
        keys.append(Key(tuple(k for _, k in stack), description, default, bool(rest)))
        block = []
    return keys


def _mapping_paths(values: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every mapping key's path, not descending into lists."""
    if not isinstance(values, dict):
        return []
    paths = []
    for key, value in values.items():
        paths.append((*prefix, str(key)))
        paths += _mapping_paths(value, (*prefix, str(key)))
    return paths


def _check_read(keys: list[Key], values: Any) -> None:
    """The line reader found exactly YAML's keys (less those inside inline values)."""
    inline = [k.path for k in keys if k.inline]
    expected = {
        p for p in _mapping_paths(values) if not any(p[: len(i)] == i and p != i for i in inline)
    }
    found = [k.path for k in keys]
    if len(found) != len(set(found)) or set(found) != expected:
        raise ValueError(
            "values.yaml: the keys read line by line differ from YAML's: "
            f"{sorted(set(found) ^ expected)}"
        )


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for part in path:
        schema = (schema.get("properties") or {}).get(part) or {}
    return schema


def _type(schema: dict[str, Any], value: Any) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " \\| ".join(kind)
    if kind:
        return str(kind)
    if "enum" in schema:
        return "string" if all(isinstance(v, str) for v in schema["enum"]) else "any"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), "object" if isinstance(value, dict) else "array"
    )


def constraints(schema: dict[str, Any]) -> list[str]:
    """What values.schema.json rejects, in words (shared wording with the CRD page)."""
    out = reference.constraints(schema)
    if schema.get("required"):
        out.append("requires " + ", ".join(reference.code(k) for k in schema["required"]))
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict) and (values := additional.get("type")):
        kinds = values if isinstance(values, list) else [values]
        out.append("values: " + " or ".join(kinds))
    items = schema.get("items") or {}
    if items.get("required"):
        out.append("each requires " + ", ".join(reference.code(k) for k in items["required"]))
    return out


def render_configuration(values_text: str, schema: dict[str, Any]) -> str:
    values = yaml.safe_load(values_text)
    keys = read_keys(values_text)
    _check_read(keys, values)
    documented = {k.path for k in keys if k.description}
    rows = []
    for key in keys:
        # A key without a comment is covered by a documented parent's default; listed
        # only when nothing above it is documented, so no option goes missing.
        covered = any(key.path[:i] in documented for i in range(1, len(key.path)))
        if not key.description and covered:
            continue
        value = _lookup(values, key.path)
        node = _schema_at(schema, key.path)
        if key.default_text is not None:
            default = reference.escape(key.default_text)
        elif any(k.path[:-1] == key.path and k.description for k in keys):
            default = ""  # the rows of its documented keys show it, one by one
        else:
            default = reference.code(json.dumps(value, separators=(",", ":")))
        rows.append(
            f"| {reference.code('.'.join(key.path))} | {_type(node, value)} | {default} | "
            f"{'; '.join(constraints(node))} | "
            f"{reference.escape(key.description) or '(undocumented)'} |"
        )
    return "\n".join(
        [
            "<!-- Generated by `python docs/reference/generate.py` from "
            "charts/lepton-operator/values.yaml and values.schema.json; do not edit. -->",
            "",
            "# Operator configuration reference",
            "",
            "The values of the `lepton-operator` Helm chart (`charts/lepton-operator`). Each "
            "description is the `# --` comment above the key in `values.yaml`; types and "
            "constraints come from `values.schema.json`, which Helm checks on `install`, "
            "`upgrade` and `template`, so a typo fails with the key's name. The `config` "
            "block is rendered into a ConfigMap and validated again by the operator at start "
            "(`operator/lepton_operator/config.py`): a bad value stops it with a message "
            "naming the field.",
            "",
            "```sh",
            "helm install lepton charts/lepton-operator -n lepton-system --create-namespace \\",
            "  --set config.prometheus.url=http://prometheus.monitoring.svc:9090",
            "```",
            "",
            "| key | type | default | constraints | description |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def render() -> dict[str, str]:
    """File name (in docs/reference/) -> content."""
    return {
        "leptonmodel.md": reference.render_markdown(),
        "configuration.md": render_configuration(
            VALUES.read_text(), json.loads(SCHEMA.read_text())
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/reference/ from its sources.")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = HERE / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if not args.check:
                path.write_text(text)
                print(f"wrote docs/reference/{name}", file=sys.stderr)
    if args.check and stale:
        print(
            f"stale: {', '.join(stale)}; run `make docs` (python docs/reference/generate.py)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
