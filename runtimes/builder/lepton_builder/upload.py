"""Upload a built Triton repository to an S3-compatible bucket, where Triton reads it.

The URI is Triton's own form, ``s3://[[http(s)://]host:port/]bucket/prefix``, so the
operator passes one string to both the builder and ``--model-repository``. Credentials
come from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``), as the AWS SDK in Triton reads them too.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

_URI = re.compile(
    r"^s3://(?:(?P<scheme>https?)://)?(?:(?P<host>[0-9A-Za-z.-]+:[0-9]{1,5})/)?"
    r"(?P<bucket>[0-9a-z][0-9a-z.-]+)(?:/(?P<prefix>.*))?$"
)


@dataclass(frozen=True)
class S3Location:
    endpoint_url: str | None  # None: AWS itself
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty


def parse_s3_uri(uri: str) -> S3Location:
    """Split Triton's S3 URI. A host without a scheme is reached over plain HTTP, which
    is what Triton was seen doing against a local S3 server; write https:// for TLS."""
    match = _URI.match(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not s3://[[http(s)://]host:port/]bucket/prefix")
    host = match["host"]
    endpoint = f"{match['scheme'] or 'http'}://{host}" if host else None
    return S3Location(endpoint, match["bucket"], (match["prefix"] or "").strip("/"))


def object_keys(repository: Path, prefix: str) -> list[tuple[Path, str]]:
    """Every file of the repository with the key it gets, in a stable order."""
    files = sorted(p for p in repository.rglob("*") if p.is_file())
    base = f"{prefix}/" if prefix else ""
    return [(p, base + p.relative_to(repository).as_posix()) for p in files]


def upload_repository(repository: Path, uri: str) -> int:
    """Copy every file under ``repository`` to ``uri``; returns how many were copied.

    boto3 is imported here, not at module level: only builds with an S3 repository
    need it (and it is typed loosely on purpose until it is a declared dependency).
    """
    boto3 = importlib.import_module("boto3")

    location = parse_s3_uri(uri)
    s3 = boto3.client("s3", endpoint_url=location.endpoint_url)
    pairs = object_keys(repository, location.prefix)
    for path, key in pairs:
        s3.upload_file(str(path), location.bucket, key)
    return len(pairs)
