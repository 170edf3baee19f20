"""Upload a built Triton repository to an S3-compatible bucket, where Triton reads it.

The URI is Triton's own form, ``s3://[[http(s)://]host:port/]bucket/prefix``, so the
operator passes one string to both the builder and ``--model-repository``. Credentials
come from the environment Triton's AWS SDK reads too (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``; the region from ``AWS_DEFAULT_REGION``),
else from ``~/.aws/credentials`` or the pod's role (IRSA, ECS, EC2 instance profile).

The client is MinIO's, not boto3: every botocore requires ``python-dateutil<3`` and the
pinned kubernetes client ``>=3``, so the two cannot share an environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported when a repository is uploaded: a build without S3 needs none
    from minio import Minio

# The same language as the CRD's pattern (lepton_operator.api.spec.S3_URI_PATTERN, which
# the builder may not import); tests/unit/operator/test_s3_repository.py runs both on the
# same URIs.
_URI = re.compile(
    r"^s3://(?:(?P<scheme>https?)://)?(?:(?P<host>[0-9A-Za-z.-]+:[0-9]{1,5})/)?"
    r"(?P<bucket>[0-9a-z][0-9a-z.-]{1,61}[0-9a-z])(?P<prefix>(?:/[0-9A-Za-z._-]+)*)/?$"
)
AWS_ENDPOINT = "https://s3.amazonaws.com"


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
    return S3Location(endpoint, match["bucket"], match["prefix"].strip("/"))


def object_keys(repository: Path, prefix: str) -> list[tuple[Path, str]]:
    """Every file of the repository with the key it gets, in a stable order."""
    files = sorted(p for p in repository.rglob("*") if p.is_file())
    base = f"{prefix}/" if prefix else ""
    return [(p, base + p.relative_to(repository).as_posix()) for p in files]


def client(location: S3Location) -> Minio:
    """A client for the location's endpoint (path-style for any host but AWS's)."""
    from minio import Minio
    from minio.credentials.providers import (
        AWSConfigProvider,
        ChainedProvider,
        EnvAWSProvider,
        IamAwsProvider,
    )

    endpoint = urlsplit(location.endpoint_url or AWS_ENDPOINT)
    return Minio(
        endpoint.netloc,
        secure=endpoint.scheme == "https",
        # Unset: MinIO asks the bucket for its region (GetBucketLocation) once.
        region=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None,
        credentials=ChainedProvider([EnvAWSProvider(), AWSConfigProvider(), IamAwsProvider()]),
    )


def upload_repository(repository: Path, uri: str) -> int:
    """Copy every file under ``repository`` to ``uri``; returns how many were copied."""
    location = parse_s3_uri(uri)
    s3 = client(location)
    pairs = object_keys(repository, location.prefix)
    for path, key in pairs:
        s3.fput_object(location.bucket, key, str(path))
    return len(pairs)
