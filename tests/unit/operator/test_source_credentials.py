"""The model's credentialsSecret reaches the build Job as the builder reads it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from lepton_builder import fetch, hub
from lepton_builder.untrusted import LoadError
from lepton_operator.api.spec import parse_spec
from lepton_operator.resources import build, sources


def _env(spec: dict[str, Any], config: Any) -> list[dict[str, Any]]:
    job = build.job("minilm", "ml", parse_spec(spec), config.pools[0], "abc123", "builder:1")
    env: list[dict[str, Any]] = job["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def test_the_operator_and_the_builder_name_the_same_keys() -> None:
    """Neither package imports the other; the two lists must agree."""
    assert sources.SOURCE_KEYS == fetch.SOURCE_KEYS
    assert sources.SOURCE_ENV_PREFIX == fetch.SOURCE_ENV_PREFIX
    assert sources.SECRET_NAME_ENV == fetch.SECRET_NAME_ENV
    assert {k for keys in fetch.NEEDED_KEYS.values() for k in keys} <= set(sources.SOURCE_KEYS)


def test_every_key_comes_from_the_secret_optional_and_prefixed(spec, config) -> None:
    spec["model"]["uri"] = "hf://sentence-transformers/all-MiniLM-L6-v2"
    spec["model"]["credentialsSecret"] = "hub-creds"
    env = {e["name"]: e for e in _env(spec, config)}
    assert env["LEPTON_SOURCE_SECRET"] == {"name": "LEPTON_SOURCE_SECRET", "value": "hub-creds"}
    for key in sources.SOURCE_KEYS:
        assert env[f"LEPTON_SOURCE_{key}"]["valueFrom"]["secretKeyRef"] == {
            "name": "hub-creds",
            "key": key,
            "optional": True,
        }
    # The repository upload's own AWS_* are untouched by the model's Secret.
    assert "AWS_ACCESS_KEY_ID" not in env


def test_without_a_secret_no_source_environment(spec, config) -> None:
    names = {e["name"] for e in _env(spec, config)}
    assert not any(name.startswith("LEPTON_SOURCE_") for name in names)


HF_URIS = [
    ("hf://sentence-transformers/all-MiniLM-L6-v2", True),
    ("hf://org/name@main", True),
    ("hf://org/name@v1.0", True),
    (f"hf://org/name@{'a' * 40}", True),
    ("hf://name", False),
    ("hf://org/name/extra", False),
    ("hf://org/name@", False),
    ("hf://org/name@a@b", False),
    ("hf://../name", False),
    ("hf://org/name@rev with space", False),
]


@pytest.mark.parametrize(("uri", "valid"), HF_URIS)
def test_the_api_and_the_builder_read_hf_uris_alike(spec, uri: str, valid: bool) -> None:
    spec["model"]["uri"] = uri
    try:
        parse_spec(spec)
        admitted = True
    except ValidationError:
        admitted = False
    try:
        hub.parse_hf_uri(uri)
        read = True
    except LoadError:
        read = False
    assert (admitted, read) == (valid, valid)


def test_downloads_are_kept_on_the_models_volume_unless_it_is_s3(spec, config) -> None:
    parsed = parse_spec(spec)
    request = build.build_request("minilm", parsed, config.pools[0], "abc123", "job")
    assert request["sourceCache"] == "/models/.source-cache"
    assert request["repository"].startswith("/models/")  # the same volume, mounted
    spec["repository"] = {"s3": {"uri": "s3://10.0.0.5:9000/models/team-a"}}
    request = build.build_request("minilm", parse_spec(spec), config.pools[0], "abc123", "job")
    assert "sourceCache" not in request  # no model volume: nothing outlives the Job


def test_the_namespace_cache_claim_is_mounted_and_used_s3_repository_or_not(spec, config) -> None:
    for repository in (None, {"s3": {"uri": "s3://10.0.0.5:9000/models/team-a"}}):
        if repository:
            spec["repository"] = repository
        job = build.job(
            "minilm",
            "ml",
            parse_spec(spec),
            config.pools[0],
            "abc123",
            "builder:1",
            source_cache_claim="lepton-source-cache",
        )
        pod = job["spec"]["template"]["spec"]
        request = json.loads(pod["containers"][0]["args"][1])
        assert request["sourceCache"] == build.NAMESPACE_SOURCE_CACHE
        assert {
            "name": "source-cache",
            "persistentVolumeClaim": {"claimName": "lepton-source-cache"},
        } in pod["volumes"]
        assert {"name": "source-cache", "mountPath": build.NAMESPACE_SOURCE_CACHE} in pod[
            "containers"
        ][0]["volumeMounts"]
