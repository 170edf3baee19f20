"""docs/reference/ is generated from the API and the chart, and says what they say."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lepton_operator.api import crd, reference

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs" / "reference"


def _generate() -> ModuleType:
    name = "reference_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_reference_pages_are_what_the_sources_generate():
    """Fails after a change of the API or the chart's values until `make docs` ran."""
    assert _generate().main(["--check"]) == 0, "run `make docs` and commit the result"


def _objects(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)] if "properties" in schema else []
    for name, child in (schema.get("properties") or {}).items():
        found += _objects(child, f"{path}.{name}")
        found += _objects(child.get("items") or {}, f"{path}.{name}[]")
    return found


def test_every_field_and_cel_rule_of_the_crd_is_on_the_page():
    page = reference.render_markdown()
    root = crd.render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    objects = [o for name in ("spec", "status") for o in _objects(root["properties"][name], name)]
    assert len(objects) > 15
    for path, schema in objects:
        section = page.split(f'<a id="{reference.anchor(path)}"></a>', 1)[1].split("<a id=", 1)[0]
        assert section.startswith(f"\n\n## `{path}`"), path
        for name in schema["properties"]:
            assert re.search(rf"^\| `{name}`( \(required\))? \|", section, re.M), (path, name)
        for rule in schema.get("x-kubernetes-validations") or []:
            assert reference.escape(rule["message"]) in section, rule["message"]
    for rule in root["x-kubernetes-validations"]:
        assert reference.escape(rule["message"]) in page


def test_every_link_on_the_page_has_its_anchor():
    page = reference.render_markdown()
    ids = set(re.findall(r'<a id="([^"]+)"></a>', page))
    links = set(re.findall(r"\]\(#([^)]+)\)", page))
    assert links and links <= ids, links - ids


def test_types_defaults_and_bounds_read_as_the_schema_says():
    page = reference.render_markdown()
    assert "| `replicas` | integer |  | >= 0; <= 1000 |" in page
    assert "| `tolerance` | number | `0.99` | > 0 |" in page  # exclusiveMinimum
    batch_sizes = "| `[1, 8, 32]` | items 1..12; unique items; each: >= 1; <= 1024 |"
    assert "| `batchSizes` | []integer " + batch_sizes in page
    assert "| `inputs` (required) | [[]object](#spec-model-inputs) |" in page
    assert "| `replicasByPool` | map[string]integer |" in page
    assert "list of unique `name`" in page


def test_markdown_text_survives_a_table_cell():
    assert reference.escape("pvc://<claim>/x | y") == "pvc://&lt;claim&gt;/x \\| y"
    assert reference.escape("`a<b` <c>") == "`a<b` &lt;c&gt;"
    assert reference.code("^(a|b)$") == "`^(a\\|b)$`"


def test_draft7_and_crd_exclusive_bounds_read_the_same():
    assert reference.constraints({"minimum": 0, "exclusiveMinimum": True}) == ["> 0"]
    assert reference.constraints({"exclusiveMinimum": 0, "maximum": 300}) == ["> 0", "<= 300"]


VALUES = """\
# Header, not a key's comment.

# -- An image.
image:
  # -- Its repository.
  repository: example/x
  # -- Its tag,
  # on two lines.
  # @default -- the chart's appVersion
  tag: ""
  pullPolicy: IfNotPresent

loose: 1

# -- Requests, in flow style.
resources: {cpu: 100m}

# -- Pools.
pools:
  - name: a
    labels: {x: y}
  - name: b
# -- After the list.
after:
  nested:
    deep: true
"""


def test_values_comments_become_rows_in_file_order():
    generate = _generate()
    schema = {"properties": {"image": {"properties": {"tag": {"type": "string"}}}}}
    page = generate.render_configuration(VALUES, schema)
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| `image`",
        "| `image.repository`",
        "| `image.tag`",
        "| `loose`",
        "| `resources`",
        "| `pools`",
        "| `after`",
    ]
    image, repository, tag, loose, resources, pools, after = rows
    assert image.split(" | ")[2] == ""  # its keys' rows show the default
    assert repository == '| `image.repository` | string | `"example/x"` |  | Its repository. |'
    assert tag.endswith("| the chart's appVersion |  | Its tag, on two lines. |")
    assert loose.endswith("| (undocumented) |")
    assert '`{"cpu":"100m"}`' in resources
    assert '`[{"name":"a","labels":{"x":"y"}},{"name":"b"}]`' in pools
    assert after.endswith("| After the list. |")


def test_a_values_layout_the_reader_misreads_is_refused():
    generate = _generate()
    with pytest.raises(ValueError, match="cannot read"):
        generate.render_configuration("a:\n  ? complex\n", {})
    with pytest.raises(ValueError, match="differ"):
        generate.render_configuration("a: {\n  b: 1}\n", {})  # a flow mapping over lines


def test_the_shipped_chart_documents_every_key():
    generate = _generate()
    values = (REPO / "charts" / "lepton-operator" / "values.yaml").read_text()
    schema = json.loads((REPO / "charts" / "lepton-operator" / "values.schema.json").read_text())
    page = generate.render_configuration(values, schema)
    assert "(undocumented)" not in page
    assert "| `config.prometheus.url` | string |" in page
    assert '| `logFormat` | string | `"json"` | one of `json`, `plain` |' in page


def test_every_spec_and_status_field_explains_itself():
    """`kubectl explain` and the reference page read these descriptions."""
    root = crd.render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    bare = [
        f"{path}.{name}"
        for top in ("spec", "status")
        for path, schema in _objects(root["properties"][top], top)
        for name, child in schema["properties"].items()
        if not child.get("description")
    ]
    assert not bare, bare
