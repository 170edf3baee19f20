"""An S3 model repository end to end, with real parts: the builder uploads its
repository to a real S3-compatible server (gofakes3, built from its Go module and run on
loopback), the real tritonserver from the nvidia-pytriton wheel serves it from there by
the very URI the operator puts in the Deployment, and the answer is judged as the
operator judges a pod.

Why gofakes3 rather than moto or MinIO's server: moto needs botocore, which cannot be
installed beside the pinned kubernetes client (python-dateutil <3 against >=3), and
gofakes3 is one small Go program built like the other test tools (lepton_e2e.binaries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from minio import Minio

from lepton_e2e.fakes3 import CREDENTIALS, gofakes3
from lepton_e2e.triton import TritonServer
from lepton_operator.api.spec import S3Repository
from lepton_operator.canary.check import judge
from lepton_operator.canary.client import infer
from lepton_operator.resources.repository import s3_uri

pytestmark = pytest.mark.integration

# Not 127.0.0.1: other Triton tests may hold its 8000 at the same time.
ADDRESS = "127.0.0.45"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Minio]]:
    with (
        gofakes3(tmp_path_factory.mktemp("gofakes3")) as (endpoint, client),
        pytest.MonkeyPatch.context() as patch,
    ):
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        client.make_bucket("models")
        yield endpoint, client


@pytest.fixture(scope="module")
def served(s3_endpoint, build_digits, tmp_path_factory: pytest.TempPathFactory):
    endpoint, client = s3_endpoint
    work = tmp_path_factory.mktemp("s3-repository")
    # The URI as a user writes it in spec.repository.s3, and as the operator extends it.
    uri = s3_uri(S3Repository(uri=f"s3://{endpoint}/models/team-a"), "b1", "cpu-standard")
    scratch = work / "scratch" / "b1" / "cpu-standard"
    report = build_digits(work, ["onnx"], scratch, upload={"uri": uri})
    # Serve from the bucket alone: the scratch copy the builder wrote is gone.
    for path in sorted((work / "scratch").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    # As the operator points a pod at it: the variant's folder, the model's own name.
    server = TritonServer(f"{report.repository}/onnx", work, ["digits"], address=ADDRESS)
    try:
        server.wait_ready()
        yield server, report, client
    finally:
        server.stop()


def test_the_builder_uploads_its_repository_to_the_bucket(served) -> None:
    _, report, client = served
    assert report.repository.startswith("s3://127.0.0.1:")
    keys = {o.object_name for o in client.list_objects("models", recursive=True)}
    prefix = "team-a/b1/cpu-standard/onnx/digits/"
    assert {prefix + "config.pbtxt", prefix + "1/model.py"} <= keys


def test_triton_serves_the_recorded_answer_from_s3(served) -> None:
    server, report, _ = served
    accepted = next(v for v in report.variants if v.name == "onnx" and v.status == "accepted")
    assert accepted.canary is not None
    reason, verdict = asyncio.run(judge(accepted.canary, "digits", server.http, infer))
    assert (reason, verdict.passed) == ("CanaryPassed", True), verdict.message
