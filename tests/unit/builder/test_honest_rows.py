"""Compressed variants learn only from the training split, and a set too small to split
is a failed row with its reason (the build goes on), never a crashed Job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_builder.loading import LoadedModel  # noqa: E402
from lepton_builder.variants import Compression, Variants  # noqa: E402


def _variants(samples: int, workdir: Path | None = None) -> Variants:
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    calibration = [np.arange(samples * 4, dtype=np.float32).reshape(samples, 1, 4)]
    return Variants(
        LoadedModel("torchscript", Path("model.pt"), module, None),
        "cpu",
        [calibration[0][:1]],
        ["x"],
        ["y"],
        compression=Compression(calibration, training_seconds=0.0),
        workdir=workdir,
    )


def test_what_a_compressed_model_is_made_from_never_includes_the_held_out_samples(
    tmp_path: Path,
):
    variants = _variants(8, workdir=tmp_path)
    seen: list[np.ndarray] = []

    def make(teacher: Any, settings: Compression) -> tuple[Any, str]:
        seen.append(settings.calibration[0])
        return teacher, "unchanged"

    trained = variants._train("probe", make)
    held_out_rows = variants._compression().calibration[0][trained.held_out]
    assert trained.held_out.tolist() == [3, 7]
    assert len(seen[0]) == 6
    for row in held_out_rows:  # none of the judged samples reached the maker
        assert not any(np.array_equal(row, s) for s in seen[0])


def test_fewer_than_four_samples_fail_the_compressed_variant_with_the_reason(tmp_path: Path):
    with pytest.raises(ValueError, match=r"at least 4 calibration samples.*got 3"):
        _variants(3, workdir=tmp_path)._train("probe", lambda teacher, settings: (teacher, ""))


def test_a_variant_triton_cannot_serve_is_measured_beside_the_others_and_never_offered(
    tmp_path: Path,
):
    """torch.compile's kernels live in the build's process: its row keeps its figures
    and accuracy for comparison, is not 'accepted', and writes nothing to serve."""
    from lepton_builder.build import Settings, _Context, _judged_row, _Reference
    from lepton_builder.profiling import Budget
    from lepton_builder.request import BuildRequest

    request = BuildRequest.model_validate(
        {
            "requestVersion": 1,
            "modelName": "m",
            "pool": "gpu",
            "device": "cpu",
            "model": {
                "uri": "pvc://x/m.pt",
                "format": "torchscript",
                "inputs": [{"name": "x", "dtype": "fp32", "shape": [1, 4]}],
                "outputs": [{"name": "y", "dtype": "fp32", "shape": [2]}],
            },
            "optimization": {"accuracy": {"minSamples": 4}},
            "repository": str(tmp_path),
        }
    )
    with _variants(8) as variants:  # its own folder, removed at the end
        built = variants.fp32()
        built.name, built.not_served = "torch-compile", "profiled for comparison only"
        inputs = variants._compression().calibration
        outputs = built.run(inputs)
        settings = Settings(budget=Budget(warmup=1, min_iterations=2, seconds=0.0))
        context = _Context(request, settings, tmp_path, [1, 8], ["x"], ["y"])
        row = _judged_row(
            "probe", "torch-compile", built, outputs, _Reference(outputs), inputs, context
        )

    assert row["status"] == "skipped" and row["reason"] == "profiled for comparison only"
    assert row["accuracy"] == 1.0 and [p["batchSize"] for p in row["profiles"]] == [1, 8]
    assert "tritonModel" not in row and not any(tmp_path.iterdir())


def test_the_intermediates_go_when_the_build_ends_and_a_given_folder_stays(tmp_path):
    """A MiniLM build's intermediates weigh about 1 GB: a builder run as a process (the
    local harness, the integration tests) left them in /tmp on every build."""
    with _variants(8) as variants:
        made = variants.workdir
        (made / "model.onnx").write_bytes(b"x")
    assert not made.exists()
    given = tmp_path / "work"
    given.mkdir()
    with _variants(8, workdir=given) as variants:
        (given / "model.onnx").write_bytes(b"x")
    assert (given / "model.onnx").exists()  # the caller's folder, the caller's to remove
