"""The LeptonModel reference page (``docs/reference/leptonmodel.md``), as Markdown.

Rendered from the CRD's own ``openAPIV3Schema`` (``crd.render_crd()``), not from the
pydantic models a second way, so the page says exactly what the apiserver enforces:
types, defaults, bounds, patterns, list types and CEL rules with their messages. Each
object (and each list of objects) gets a section with an anchor of its own; a field
of that type links to it. Pure: a string out; ``docs/reference/generate.py`` writes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from lepton_operator.api.crd import render_crd
from lepton_operator.api.kube import API_VERSION, KIND

GENERATOR = "docs/reference/generate.py"
_BOUND_WORDS = (("minimum", ">", ">="), ("maximum", "<", "<="))


@dataclass
class Section:
    """One object of the schema: where it sits (``spec.model.inputs[]``) and its schema."""

    path: str
    schema: dict[str, Any]

    @property
    def anchor(self) -> str:
        return anchor(self.path)


def anchor(path: str) -> str:
    """A stable HTML id for a schema path: ``spec.pools[].accelerator`` ->
    ``spec-pools-accelerator``. Explicit ids, because each renderer slugs headings
    its own way."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def escape(text: str) -> str:
    """Markdown table-cell text: ``<``/``>`` outside code spans would read as HTML
    (``pvc://<claim>`` would vanish), ``|`` would end the cell, a newline the row."""
    parts = text.replace("\n", " ").split("`")
    for i, part in enumerate(parts):
        if i % 2 == 0:
            part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts[i] = part.replace("|", "\\|")
    return "`".join(parts)


def code(value: str) -> str:
    """A code span that survives a table cell (a pattern's ``|`` is escaped)."""
    fence = "``" if "`" in value else "`"
    pad = " " if "`" in value else ""
    return f"{fence}{pad}{value.replace('|', chr(92) + '|')}{pad}{fence}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _is_object(schema: dict[str, Any]) -> bool:
    return "properties" in schema


def type_of(schema: dict[str, Any], path: str) -> str:
    """The field's type as a reader wants it: ``[]integer``, ``map[string]string``, or a
    link to the section of an object."""
    if _is_object(schema):
        return f"[object](#{anchor(path)})"
    kind = schema.get("type", "any")
    if kind == "array":
        items = schema.get("items") or {}
        if _is_object(items):
            return f"[[]object](#{anchor(path + '[]')})"
        return "[]" + type_of(items, path + "[]")
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map[string]" + type_of(schema["additionalProperties"], path + "{}")
    return str(kind)


def _bounds(schema: dict[str, Any]) -> list[str]:
    """Bounds in both spellings: a CRD's ``exclusiveMinimum: true`` beside ``minimum``,
    and JSON Schema draft 6+'s numeric ``exclusiveMinimum`` (the chart's schema)."""
    out = []
    for key, strict, loose in _BOUND_WORDS:
        exclusive = schema.get("exclusive" + key.capitalize())
        if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool):
            out.append(f"{strict} {exclusive:g}")
        elif key in schema:
            out.append(f"{strict if exclusive is True else loose} {schema[key]:g}")
    return out


def _span(schema: dict[str, Any], low: str, high: str, noun: str) -> list[str]:
    lo, hi = schema.get(low), schema.get(high)
    if lo is not None and hi is not None:
        return [f"{noun} {lo}..{hi}"]
    if lo is not None:
        return [f"{noun} >= {lo}"]
    if hi is not None:
        return [f"{noun} <= {hi}"]
    return []


def constraints(schema: dict[str, Any]) -> list[str]:
    """Everything the apiserver checks on one value, in words."""
    out: list[str] = []
    if "enum" in schema:
        out.append("one of " + ", ".join(code(str(v)) for v in schema["enum"]))
    out += _bounds(schema)
    out += _span(schema, "minLength", "maxLength", "length")
    if "pattern" in schema:
        out.append("pattern " + code(schema["pattern"]))
    out += _span(schema, "minItems", "maxItems", "items")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = ", ".join(code(k) for k in schema.get("x-kubernetes-list-map-keys") or [])
        out.append(f"list of unique {keys}")
    elif list_type == "set" or schema.get("uniqueItems"):
        out.append("unique items")
    items = schema.get("items") or {}
    if items and not _is_object(items) and (each := constraints(items)):
        out.append("each: " + "; ".join(each))
    return out


def _sections(schema: dict[str, Any], path: str) -> list[Section]:
    """Every object below ``schema`` (itself first), depth first, in field order."""
    found = [Section(path, schema)] if _is_object(schema) else []
    for name, child in (schema.get("properties") or {}).items():
        child_path = f"{path}.{name}" if path else name
        if _is_object(child):
            found += _sections(child, child_path)
        items = child.get("items") or {}
        if _is_object(items):
            found += _sections(items, child_path + "[]")
    return found


def _field_row(name: str, schema: dict[str, Any], path: str, required: bool) -> str:
    label = code(name) + (" (required)" if required else "")
    default = code(_json(schema["default"])) if "default" in schema else ""
    return (
        f"| {label} | {type_of(schema, path)} | {default} | "
        f"{'; '.join(constraints(schema))} | {escape(schema.get('description', ''))} |"
    )


def _rules(schema: dict[str, Any]) -> list[str]:
    rules = schema.get("x-kubernetes-validations") or []
    if not rules:
        return []
    lines = [
        "",
        "Rules (CEL, checked by the apiserver at admission):",
        "",
        "| rule | message | reported at |",
        "| --- | --- | --- |",
    ]
    for rule in rules:
        where = code(rule["fieldPath"]) if rule.get("fieldPath") else ""
        lines.append(f"| {code(rule['rule'])} | {escape(rule['message'])} | {where} |")
    return lines


def render_section(section: Section, title: str = "", anchor_id: str = "") -> list[str]:
    """A heading with its anchor, the description, the CEL rules, a row per field."""
    schema, path = section.schema, section.path
    lines = [f'<a id="{anchor_id or section.anchor}"></a>', "", f"## `{title or path}`"]
    if schema.get("description"):
        lines += ["", escape(schema["description"])]
    lines += _rules(schema)
    lines += ["", "| field | type | default | constraints | description |"]
    lines.append("| --- | --- | --- | --- | --- |")
    required = set(schema.get("required") or [])
    for name, child in schema["properties"].items():
        child_path = f"{path}.{name}" if path else name
        lines.append(_field_row(name, child, child_path, name in required))
    return [*lines, ""]


def _columns(version: dict[str, Any]) -> list[str]:
    lines = ["| column | JSONPath | description |", "| --- | --- | --- |"]
    for column in version.get("additionalPrinterColumns") or []:
        lines.append(
            f"| {column['name']} | {code(column['jsonPath'])} | "
            f"{escape(column.get('description', ''))} |"
        )
    return lines


def render_markdown() -> str:
    """The whole reference page."""
    crd = render_crd()
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    names = crd["spec"]["names"]
    sections = [s for name in ("spec", "status") for s in _sections(root["properties"][name], name)]
    scale = version["subresources"]["scale"]
    lines = [
        f"<!-- Generated by `python {GENERATOR}` from lepton_operator.api (the schema of "
        "crds/leptonmodels.lepton.ai.yaml); do not edit. -->",
        "",
        f"# {KIND} reference",
        "",
        f"`apiVersion: {API_VERSION}`, `kind: {KIND}`: {escape(root['description'])} "
        f"Namespaced; plural `{names['plural']}`, short name "
        + ", ".join(f"`{n}`" for n in names["shortNames"])
        + ".",
        "",
        "Every field below is checked by the apiserver at admission (the CRD's schema and "
        "its CEL rules); the operator validates again with the same pydantic models "
        "(`operator/lepton_operator/api/`) and reports what only it can know, such as a "
        "pool name it does not have, as the `Valid` condition. Unknown fields are pruned "
        "by the apiserver and refused by the operator. `status` is written by the "
        "operator only.",
        "",
        "## Contents",
        "",
        f"- [`{KIND}`](#object)",
        *[f"- [`{s.path}`](#{s.anchor})" for s in sections],
        "- [Printer columns and subresources](#printer-columns)",
        "",
    ]
    lines += render_section(Section("", root), title=KIND, anchor_id="object")
    for section in sections:
        lines += render_section(section)
    lines += [
        '<a id="printer-columns"></a>',
        "",
        "## Printer columns and subresources",
        "",
        f"`kubectl get {names['shortNames'][0]}` shows:",
        "",
        *_columns(version),
        "",
        "The `status` subresource keeps the operator's writes apart from the user's spec. "
        f"The `scale` subresource maps `{scale['specReplicasPath']}` (desired) and "
        f"`{scale['statusReplicasPath']}` (ready), with the pods' label selector in "
        f"`{scale['labelSelectorPath']}`, so `kubectl scale {names['shortNames'][0]}` and an "
        "HPA can pin the replica count.",
        "",
    ]
    return "\n".join(lines)
