"""The activator's routing: which model a request is for, where its Ready replicas are."""

from __future__ import annotations

from typing import Any

from lepton_activator.routing import Table, model_in_path, route, service_in_host, slice_info

MANAGED = {"app.kubernetes.io/managed-by": "lepton-operator"}


def _slice(
    namespace: str, model: str, name: str, ready: list[str], activator: bool = False
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                **MANAGED,
                "lepton.ai/model": model,
                "lepton.ai/component": "activator" if activator else "triton",
                "kubernetes.io/service-name": model,
            },
        },
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ok}}
            for ip, ok in [(ip, True) for ip in ready] + [("10.0.0.99", False)]
        ],
        "ports": [{"name": "metrics", "port": 8002}, {"name": "http", "port": 8000}],
    }


def test_a_slice_gives_the_ready_addresses_on_the_http_port() -> None:
    info = slice_info(_slice("ml", "digits", "digits-x", ["10.0.0.2", "10.0.0.1"]))
    assert info is not None
    assert info.ready == ("10.0.0.1:8000", "10.0.0.2:8000")
    assert not info.activator
    assert slice_info({"metadata": {"name": "x", "namespace": "ml", "labels": {}}}) is None


def test_backends_are_triton_replicas_only_and_the_activator_slice_says_routed() -> None:
    table = Table()
    table.put(_slice("ml", "digits", "digits-activator", ["10.0.1.1"], activator=True))
    key = ("ml", "digits")
    assert table.routed_here(key) and table.backends(key) == []
    table.put(_slice("ml", "digits", "digits-abc", ["10.0.0.1"]))
    assert table.backends(key) == ["10.0.0.1:8000"]  # never the activator's own address
    table.remove({"metadata": {"name": "digits-activator", "namespace": "ml"}})
    assert not table.routed_here(key) and table.known(key)


def test_a_fresh_listing_reports_every_key_that_may_have_changed() -> None:
    table = Table()
    table.put(_slice("ml", "gone", "gone-a", []))
    changed = table.replace([_slice("ml", "digits", "digits-a", ["10.0.0.1"])])
    assert changed == {("ml", "gone"), ("ml", "digits")}
    assert not table.known(("ml", "gone"))


def test_paths_and_hosts_name_the_model() -> None:
    assert model_in_path("/v2/models/digits/infer") == "digits"
    assert model_in_path("/v2/models/digits/versions/1/infer") == "digits"
    assert model_in_path("/v2/models/digits") == "digits"
    assert model_in_path("/v2/health/ready") is None
    assert service_in_host("digits.ml.svc.cluster.local:8000") == ("ml", "digits")
    assert service_in_host("digits.ml:8000") == ("ml", "digits")
    assert service_in_host("10.0.0.1:8000") is None
    assert service_in_host("digits") is None
    assert service_in_host("digits.ml.example.com") is None  # not a Service's DNS name


def test_routing_prefers_the_host_then_a_unique_model_name() -> None:
    table = Table()
    table.put(_slice("a", "digits", "digits-activator", [], activator=True))
    assert route(table, "10.0.1.1:8000", "/v2/models/digits/infer").key == ("a", "digits")
    table.put(_slice("b", "digits", "digits-activator", [], activator=True))
    ambiguous = route(table, "10.0.1.1:8000", "/v2/models/digits/infer")
    assert ambiguous.key is None and ambiguous.status == 400 and "a/digits" in ambiguous.message
    assert route(table, "digits.b.svc:8000", "/v2/models/digits/infer").key == ("b", "digits")
    unknown = route(table, "10.0.1.1:8000", "/v2/models/other/infer")
    assert unknown.status == 404 and "unknown model other" in unknown.message
    nothing = route(table, "10.0.1.1:8000", "/metrics")
    assert nothing.key is None and nothing.status == 404
