"""The pydantic API and the CRD generated from it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lepton_operator import api
from lepton_operator.api import crd


def test_the_committed_crds_match_the_models():
    assert crd.main(["--check"]) == 0, "run `make crds` and commit the result"


def test_defaults_fill_in_what_the_user_left_out(spec):
    parsed = api.parse_spec(spec)
    assert parsed.scaling.min_replicas == 1 and parsed.scaling.max_replicas == 4
    assert parsed.optimization.batch_sizes == [1, 8, 32]
    assert parsed.optimization.accuracy.metric == "cosine"


def test_unknown_fields_are_rejected_by_name(spec):
    spec["slo"]["p95LatencyMS"] = 3
    with pytest.raises(ValidationError, match="p95LatencyMS"):
        api.parse_spec(spec)


def test_crd_schema_is_structural_and_explains_itself():
    schema = crd.render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def walk(node, path):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert "type" in node or "x-kubernetes-preserve-unknown-fields" in node, path
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["model", "slo"]
    assert spec["properties"]["slo"]["properties"]["p95LatencyMs"]["description"]
    assert spec["properties"]["scaling"]["default"]["maxReplicas"] == 4
    exclusive = spec["properties"]["slo"]["properties"]["p95LatencyMs"]
    assert (exclusive["minimum"], exclusive["exclusiveMinimum"]) == (0, True)
    rules = [r["rule"] for r in spec["properties"]["scaling"]["x-kubernetes-validations"]]
    assert "self.minReplicas <= self.maxReplicas" in rules


def test_crd_has_scale_status_printer_columns_and_short_name():
    version = crd.render_crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert "status" in version["subresources"]
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == [
        "Phase",
        "Mode",
        "Variant",
        "Pool",
        "Replicas",
        "P95",
        "$/H",
        "Age",
    ]
    # `kubectl get lm -o wide` adds what advisory mode would serve, and its saving.
    assert [c["name"] for c in columns if c.get("priority")] == ["Recommends", "On", "Saving/H"]
    assert crd.render_crd()["spec"]["names"]["shortNames"] == ["lm"]


def test_a_union_a_crd_cannot_express_is_refused():
    with pytest.raises(ValueError, match="union"):
        crd.to_structural({"anyOf": [{"type": "string"}, {"type": "integer"}]})


# Names that refer to Kubernetes objects are Kubernetes names (DNS subdomains): one the
# apiserver could never store is refused where the user wrote it, naming the field.
BAD_NAMES = ("Bad_Name", "UPPER", "a..b", "-lead", "trail-", "dot.", "a b", "x" * 254, "ключ")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_credentials_secret_that_is_no_kubernetes_name_is_refused(spec, name):
    spec["model"]["credentialsSecret"] = name
    with pytest.raises(ValidationError) as raised:
        api.parse_spec(spec)
    assert [e["loc"] for e in raised.value.errors()] == [("model", "credentialsSecret")]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_repository_secret_that_is_no_kubernetes_name_is_refused(spec, name):
    spec["repository"] = {"s3": {"uri": "s3://bucket/prefix", "credentialsSecret": name}}
    with pytest.raises(ValidationError) as raised:
        api.parse_spec(spec)
    locs = [e["loc"] for e in raised.value.errors()]
    assert locs == [("repository", "s3", "credentialsSecret")]


@pytest.mark.parametrize("name", ["s3-creds", "a", "team.models.v1", "a" * 253])
def test_kubernetes_names_are_admitted_as_secrets(spec, name):
    spec["model"]["credentialsSecret"] = name
    assert api.parse_spec(spec).model.credentials_secret == name


@pytest.mark.parametrize("claim", ["a..b", "a.-b", "a-.b", ".a"])
def test_a_pvc_uri_whose_claim_no_claim_can_be_named_is_refused(spec, claim):
    spec["model"]["uri"] = f"pvc://{claim}/model.safetensors"
    with pytest.raises(ValidationError) as raised:
        api.parse_spec(spec)
    assert [e["loc"] for e in raised.value.errors()] == [("model", "uri")]


@pytest.mark.parametrize(("side", "shape", "index"), [("inputs", [0], 0), ("outputs", [-1, 0], 1)])
def test_a_tensor_dimension_of_zero_is_refused_naming_the_dimension(spec, side, shape, index):
    spec["model"][side][0]["shape"] = shape
    with pytest.raises(ValidationError) as raised:
        api.parse_spec(spec)
    [error] = raised.value.errors()
    assert error["loc"] == ("model", side, 0, "shape", index)
    assert "-1 (dynamic) or at least 1" in error["msg"]


def test_the_crd_refuses_a_zero_dimension_at_admission():
    model = crd.render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]["properties"]["model"]["properties"]
    for side in ("inputs", "outputs"):
        item = model[side]["items"]["properties"]["shape"]["items"]
        assert {"rule": "self != 0", "message": "a dimension is -1 (dynamic) or at least 1"} in (
            item["x-kubernetes-validations"]
        )
    assert model["credentialsSecret"]["pattern"].startswith("^[a-z0-9]")


def test_a_quantity_with_a_huge_exponent_is_refused_naming_the_field() -> None:
    """The apiserver computes 10^exponent exactly: a Job asking cpu '.4e-401381483131'
    (admitted once, found by the e2e property test) timed its dry run out. Refused here
    and at admission (the CRD carries the same pattern), not left to hang the apiserver."""
    from lepton_operator.api.spec import PoolSpec

    base = {"name": "p", "hourlyPriceUSD": 1}
    assert PoolSpec.model_validate({**base, "resources": {"cpu": "1e3"}})
    with pytest.raises(ValidationError, match=r"resources\.cpu"):
        PoolSpec.model_validate({**base, "resources": {"cpu": "+.396e-401381483131"}})


def test_a_status_field_that_does_not_validate_is_dropped_and_the_rest_kept() -> None:
    from lepton_operator.api.status import read_status, status_wire

    raw = {
        "phase": "Ready",
        "kopf": {"progress": {}},  # kopf's own key: not ours, not read
        "decision": {"variant": "int8"},  # written otherwise by some other version
        "replicas": 2,
        "coldStarts": [{"pool": "cpu", "variant": "int8", "seconds": 4.0, "time": "t"}],
    }
    status = read_status(raw)
    assert (status.phase, status.decision, status.replicas) == ("Ready", None, 2)
    assert [c.seconds for c in status.cold_starts] == [4.0]
    wire = status_wire(status)
    assert wire == {
        "phase": "Ready",
        "replicas": 2,
        "coldStarts": [{"pool": "cpu", "variant": "int8", "seconds": 4.0, "time": "t"}],
    }  # no empty lists, no unset fields: the merge patch writes only what is known
    assert read_status(None) == read_status({}) == read_status({"phase": 7})
