"""Generates the LeptonModel CRD from the pydantic models, so the two cannot drift.

``python -m lepton_operator.api.crd`` writes ``crds/`` and the chart's copy;
``--check`` fails when the committed files differ from what the models say (CI).
Pydantic emits JSON Schema 2020-12; a CRD wants a structural OpenAPI v3 subset, so
references are inlined, ``Optional`` unions unwrapped, and exclusive bounds rewritten.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from lepton_operator.api.kube import (
    API_VERSION,
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from lepton_operator.api.spec import LeptonModelSpec
from lepton_operator.api.status import LeptonModelStatus

REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = f"{PLURAL}.{GROUP}.yaml"
OUTPUTS = (
    REPO_ROOT / "crds" / CRD_FILE,
    REPO_ROOT / "charts" / "lepton-operator" / "crds" / CRD_FILE,
)
MAX_NAME_LENGTH = 42  # derived names (<name>-build-<pool>-<hash>) must stay within 63

_DROPPED_KEYS = {"title", "$defs"}


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def to_structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inline ``$ref``s and rewrite a pydantic JSON Schema into a CRD's OpenAPI subset."""
    defs = defs if defs is not None else schema.get("$defs", {})
    node = copy.deepcopy(schema)
    while "$ref" in node or "anyOf" in node:  # Optional[Model] is anyOf[$ref, null]
        if "anyOf" in node:
            options = [o for o in node.pop("anyOf") if not _is_null(o)]
            if len(options) != 1:
                raise ValueError(f"a CRD schema cannot express this union: {options}")
            node = {**copy.deepcopy(options[0]), **node}
            if node.get("default", 0) is None:
                del node["default"]
        else:
            target = defs[node.pop("$ref").rsplit("/", 1)[1]]
            node = {**copy.deepcopy(target), **node}
    for key in _DROPPED_KEYS:
        node.pop(key, None)
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]  # structural schemas prune unknown fields
    for bound, edge in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node[bound], bool):
            node[edge] = node[bound]
            node[bound] = True
    if "properties" in node:
        node["properties"] = {k: to_structural(v, defs) for k, v in node["properties"].items()}
        node["type"] = "object"
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = to_structural(node["additionalProperties"], defs)
    if "items" in node:
        node["items"] = to_structural(node["items"], defs)
    return node


def _schema(model: type[LeptonModelSpec] | type[LeptonModelStatus]) -> dict[str, Any]:
    return to_structural(model.model_json_schema(by_alias=True, mode="validation"))


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {
            "name": "Mode",
            "type": "string",
            "jsonPath": ".spec.mode",
            "description": "active: the planner serves; advisory: it only recommends",
        },
        {"name": "Variant", "type": "string", "jsonPath": ".status.decision.variant"},
        {"name": "Pool", "type": "string", "jsonPath": ".status.decision.pool"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
        {
            "name": "P95",
            "type": "number",
            "jsonPath": ".status.p95Ms",
            "description": "p95 latency in ms, observed (else predicted)",
        },
        {
            "name": "$/H",
            "type": "number",
            "jsonPath": ".status.hourlyCostUSD",
            "description": "spend per hour in USD, observed (else predicted)",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Recommends",
            "type": "string",
            "jsonPath": ".status.recommendation.variant",
            "description": "advisory mode: the variant the planner would serve",
            "priority": 1,
        },
        {
            "name": "On",
            "type": "string",
            "jsonPath": ".status.recommendation.pool",
            "description": "advisory mode: the pool it would serve it on",
            "priority": 1,
        },
        {
            "name": "Saving/H",
            "type": "number",
            "jsonPath": ".status.recommendation.savingUSDPerHour",
            "description": "advisory mode: USD per hour it would save against spec.pinned",
            "priority": 1,
        },
    ]


def render_crd() -> dict[str, Any]:
    spec_schema = _schema(LeptonModelSpec)
    status_schema = _schema(LeptonModelStatus)
    status_schema["description"] = "Observed state, written by the operator only."
    root = {
        "type": "object",
        "description": "A model the operator builds, serves on Triton and scales against a "
        "latency SLO at the lowest cost.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [
            {
                "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && "
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "message": f"metadata.name must be a DNS-1035 label of at most {MAX_NAME_LENGTH} "
                "characters (lower-case letters, digits and '-', starting with a "
                "letter): it names the model's Service, Jobs and Deployments",
            }
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "annotations": {"lepton.ai/generated-by": "lepton_operator.api.crd"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": printer_columns(),
                }
            ],
        },
    }


def render_yaml() -> str:
    header = (
        f"# Generated from lepton_operator.api ({API_VERSION}) by "
        "`python -m lepton_operator.api.crd`; do not edit.\n"
    )
    return header + yaml.safe_dump(render_crd(), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail if the committed CRD files differ from the models",
    )
    args = parser.parse_args(argv)
    text = render_yaml()
    stale = [path for path in OUTPUTS if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(REPO_ROOT)} is stale: run `make crds`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
