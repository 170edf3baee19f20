"""The builder on real models: every CPU variant profiled with its accuracy, or
rejected/failed/skipped with a reason; the model repository served by a real Triton."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_builder.cli import main
from lepton_builder.selection import ALL_VARIANTS, COMPRESSED, DEFAULT_VARIANTS
from lepton_builder.tritonrepo import parse
from lepton_e2e import models

pytestmark = pytest.mark.integration

FAST = ["--profile-seconds", "0.3", "--min-iterations", "5", "--threads", "2"]


def _build(
    source,
    tmp_path: Path,
    name: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    fmt: str,
    metric: str,
    tolerance: float,
    batch_sizes: list[int],
    **optimization: Any,
) -> dict[str, Any]:
    request = {
        "requestVersion": 1,
        "modelName": name,
        "pool": "cpu-standard",
        "device": "cpu",
        "model": {"uri": source.uri, "format": fmt, "inputs": inputs, "outputs": outputs},
        "optimization": {
            "batchSizes": batch_sizes,
            "calibrationUri": source.calibration_uri,
            "accuracy": {"metric": metric, "tolerance": tolerance},
            **optimization,
        },
        "repository": str(tmp_path / "repository"),
    }
    report_file = tmp_path / "report.json"
    assert (
        main(
            [
                "--request",
                json.dumps(request),
                "--report-file",
                str(report_file),
                "--sources-root",
                str(source.sources_root),
                *FAST,
            ]
        )
        == 0
    )
    report: dict[str, Any] = json.loads(report_file.read_text())
    return report


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["variants"]}


def _assert_every_variant_accounted_for(
    report: dict[str, Any], batch_sizes: list[int], requested: tuple[str, ...] = DEFAULT_VARIANTS
) -> None:
    rows = _rows(report)
    assert set(rows) == set(requested)
    for name, row in rows.items():
        if row["status"] in ("accepted", "rejected"):
            assert isinstance(row["accuracy"], float), name
            assert [p["batchSize"] for p in row["profiles"]] == batch_sizes, name
            for p in row["profiles"]:
                assert 0 < p["p50Ms"] <= p["p95Ms"] <= p["p99Ms"] and p["throughputRps"] > 0
        if row["status"] == "accepted":
            # The served artifact loaded afresh in its runtime: the variant's cold start.
            assert 0 < row["loadSeconds"] < 60, name
        else:
            assert row["reason"], f"{name} {row['status']} without a reason"
        if row["status"] == "rejected":
            assert "guard" in row["reason"], name


@pytest.fixture(scope="module")
def digits_build(digits, tmp_path_factory) -> tuple[dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("digits-build")
    report = _build(
        digits,
        tmp,
        "digits",
        models.DIGITS_INPUTS,
        models.DIGITS_OUTPUTS,
        "torchscript",
        "top1-agreement",
        0.98,
        [1, 16],
        variants=list(ALL_VARIANTS),
        trainingSeconds=5,
    )
    return report, tmp / "repository"


def test_digits_cnn_is_trained_for_real(digits):
    assert digits.extra.test_accuracy > 0.9


def test_digits_every_cpu_variant_is_profiled_or_explained(digits_build):
    report, _ = digits_build
    _assert_every_variant_accounted_for(report, [1, 16], ALL_VARIANTS)
    rows = _rows(report)
    assert rows["fp32"]["status"] == "accepted" and rows["fp32"]["accuracy"] == 1.0
    assert rows["onnx"]["status"] == "accepted" and rows["onnx"]["accuracy"] == 1.0
    assert rows["torchscript"]["status"] == "accepted"
    # TorchScript sources cannot be dynamically quantized: a reported failure, not a crash.
    assert rows["int8-dynamic"]["status"] == "failed"
    assert "eager torch model" in rows["int8-dynamic"]["reason"]
    assert rows["fp16"]["status"] == "skipped"


def test_digits_pruned_and_distilled_are_smaller_trained_and_judged_on_unseen_inputs(
    digits_build,
):
    rows = _rows(digits_build[0])
    for name in COMPRESSED:
        row = rows[name]
        assert row["status"] in ("accepted", "rejected"), (name, row.get("reason"))
        # Trained on three quarters of the 64 calibration digits, judged on the rest.
        assert row["accuracyJudgedOn"] == "16 calibration samples not trained on", name
        training = row["training"]
        assert training["trainedOn"] == 48 and training["heldOut"] == 16, name
        assert training["steps"] > 0 and training["lossCurve"][-1] < training["lossCurve"][0]
    assert "removed 5 of 48 conv channels" in rows["pruned-10"]["compression"]
    assert "narrower network" in rows["distilled"]["compression"]
    sizes = [rows[n]["sizeBytes"] for n in ("onnx", "pruned-10", "pruned-25", "pruned-40")]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < 0.5 * sizes[0]
    assert rows["pruned-40-int8"]["sizeBytes"] < rows["pruned-40"]["sizeBytes"] / 2
    # The bar: at least one compressed variant passes the default guard.
    assert any(rows[n]["status"] == "accepted" for n in COMPRESSED)


def test_digits_repository_is_served_by_a_real_triton(digits_build, digits, tmp_path):
    import tritonclient.http as httpclient

    from lepton_e2e.triton import TritonServer

    report, repository = digits_build
    served = [row["name"] for row in report["variants"] if row.get("tritonModel")]
    assert {"fp32", "onnx", "torchscript"} <= set(served)
    # Every variant under the one name clients call, each from its own folder.
    assert {row["tritonModel"] for row in report["variants"] if row.get("tritonModel")} == {
        "digits"
    }
    x_test, y_test = digits.extra.x_test, digits.extra.y_test
    for variant in served:
        (tmp_path / variant).mkdir()
        server = TritonServer(repository / variant, tmp_path / variant, ["digits"])
        try:
            server.wait_ready()
            client = httpclient.InferenceServerClient(server.http)
            reference = np.load(repository / variant / "digits" / "1" / "reference.npz")
            predictions = []
            for start in range(0, len(x_test), 16):  # max_batch_size is the largest profiled
                chunk = x_test[start : start + 16]
                inputs = httpclient.InferInput("pixels", list(chunk.shape), "FP32")
                inputs.set_data_from_numpy(chunk)
                predictions.append(client.infer("digits", [inputs]).as_numpy("logits").argmax(1))
            assert float((np.concatenate(predictions) == y_test).mean()) > 0.9, variant
            one = httpclient.InferInput("pixels", [1, 1, 8, 8], "FP32")
            one.set_data_from_numpy(reference["input:pixels"])
            answer = client.infer("digits", [one]).as_numpy("logits")
            np.testing.assert_allclose(answer, reference["output:logits"], atol=1e-3)
        finally:
            server.stop()


# Casting a TorchScript module reads .grad of its non-leaf parameters: a warning, not a fault.
@pytest.mark.filterwarnings("ignore:The .grad attribute:UserWarning")
def test_a_half_precision_variant_takes_the_fp32_clients_send(digits_build, digits, tmp_path):
    """A half-precision TorchScript (a CPU pool's frozen bf16, a GPU pool's fp16),
    served by the same model.py: clients send the declared FP32 and get FP32 back; the
    module runs its own float type, which the archive names (freezing leaves no
    parameters to read it from)."""
    import shutil

    import tritonclient.http as httpclient

    from lepton_builder.loading import LoadedModel
    from lepton_builder.variants import Variants
    from lepton_e2e.triton import TritonServer

    _, repository = digits_build
    served = tmp_path / "repository"
    shutil.copytree(repository / "fp32", served)
    module = __import__("torch").jit.load(str(digits.sources_root / "models" / "digits.pt"))
    x_test, y_test = digits.extra.x_test, digits.extra.y_test
    half = Variants(
        LoadedModel("torchscript", Path("digits.pt"), module, None),
        "cpu",
        [x_test[:1]],
        ["pixels"],
        ["logits"],
        workdir=tmp_path,
    ).half("bf16", "bfloat16")
    shutil.copy(half.path, served / "digits" / "1" / "model.pt")
    server = TritonServer(served, tmp_path / "work", ["digits"])
    try:
        server.wait_ready()
        client = httpclient.InferenceServerClient(server.http)
        chunk = x_test[:16]
        inputs = httpclient.InferInput("pixels", list(chunk.shape), "FP32")
        inputs.set_data_from_numpy(chunk)
        answer = client.infer("digits", [inputs]).as_numpy("logits")
    finally:
        server.stop()
    assert answer.dtype == np.float32
    assert float((answer.argmax(1) == y_test[:16]).mean()) > 0.8


def test_digits_judged_by_its_labels_keeps_the_tasks_accuracy(digits, tmp_path, capsys):
    """label-accuracy on the calibration data's own labels: each variant's share of
    right answers against fp32's, the held-out quarter for the calibrated int8; a
    labels array that is not there fails the build with its name."""
    variants = ["fp32", "onnx", "onnx-int8-static"]
    report = _build(
        digits,
        tmp_path,
        "digits",
        models.DIGITS_INPUTS,
        models.DIGITS_OUTPUTS,
        "torchscript",
        "label-accuracy",
        0.97,
        [1],
        variants=variants,
    )
    rows = _rows(report)
    assert report["guard"]["metric"] == "label-accuracy"
    for name in variants:
        assert rows[name]["status"] == "accepted", rows[name]
        assert rows[name]["accuracy"] > 0.9, rows[name]  # the task's accuracy, not agreement
    assert rows["onnx-int8-static"]["judgedSamples"] == 16  # the quarter it never saw

    request = json.loads(_digits_request(digits, tmp_path / "missing", digits.uri, "torchscript"))
    request["optimization"]["accuracy"] = {"metric": "label-accuracy", "labels": "classes"}
    argv = ["--request", json.dumps(request), "--sources-root", str(digits.sources_root)]
    assert main(argv) == 1
    assert "lacks the labels array 'classes'" in capsys.readouterr().err


def test_minilm_guard_rejects_lossy_int8_and_keeps_the_exact_variants(minilm, tmp_path):
    report = _build(
        minilm,
        tmp_path,
        "minilm",
        models.MINILM_INPUTS,
        models.MINILM_OUTPUTS,
        "safetensors",
        "cosine",
        0.99,
        [1, 8],
        variants=[*DEFAULT_VARIANTS, "pruned-10"],
        trainingSeconds=3,
    )
    _assert_every_variant_accounted_for(report, [1, 8], (*DEFAULT_VARIANTS, "pruned-10"))
    rows = _rows(report)
    # One head and a tenth of the feed-forward channels of each layer gone: MiniLM-L6
    # is already small, and three seconds on twelve sentences do not win it back.
    assert rows["pruned-10"]["status"] == "rejected"
    assert rows["pruned-10"]["compression"] == (
        "structured pruning: removed 6 of 72 heads, 924 of 9216 ffn channels"
    )
    for exact in ("fp32", "onnx", "torchscript"):
        assert rows[exact]["status"] == "accepted" and rows[exact]["accuracy"] > 0.9999, exact
    # torch's per-tensor dynamic int8 loses accuracy on MiniLM; ORT per-channel keeps more.
    assert rows["int8-dynamic"]["status"] == "rejected"
    assert rows["onnx-int8"]["accuracy"] > rows["int8-dynamic"]["accuracy"]
    for variant in ("onnx", "torchscript"):
        _assert_triton_answers_like_the_reference(
            tmp_path / "repository" / variant, tmp_path / variant, "minilm"
        )


def _assert_triton_answers_like_the_reference(repository: Path, workdir: Path, model: str) -> None:
    import tritonclient.http as httpclient

    from lepton_e2e.triton import TritonServer

    workdir.mkdir()
    server = TritonServer(repository, workdir, [model])
    try:
        server.wait_ready()
        client = httpclient.InferenceServerClient(server.http)
        reference = np.load(repository / model / "1" / "reference.npz")
        inputs = []
        for key in (k for k in reference.files if k.startswith("input:")):
            array = reference[key]
            tensor = httpclient.InferInput(
                key.removeprefix("input:"),
                list(array.shape),
                "INT64" if array.dtype == np.int64 else "FP32",
            )
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = client.infer(model, inputs)
        for key in (k for k in reference.files if k.startswith("output:")):
            answer = result.as_numpy(key.removeprefix("output:"))
            np.testing.assert_allclose(answer, reference[key], atol=1e-4, err_msg=repository.name)
    finally:
        server.stop()


def _digits_request(digits, tmp_path: Path, uri: str, fmt: str, **model: Any) -> str:
    return json.dumps(
        {
            "requestVersion": 1,
            "modelName": "digits",
            "pool": "cpu",
            "device": "cpu",
            "model": {
                "uri": uri,
                "format": fmt,
                "inputs": models.DIGITS_INPUTS,
                "outputs": models.DIGITS_OUTPUTS,
                **model,
            },
            "optimization": {
                "batchSizes": [1],
                "calibrationUri": digits.calibration_uri,
                "accuracy": {"metric": "top1-agreement", "tolerance": 0.98},
            },
            "repository": str(tmp_path / "repository"),
        }
    )


def test_an_onnx_source_builds_only_onnx_variants(digits, tmp_path):
    import torch

    module = torch.jit.load(str(digits.sources_root / "models" / "digits.pt"))
    example = torch.zeros(1, 1, 8, 8)
    with warnings.catch_warnings():  # setup only: the legacy exporter's notices
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(digits.sources_root / "models" / "digits.onnx"),
            dynamo=False,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        )
    report_file = tmp_path / "onnx.json"
    assert (
        main(
            [
                "--request",
                _digits_request(digits, tmp_path, "pvc://models/digits.onnx", "onnx"),
                "--report-file",
                str(report_file),
                "--sources-root",
                str(digits.sources_root),
                *FAST,
            ]
        )
        == 0
    )
    rows = _rows(json.loads(report_file.read_text()))
    assert {n for n, r in rows.items() if r["status"] == "accepted"} == {
        "fp32",
        "onnx",
        "onnx-int8",
    }
    assert "torch source" in rows["torchscript"]["reason"]


def test_a_checksum_mismatch_or_a_malformed_model_fails_with_the_reason(digits, tmp_path, capsys):
    request = _digits_request(digits, tmp_path, digits.uri, "torchscript", sha256="0" * 64)
    assert main(["--request", request, "--sources-root", str(digits.sources_root)]) == 1
    assert "sha256 mismatch for digits.pt" in capsys.readouterr().err
    (digits.sources_root / "models" / "broken.pt").write_bytes(b"not a model")
    request = _digits_request(digits, tmp_path, "pvc://models/broken.pt", "torchscript")
    assert main(["--request", request, "--sources-root", str(digits.sources_root)]) == 1
    assert "cannot load torchscript model from pvc://models/broken.pt" in (capsys.readouterr().err)
    # An S3 source with no Secret named and no identity on the pod: said, nothing loaded.
    request = _digits_request(digits, tmp_path, "s3://bucket/model.pt", "torchscript")
    assert main(["--request", request, "--sources-root", str(digits.sources_root)]) == 1
    assert "s3://bucket/model.pt: no S3 credentials" in capsys.readouterr().err


def test_the_serving_search_measures_on_a_real_triton_and_keeps_the_best(
    digits, tmp_path, monkeypatch
):
    """The search's configurations served by a real tritonserver, closed-loop load at
    three levels each. No ``tritonserver`` on PATH, as in the builder's image: the build
    finds the nvidia-pytriton wheel's and runs it through its own launcher."""
    import shutil

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert shutil.which("tritonserver") is None
    request = json.loads(_digits_request(digits, tmp_path, digits.uri, "torchscript"))
    request["optimization"].update(variants=["onnx"], servingSearch=True, batchSizes=[1, 8])
    request["latencyTargetMs"] = 100.0
    report_file = tmp_path / "report.json"
    argv = ["--request", json.dumps(request), "--report-file", str(report_file)]
    argv += ["--sources-root", str(digits.sources_root), *FAST]
    assert main([*argv, "--search-seconds", "1.5"]) == 0
    row = _rows(json.loads(report_file.read_text()))["onnx"]
    search = row["servingSearch"]
    assert "skipped" not in search, search
    assert len(search["trials"]) == 5
    for trial in search["trials"]:
        assert [level["batchSize"] for level in trial["levels"]] == [1, 4, 8]
        assert all(level["requests"] > 0 and level["failed"] == 0 for level in trial["levels"])
    assert search["chosen"]["capacityRps"] >= search["default"]["capacityRps"] > 0
    chosen = search["chosen"]["config"]
    written = parse((tmp_path / "repository" / "onnx" / "digits" / "config.pbtxt").read_text())
    (group,) = written.instance_group
    assert (group.count, group.kind) == (chosen["instances"], group.KIND_CPU)
    assert written.dynamic_batching.max_queue_delay_microseconds == chosen["maxQueueDelayUs"]
    print(search["summary"])
    # What the search left is what a pod would serve: Triton answers like the reference.
    _assert_triton_answers_like_the_reference(
        tmp_path / "repository" / "onnx", tmp_path / "served", "digits"
    )


def test_for_a_native_serving_image_the_search_measures_on_python_and_writes_native(
    digits, tmp_path, monkeypatch
):
    """A build for NGC's Triton (servingBackends) on a builder with only the wheel's
    python backend: the search measures the artifact through model.py, says so, and
    leaves the chosen configuration written for the native onnxruntime backend."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    request = json.loads(_digits_request(digits, tmp_path, digits.uri, "torchscript"))
    request["optimization"].update(variants=["fp32", "onnx"], servingSearch=True, batchSizes=[1])
    request["latencyTargetMs"] = 100.0
    request["servingBackends"] = ["onnxruntime", "pytorch"]
    report_file = tmp_path / "report.json"
    argv = ["--request", json.dumps(request), "--report-file", str(report_file)]
    argv += ["--sources-root", str(digits.sources_root), *FAST]
    assert main([*argv, "--search-seconds", "0.5"]) == 0
    rows = _rows(json.loads(report_file.read_text()))
    assert rows["fp32"]["tritonBackend"] == "pytorch"  # the digits source is TorchScript
    onnx = rows["onnx"]
    assert onnx["tritonBackend"] == "onnxruntime"
    search = onnx["servingSearch"]
    assert "skipped" not in search, search
    assert search["backend"] == "python" and "no onnxruntime backend" in search["note"]
    assert all(level["failed"] == 0 for trial in search["trials"] for level in trial["levels"])
    folder = tmp_path / "repository" / "onnx" / "digits"
    written = parse((folder / "config.pbtxt").read_text())
    assert written.backend == "onnxruntime" and written.default_model_filename == "model.onnx"
    assert written.instance_group[0].count == search["chosen"]["config"]["instances"]
    cached = parse((folder / "configs" / "cached.pbtxt").read_text())
    assert cached.backend == "onnxruntime" and cached.response_cache.enable
    assert (folder / "1" / "model.onnx").exists()


def test_a_kept_build_is_reused_for_another_model_and_served_under_its_name(
    build_digits, digits, tmp_path
):
    """The namespace's build cache: the same bytes, settings, builder and hardware built
    again under another model's name and pool take the kept build, which a real Triton
    serves under the new name; other calibration data makes the build again."""
    cache = tmp_path / "builds"

    def build(name: str, **fields):
        (tmp_path / name).mkdir()
        return build_digits(
            tmp_path / name,
            ["onnx"],
            tmp_path / name / "repository",
            buildCache=str(cache),
            **fields,
        )

    first = build("first")
    assert first.reused is None
    assert len([e for e in cache.iterdir() if ".partial-" not in e.name]) == 1

    second = build("second", modelName="digits-copy", pool="cpu-large")
    assert second.reused is not None and second.reused.built_at
    assert second.pool == "cpu-large"
    assert second.repository == str(tmp_path / "second" / "repository")
    onnx = next(v for v in second.variants if v.name == "onnx")
    assert onnx.triton_model == "digits-copy"
    assert onnx.profiles == next(v for v in first.variants if v.name == "onnx").profiles
    _assert_triton_answers_like_the_reference(
        tmp_path / "second" / "repository" / "onnx", tmp_path / "triton", "digits-copy"
    )

    fewer = digits.sources_root / "models" / "digits-calibration-fewer.npz"
    with np.load(digits.sources_root / "models" / "digits-calibration.npz") as data:
        np.savez(fewer, **{k: data[k][:48] for k in data.files})
    optimization = {
        "variants": ["onnx"],
        "batchSizes": [1, 4],
        "calibrationUri": "pvc://models/digits-calibration-fewer.npz",
        "accuracy": {"metric": "top1-agreement", "tolerance": 0.98},
    }
    assert build("third", optimization=optimization).reused is None
