"""The activator's gRPC path without a network: the model a call names (read from the
protobuf wire format), which model it is routed to, the gRPC code of each answer, the
metadata passed on, the channels kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tritonclient.grpc import service_pb2 as triton_pb

from lepton_activator.grpcproxy import GrpcProxy, forwardable
from lepton_activator.holding import Limits, admit, grpc_code, timed_out
from lepton_activator.routing import (
    Table,
    grpc_route,
    model_in_call,
    slice_info,
    string_field,
)
from lepton_activator.server import Activator

SERVICE = "/inference.GRPCInferenceService/"


def _slice(model: str, namespace: str = "ml", activator: bool = False) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{model}-{'activator' if activator else 'x'}",
            "namespace": namespace,
            "labels": {
                "lepton.ai/model": model,
                "lepton.ai/component": "activator" if activator else "triton",
            },
        },
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}],
        "ports": [
            {"name": "http", "port": 8000},
            {"name": "grpc", "port": 8001},
            {"name": "metrics", "port": 8002},
        ],
    }


def test_the_model_is_read_from_each_model_level_request_without_triton_protos() -> None:
    infer = triton_pb.ModelInferRequest(
        model_name="digits",
        model_version="3",
        id="req-1",
        parameters={"priority": triton_pb.InferParameter(int64_param=2)},
        raw_input_contents=[b"\x00" * 4096],
    )
    assert model_in_call(SERVICE + "ModelInfer", infer.SerializeToString()) == "digits"
    assert model_in_call(SERVICE + "ModelStreamInfer", infer.SerializeToString()) == "digits"
    for method, request in [
        ("ModelReady", triton_pb.ModelReadyRequest(name="digits")),
        ("ModelMetadata", triton_pb.ModelMetadataRequest(name="digits", version="1")),
        ("ModelConfig", triton_pb.ModelConfigRequest(name="digits")),
        ("ModelStatistics", triton_pb.ModelStatisticsRequest(name="digits")),
        ("RepositoryModelLoad", triton_pb.RepositoryModelLoadRequest(model_name="digits")),
    ]:
        assert model_in_call(SERVICE + method, request.SerializeToString()) == "digits", method


def test_server_level_calls_and_unreadable_messages_name_no_model() -> None:
    assert model_in_call(SERVICE + "ServerReady", b"") is None
    assert model_in_call(SERVICE + "ServerLive", b"") is None
    assert model_in_call(SERVICE + "ModelInfer", None) is None  # a stream with no message
    assert model_in_call(SERVICE + "ModelInfer", b"") is None  # the name left empty
    assert model_in_call("/other.Service/ModelInfer", b"\n\x06digits") is None
    assert string_field(b"\n\x10short", 1) is None  # a length past the end
    assert string_field(b"\x80\x80", 1) is None  # a cut varint
    assert string_field(b"\n\x02\xff\xfe", 1) is None  # not UTF-8
    assert string_field(b"\x0b\x0c", 1) is None  # a group: not in Triton's protocol
    # Fields of every wire type before the one asked for are skipped.
    message = b"\x08\x96\x01" + b"\x11" + b"\x00" * 8 + b"\x1d" + b"\x00" * 4 + b"\x22\x01z"
    assert string_field(message + b"\x0a\x01m", 1) == "m"


def test_a_call_goes_to_the_model_it_names_or_the_one_model_at_zero() -> None:
    table = Table()
    table.put(_slice("digits", activator=True))
    table.put(_slice("bert", namespace="nlp"))
    infer = triton_pb.ModelInferRequest(model_name="bert").SerializeToString()
    assert grpc_route(table, SERVICE + "ModelInfer", infer).key == ("nlp", "bert")
    # ServerReady names no model: the one model routed here answers it.
    assert grpc_route(table, SERVICE + "ServerReady", b"").key == ("ml", "digits")
    table.put(_slice("resnet", namespace="vision", activator=True))
    found = grpc_route(table, SERVICE + "ServerReady", b"")
    assert (found.key, found.status) == (None, 400) and "names no model" in found.message
    unknown = triton_pb.ModelInferRequest(model_name="nobody").SerializeToString()
    assert grpc_route(table, SERVICE + "ModelInfer", unknown).status == 404
    table.put(_slice("digits", namespace="other"))
    twice = triton_pb.ModelInferRequest(model_name="digits").SerializeToString()
    found = grpc_route(table, SERVICE + "ModelInfer", twice)
    assert found.status == 400 and "ml/digits, other/digits" in found.message


def test_grpc_backends_are_the_replicas_grpc_ports() -> None:
    table = Table()
    table.put(_slice("digits", activator=True))
    assert table.backends(("ml", "digits"), "grpc") == []
    table.put(_slice("digits"))
    assert table.backends(("ml", "digits")) == ["10.0.0.1:8000"]
    assert table.backends(("ml", "digits"), "grpc") == ["10.0.0.1:8001"]
    info = slice_info(_slice("digits", activator=True))
    assert info is not None and info.activator and info.ready_grpc == ()


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (503, "queue full: 3 request(s) already wait", "RESOURCE_EXHAUSTED"),
        (503, "the activator is shutting down; retry", "UNAVAILABLE"),
        (504, "model m had no Ready replica within 3.0 s", "DEADLINE_EXCEEDED"),
        (404, "LeptonModel ns/m was deleted while the request waited", "NOT_FOUND"),
        (400, "model m exists in several namespaces", "INVALID_ARGUMENT"),
        (502, "no Ready replica of model m answered", "UNAVAILABLE"),
        (418, "", "UNKNOWN"),
    ],
)
def test_each_answer_of_the_activator_has_its_grpc_code(status, message, code) -> None:
    assert grpc_code(status, message) == code


def test_the_holds_own_refusals_map_as_the_http_path_answers_them() -> None:
    full = admit(1, Limits(queue_limit=1), "m")
    assert full is not None and grpc_code(full.status, full.message) == "RESOURCE_EXHAUSTED"
    late = timed_out("m", 3.0)
    assert grpc_code(late.status, late.message) == "DEADLINE_EXCEEDED"


def test_channels_to_replicas_no_longer_ready_are_closed_when_a_new_one_opens() -> None:
    async def scenario() -> None:
        table = Table()
        table.put(_slice("digits"))
        proxy = GrpcProxy(Activator(table, Limits(), operator=None))  # type: ignore[arg-type]
        first = proxy.channel("10.0.0.1:8001")
        assert proxy.channel("10.0.0.1:8001") is first
        moved = _slice("digits")
        moved["endpoints"][0]["addresses"] = ["10.0.0.2"]
        table.put(moved)  # the same slice: the replica moved to a new address
        proxy.channel("10.0.0.2:8001")
        assert list(proxy._channels) == ["10.0.0.2:8001"]
        await proxy.close()

    asyncio.run(scenario())
    # The client's metadata goes on, gRPC's own and the channel's do not.
    sent = [("x-trace", "1"), ("grpc-timeout", "5S"), (":authority", "a"), ("user-agent", "u")]
    assert forwardable(sent) == [("x-trace", "1")]
