"""An S3 repository: what the build Job and the Triton Deployment are given."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from lepton_builder.upload import S3Location, client, object_keys, parse_s3_uri
from lepton_operator.api.spec import LeptonModelSpec, S3Repository, parse_spec
from lepton_operator.config import OperatorConfig
from lepton_operator.resources import build, names, serving

S3 = {"s3": {"uri": "s3://10.0.0.5:9000/models/team-a", "credentialsSecret": "s3-creds"}}


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def _deployment(spec: LeptonModelSpec, config: OperatorConfig) -> dict[str, Any]:
    s3 = spec.repository.s3 if spec.repository else None
    return serving.deployment(
        "minilm", "ml", config.pools[0], 2, "triton:1", "abc123", "minilm", "onnx", s3
    )


def test_triton_reads_the_builds_repository_from_the_bucket(spec, config) -> None:
    spec["repository"] = S3
    deployment = _deployment(parse_spec(spec), config)
    container = _container(deployment)
    assert (
        "--model-repository=s3://10.0.0.5:9000/models/team-a/abc123/cpu-standard/onnx"
        in (container["args"])
    )
    pod = deployment["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]  # no PVC to mount
    assert [m["name"] for m in container["volumeMounts"]] == ["tmp"]


def test_credentials_come_key_by_key_from_the_secret(spec, config) -> None:
    spec["repository"] = S3
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in _container(_deployment(parse_spec(spec), config))["env"]
    }
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}
    assert env["AWS_DEFAULT_REGION"]["optional"] is True
    assert env["AWS_SESSION_TOKEN"]["optional"] is True


def test_without_a_secret_the_pods_own_credentials_are_used(spec, config) -> None:
    spec["repository"] = {"s3": {"uri": "s3://models/team-a/"}}
    container = _container(_deployment(parse_spec(spec), config))
    assert "env" not in container
    assert "--model-repository=s3://models/team-a/abc123/cpu-standard/onnx" in container["args"]


def test_without_s3_triton_reads_the_pvc_as_before(spec, config) -> None:
    deployment = _deployment(parse_spec(spec), config)
    container = _container(deployment)
    assert "--model-repository=/models/abc123/cpu-standard/onnx" in container["args"]
    assert "env" not in container
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["minilm-models"]


def test_the_build_job_writes_to_scratch_and_uploads_to_the_same_uri(spec, config) -> None:
    spec["repository"] = S3
    parsed = parse_spec(spec)
    job = build.job("minilm", "ml", parsed, config.pools[0], "abc123", "builder:1")
    request = build.build_request("minilm", parsed, config.pools[0], "abc123", "job")
    assert request["repository"] == "/tmp/repository/abc123/cpu-standard"
    assert request["upload"] == {"uri": "s3://10.0.0.5:9000/models/team-a/abc123/cpu-standard"}
    container = _container(job)
    assert {e["name"] for e in container["env"]} >= {"AWS_ACCESS_KEY_ID", "POD_NAMESPACE"}
    assert "models" not in {v["name"] for v in job["spec"]["template"]["spec"]["volumes"]}


def test_moving_the_repository_rebuilds_but_existing_pvc_hashes_stay(spec, config) -> None:
    before = names.build_hash(parse_spec(spec), config.pools, "builder:1")
    spec["repository"] = None
    assert names.build_hash(parse_spec(spec), config.pools, "builder:1") == before
    spec["repository"] = S3
    assert names.build_hash(parse_spec(spec), config.pools, "builder:1") != before


# The builder may not import the operator (an import-linter contract), so it parses the
# URI with a pattern of its own: the CRD's and the builder's are run on the same URIs.
@pytest.mark.parametrize(
    "uri",
    [
        "s3://Models/x",
        "s3://m/x",
        "s3://models/a b",
        "s3://models//x",
        "s3://models/a+b",
        "s3://host:9000",
        "s3://ftp://host:9000/models",
        "https://h/models",
    ],
)
def test_uris_triton_cannot_read_are_refused_by_the_api_and_the_builder(uri: str) -> None:
    with pytest.raises(ValidationError):
        S3Repository(uri=uri)
    with pytest.raises(ValueError, match="is not s3://"):
        parse_s3_uri(uri)


@pytest.mark.parametrize(
    ("uri", "location"),
    [
        ("s3://models", S3Location(None, "models", "")),
        ("s3://models/team-a", S3Location(None, "models", "team-a")),
        ("s3://models/a.b_c-D/", S3Location(None, "models", "a.b_c-D")),
        ("s3://127.0.0.1:9000/models", S3Location("http://127.0.0.1:9000", "models", "")),
        (
            "s3://http://minio.storage:9000/models/team-a",
            S3Location("http://minio.storage:9000", "models", "team-a"),
        ),
        (
            "s3://https://minio.example:443/models/a/b/",
            S3Location("https://minio.example:443", "models", "a/b"),
        ),
    ],
)
def test_the_builder_splits_tritons_uri_form(uri: str, location: S3Location) -> None:
    S3Repository(uri=uri)  # what the API accepts, the builder can split
    assert parse_s3_uri(uri) == location


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        # Any host but AWS's: path-style, at the URI's scheme, host and port.
        ("s3://127.0.0.1:9000/models/p", "http://127.0.0.1:9000/models/p/k"),
        ("s3://https://minio.example:8443/models/p", "https://minio.example:8443/models/p/k"),
        # AWS: TLS, virtual-hosted at the region's endpoint.
        ("s3://models/p", "https://models.s3.eu-west-3.amazonaws.com/p/k"),
    ],
)
def test_the_builder_signs_for_the_uris_endpoint_with_tritons_environment(
    monkeypatch, uri: str, url: str
) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret"}
    for key, value in {**env, "AWS_DEFAULT_REGION": "eu-west-3"}.items():
        monkeypatch.setenv(key, value)
    location = parse_s3_uri(uri)
    # A presigned URL is the request the client would send, computed without sending it.
    signed = urlsplit(client(location).presigned_get_object(location.bucket, "p/k"))
    assert signed._replace(query="").geturl() == url
    assert parse_qs(signed.query)["X-Amz-Credential"][0].split("/")[::2] == [
        "AKID",
        "eu-west-3",
        "aws4_request",
    ]


def test_object_keys_keep_the_repository_layout(tmp_path: Path) -> None:
    (tmp_path / "onnx" / "m" / "1").mkdir(parents=True)
    (tmp_path / "onnx" / "m" / "config.pbtxt").write_text("")
    (tmp_path / "onnx" / "m" / "1" / "model.py").write_text("")
    assert [key for _, key in object_keys(tmp_path, "p/b1/cpu")] == [
        "p/b1/cpu/onnx/m/1/model.py",
        "p/b1/cpu/onnx/m/config.pbtxt",
    ]


def test_training_time_rebuilds_only_what_trains(spec, config) -> None:
    """trainingSeconds (issue 12) decides only pruned and distilled builds: other builds
    keep the hash they had before the field existed, whatever its value."""
    before = names.build_hash(parse_spec(spec), config.pools, "builder:1")
    spec["optimization"] = {**spec.get("optimization", {}), "trainingSeconds": 5}
    assert names.build_hash(parse_spec(spec), config.pools, "builder:1") == before
    spec["optimization"]["variants"] = ["onnx", "pruned-25"]
    trained = names.build_hash(parse_spec(spec), config.pools, "builder:1")
    spec["optimization"]["trainingSeconds"] = 60
    assert names.build_hash(parse_spec(spec), config.pools, "builder:1") != trained
