"""config.pbtxt built as Triton's ModelConfig protobuf, per backend, and which backend
serves each variant: native onnxruntime and pytorch where the serving image has them,
the python backend (model.py) where it has not or cannot serve the artifact as clients
call it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as triton_config

from lepton_builder import build as build_module
from lepton_builder import servingsearch, tritonrepo, wheel_triton
from lepton_builder.request import BuildRequest, Tensor
from lepton_builder.tritonrepo import (
    PYTHON_BACKEND,
    choose_backend,
    model_config,
    parse,
    render,
    write_configs,
    write_model,
)
from lepton_builder.tuning import Level, ServingConfig, Trial

INPUTS = [
    Tensor(name="input_ids", dtype="int64", shape=[-1]),
    Tensor(name="attention_mask", dtype="int64", shape=[-1]),
]
OUTPUTS = [Tensor(name="last_hidden_state", dtype="fp32", shape=[-1, 384])]
BOTH = ("onnxruntime", "pytorch")

# (runtime, artifact, backend): each kind of variant the builder writes.
KINDS = [
    ("onnxruntime", "model.onnx", "onnxruntime"),
    ("torchscript", "model.pt", "pytorch"),
    ("onnxruntime", "model.onnx", "python"),
    ("torchscript", "model.pt", "python"),
]


def _config(runtime: str, artifact: str, backend: str, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "preferred_batch_sizes": [8, 1, 8],
        "max_batch_size": 32,
        "threads": 2,
        "instances": 3,
        "max_queue_delay_us": 1500,
        **kw,
    }
    return model_config(
        "minilm",
        INPUTS,
        OUTPUTS,
        "cpu",
        runtime,
        artifact,
        args["preferred_batch_sizes"],
        args["max_batch_size"],
        args["threads"],
        args["instances"],
        args["max_queue_delay_us"],
        backend,
    )


@pytest.mark.parametrize(("runtime", "artifact", "backend"), KINDS)
def test_the_written_config_parses_back_to_the_same_protobuf(
    runtime: str, artifact: str, backend: str
) -> None:
    config = _config(runtime, artifact, backend)
    text = render(
        model_config(
            "minilm", INPUTS, OUTPUTS, "cpu", runtime, artifact, [8, 1, 8], 32, 2, 3, 1500, backend
        )
    )
    assert parse(text) == config
    # Triton's own reader (protobuf text format) takes it too, strictly.
    assert text_format.Parse(text, triton_config.ModelConfig()) == config
    assert config.name == "minilm" and config.backend == backend
    assert config.max_batch_size == 32
    batching = config.dynamic_batching
    assert list(batching.preferred_batch_size) == [1, 8]
    assert batching.max_queue_delay_microseconds == 1500
    (group,) = config.instance_group
    assert (group.count, group.kind) == (3, triton_config.ModelInstanceGroup.KIND_CPU)
    assert [(t.name, list(t.dims)) for t in config.input] == [
        ("input_ids", [-1]),
        ("attention_mask", [-1]),
    ]
    assert {t.data_type for t in config.input} == {triton_config.TYPE_INT64}
    assert [(t.name, t.data_type) for t in config.output] == [
        ("last_hidden_state", triton_config.TYPE_FP32)
    ]


def test_a_native_config_names_its_artifact_and_its_backends_thread_parameter() -> None:
    onnx = _config("onnxruntime", "model.onnx", "onnxruntime")
    assert onnx.default_model_filename == "model.onnx"
    assert dict(onnx.parameters) == {
        "intra_op_thread_count": triton_config.ModelParameter(string_value="2")
    }
    torch = _config("torchscript", "model.pt", "pytorch", threads=0)
    assert torch.default_model_filename == "model.pt"
    assert not torch.parameters  # 0: the backend's own default


def test_a_python_config_tells_model_py_what_to_load() -> None:
    config = _config("torchscript", "model.pt", PYTHON_BACKEND)
    assert not config.default_model_filename
    assert {k: v.string_value for k, v in config.parameters.items()} == {
        "runtime": "torchscript",
        "artifact": "model.pt",
        "device": "cpu",
        "threads": "2",
    }


def test_dynamic_batching_stays_on_with_nothing_to_tune() -> None:
    config = _config(
        "onnxruntime", "model.onnx", "onnxruntime", preferred_batch_sizes=[], max_queue_delay_us=0
    )
    text = render(config)
    assert "dynamic_batching {" in text
    assert parse(text).HasField("dynamic_batching")


def test_the_gpu_kind_is_named() -> None:
    config = model_config("m", INPUTS, OUTPUTS, "cuda", "onnxruntime", "model.onnx", [1], 8)
    assert config.instance_group[0].kind == triton_config.ModelInstanceGroup.KIND_GPU


def test_half_outputs_are_declared_fp32_only_where_model_py_answers_them() -> None:
    half = [Tensor(name="y", dtype="fp16", shape=[2])]
    python = model_config("m", INPUTS, half, "cuda", "torchscript", "model.pt", [1], 8)
    assert python.output[0].data_type == triton_config.TYPE_FP32
    native = model_config(
        "m", INPUTS, half, "cuda", "torchscript", "model.pt", [1], 8, backend="pytorch"
    )
    assert native.output[0].data_type == triton_config.TYPE_FP16


@pytest.mark.parametrize(("runtime", "artifact", "backend"), KINDS)
def test_the_response_cache_twin_is_the_config_with_the_cache_on(
    tmp_path: Path, runtime: str, artifact: str, backend: str
) -> None:
    config = _config(runtime, artifact, backend)
    write_configs(tmp_path, render(config))
    assert parse((tmp_path / "config.pbtxt").read_text()) == config
    cached = parse((tmp_path / "configs" / "cached.pbtxt").read_text())
    assert cached.response_cache.enable
    cached.ClearField("response_cache")
    assert cached == config  # batching, instances, backend: all as in config.pbtxt
    assert not config.HasField("response_cache")  # see tritonrepo: p95 would vanish


def test_a_config_triton_would_refuse_is_refused_here() -> None:
    with pytest.raises(text_format.ParseError):
        parse('name: "m"\nbackend: "python"\nmax_batch_sizes: 8\n')
    with pytest.raises(text_format.ParseError):
        parse('name: "m"\ninstance_group { kind: KIND_TPU }\n')


def test_a_native_model_folder_keeps_model_py_for_python_only_servers(tmp_path: Path) -> None:
    artifact = tmp_path / "fp32.onnx"
    artifact.write_bytes(b"onnx")
    config = render(
        model_config(
            "m", INPUTS, OUTPUTS, "cpu", "onnxruntime", "model.onnx", [1], 8, backend="onnxruntime"
        )
    )
    sample = [np.zeros((1, 4), np.int64), np.ones((1, 4), np.int64)]
    answer = [np.zeros((1, 4, 384), np.float32)]
    folder = write_model(
        tmp_path / "repo", "m", config, artifact, "model.onnx", sample, answer, answer, INPUTS,
        OUTPUTS,
    )  # fmt: skip
    assert parse((folder / "config.pbtxt").read_text()).backend == "onnxruntime"
    assert (folder / "1" / "model.onnx").read_bytes() == b"onnx"
    assert (folder / "1" / "model.py").exists() and (folder / "1" / "reference.npz").exists()


# ---- which backend serves ------------------------------------------------------------


def test_each_runtime_is_served_by_its_native_backend_where_the_image_has_it() -> None:
    assert choose_backend("onnxruntime", BOTH, INPUTS, OUTPUTS).name == "onnxruntime"
    assert choose_backend("torchscript", BOTH, INPUTS, OUTPUTS).name == "pytorch"
    assert choose_backend("torchscript", ["pytorch"], INPUTS, OUTPUTS).name == "pytorch"


def test_without_the_native_backend_the_python_backend_serves_and_says_why() -> None:
    for runtime in ("onnxruntime", "torchscript"):
        backend = choose_backend(runtime, [], INPUTS, OUTPUTS)
        assert backend.name == PYTHON_BACKEND and "no native" in backend.reason
    backend = choose_backend("onnxruntime", ["pytorch"], INPUTS, OUTPUTS)
    assert backend.name == PYTHON_BACKEND and "onnxruntime" in backend.reason


def test_what_a_native_backend_would_answer_differently_stays_on_python() -> None:
    half_artifact = choose_backend("torchscript", BOTH, INPUTS, OUTPUTS, native_io=False)
    assert half_artifact.name == PYTHON_BACKEND and "half precision" in half_artifact.reason
    half_outputs = [Tensor(name="y", dtype="bf16", shape=[2])]
    assert choose_backend("onnxruntime", BOTH, INPUTS, half_outputs).name == PYTHON_BACKEND
    positional = [Tensor(name="OUTPUT__0", dtype="fp32", shape=[2])]
    assert choose_backend("torchscript", BOTH, INPUTS, positional).name == PYTHON_BACKEND
    assert choose_backend("onnxruntime", BOTH, INPUTS, positional).name == "onnxruntime"
    assert choose_backend("tensorrt-plan", BOTH, INPUTS, OUTPUTS).name == PYTHON_BACKEND


def test_an_older_request_serves_every_variant_on_python() -> None:
    request = BuildRequest.model_validate(
        {
            "requestVersion": 1,
            "modelName": "m",
            "pool": "cpu",
            "device": "cpu",
            "model": {"uri": "pvc://x/m.onnx", "format": "onnx", "inputs": [], "outputs": []},
            "repository": "/tmp/r",
        }
    )
    assert request.serving_backends == []
    with_backends = request.model_validate(
        {**request.model_dump(by_alias=True), "servingBackends": ["onnxruntime"]}
    )
    assert with_backends.serving_backends == ["onnxruntime"]


# ---- the serving search's server -------------------------------------------------------


def test_the_wheels_server_has_the_python_backend_only(tmp_path: Path) -> None:
    (tmp_path / "onnxruntime").mkdir()
    launcher = tuple(wheel_triton.launcher())
    assert servingsearch.server_backends(launcher, tmp_path) == {"python"}


def test_an_ngc_server_has_the_backends_in_its_directory(tmp_path: Path) -> None:
    for name in ("onnxruntime", "pytorch", "python"):
        (tmp_path / name).mkdir()
    (tmp_path / "README").write_text("")
    assert servingsearch.server_backends(("tritonserver",), tmp_path) == {
        "onnxruntime",
        "pytorch",
        "python",
    }
    assert servingsearch.server_backends(("tritonserver",), tmp_path / "none") == {"python"}


def _request(tmp_path: Path) -> BuildRequest:
    return BuildRequest.model_validate(
        {
            "requestVersion": 1,
            "modelName": "m",
            "pool": "cpu",
            "device": "cpu",
            "model": {"uri": "pvc://x/m.onnx", "format": "onnx", "inputs": [], "outputs": []},
            "repository": str(tmp_path),
            "latencyTargetMs": 50,
            "servingBackends": ["onnxruntime", "pytorch"],
        }
    )


def test_the_search_measures_on_python_where_its_server_lacks_the_native_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chosen configuration is written for the serving backend; the report says the
    figures came from the python backend."""
    default = ServingConfig(1, 8, (1, 8), 2000)
    better = ServingConfig(2, 8, (1, 8), 2000)
    written: list[tuple[ServingConfig, str]] = []

    def config_for(serving: ServingConfig, backend: str) -> str:
        written.append((serving, backend))
        return render(model_config(
            "m", INPUTS, OUTPUTS, "cpu", "onnxruntime", "model.onnx",
            list(serving.preferred_batch_sizes), serving.max_batch_size, 0, serving.instances,
            serving.max_queue_delay_us, backend,
        ))  # fmt: skip

    def run_search(repository: Path, name: str, first: ServingConfig, write: Any, *_: Any) -> Any:
        level = Level(1, 10.0, 1.0, 2.0, 3.0, 30)
        trials = [Trial(first, [level], 10.0), Trial(better, [level], 20.0)]
        for trial in trials:
            write(trial.config)
        write(better)  # as run_search leaves the best
        return trials[0], trials[1], trials

    (tmp_path / "m").mkdir()
    monkeypatch.setattr(build_module, "find_server", lambda preferred: ("wheel",))
    monkeypatch.setattr(build_module, "server_backends", lambda server: frozenset({"python"}))
    monkeypatch.setattr(build_module, "run_search", run_search)
    report = build_module._serving_search(
        _request(tmp_path), tmp_path, "m", default, config_for, {}, build_module.Settings(),
        "onnxruntime",
    )  # fmt: skip
    assert report["backend"] == "python" and "no onnxruntime backend" in report["note"]
    assert {backend for _, backend in written[:-1]} == {"python"}
    assert written[-1] == (better, "onnxruntime")
    served = parse((tmp_path / "m" / "config.pbtxt").read_text())
    assert served.backend == "onnxruntime" and served.instance_group[0].count == 2
    cached = parse((tmp_path / "m" / "configs" / "cached.pbtxt").read_text())
    assert cached.backend == "onnxruntime" and cached.response_cache.enable


def test_the_search_measures_the_native_backend_where_its_server_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []

    def config_for(serving: ServingConfig, backend: str) -> str:
        written.append(backend)
        return render(
            model_config(
                "m", INPUTS, OUTPUTS, "cpu", "onnxruntime", "model.onnx", [1], 8, backend=backend
            )
        )

    def run_search(repository: Path, name: str, first: ServingConfig, write: Any, *_: Any) -> Any:
        write(first)
        trial = Trial(first, [Level(1, 10.0, 1.0, 2.0, 3.0, 30)], 10.0)
        return trial, trial, [trial]

    (tmp_path / "m").mkdir()
    monkeypatch.setattr(build_module, "find_server", lambda preferred: ("tritonserver",))
    monkeypatch.setattr(
        build_module, "server_backends", lambda server: frozenset({"python", "onnxruntime"})
    )
    monkeypatch.setattr(build_module, "run_search", run_search)
    report = build_module._serving_search(
        _request(tmp_path), tmp_path, "m", ServingConfig(1, 8, (1,), 0), config_for, {},
        build_module.Settings(), "onnxruntime",
    )  # fmt: skip
    assert report["backend"] == "onnxruntime" and "note" not in report
    assert set(written) == {"onnxruntime"}
    assert tritonrepo.parse((tmp_path / "m" / "config.pbtxt").read_text()).backend == "onnxruntime"


# ---- the ONNX graph as the onnxruntime backend checks it -------------------------------


def _graph(tmp_path: Path, inputs: list[Any], outputs: list[Any], weights: list[str] = ()) -> Path:
    from onnx import TensorProto, helper, save

    nodes = [helper.make_node("Identity", [inputs[0].name], [o.name]) for o in outputs]
    initializers = [helper.make_tensor(w, TensorProto.FLOAT, [1], [0.0]) for w in weights]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, initializers))
    path = tmp_path / "model.onnx"
    save(model, str(path))
    return path


def _value(name: str, elem: int, dims: list[Any]) -> Any:
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, dims)


def test_a_graph_matching_the_declared_tensors_is_served_natively(tmp_path: Path) -> None:
    from onnx import TensorProto

    ids = _value("input_ids", TensorProto.INT64, ["batch", "seq"])
    mask = _value("attention_mask", TensorProto.INT64, ["batch", "seq"])
    out = _value("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", 384])
    path = _graph(tmp_path, [ids, mask], [out], weights=["w"])
    assert tritonrepo.onnx_signature_problem(path, INPUTS, OUTPUTS) is None
    backend = choose_backend("onnxruntime", BOTH, INPUTS, OUTPUTS, artifact=path)
    assert backend.name == "onnxruntime"


@pytest.mark.parametrize(
    ("inputs", "output", "problem"),
    [
        ([("input_ids", 7, ["b", "s"])], ("last_hidden_state", 1, ["b", "s", 384]), "no tensor"),
        (
            [("input_ids", 7, ["b", "s"]), ("attention_mask", 7, ["b", "s"]), ("extra", 7, ["b"])],
            ("last_hidden_state", 1, ["b", "s", 384]),
            "extra are not declared",
        ),
        (
            [("input_ids", 6, ["b", "s"]), ("attention_mask", 7, ["b", "s"])],
            ("last_hidden_state", 1, ["b", "s", 384]),
            "element type 6",
        ),
        (
            [("input_ids", 7, [1, "s"]), ("attention_mask", 7, ["b", "s"])],
            ("last_hidden_state", 1, ["b", "s", 384]),
            "no variable batch",
        ),
        (
            [("input_ids", 7, ["b", "s"]), ("attention_mask", 7, ["b", "s"])],
            ("last_hidden_state", 1, ["b", 128, 384]),
            "is [128, 384] after the batch",
        ),
        (
            [("input_ids", 7, ["b", "s"]), ("attention_mask", 7, ["b", "s"])],
            ("last_hidden_state", 1, ["b", 384]),
            "declared [-1, 384]",
        ),
    ],
)
def test_a_graph_the_onnxruntime_backend_would_refuse_stays_on_python(
    tmp_path: Path, inputs: list[Any], output: Any, problem: str
) -> None:
    path = _graph(tmp_path, [_value(*i) for i in inputs], [_value(*output)])
    found = tritonrepo.onnx_signature_problem(path, INPUTS, OUTPUTS)
    assert found is not None and problem in found, found
    backend = choose_backend("onnxruntime", BOTH, INPUTS, OUTPUTS, artifact=path)
    assert backend.name == PYTHON_BACKEND and problem in backend.reason
