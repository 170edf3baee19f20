"""Where a build's Triton repository lives: on the model's PVC, or in an S3 bucket.

With ``spec.repository.s3`` the build Job writes the repository to its scratch
``emptyDir`` and uploads it to ``<uri>/<buildHash>/<pool>/``; Triton is then started on
that very URI (its own S3 client reads it) and no PVC is created or mounted. The
credentials are passed by ``secretKeyRef``, key by key, so only the keys the AWS SDKs
read reach the pods, never the rest of a Secret.
"""

from __future__ import annotations

from typing import Any

from lepton_operator.api.spec import S3Repository
from lepton_operator.resources import names

MODELS_MOUNT = "/models"
SCRATCH_REPOSITORY = "/tmp/repository"

# (key, required): region and session token are optional in a Secret.
S3_CREDENTIAL_KEYS = (
    ("AWS_ACCESS_KEY_ID", True),
    ("AWS_SECRET_ACCESS_KEY", True),
    ("AWS_DEFAULT_REGION", False),
    ("AWS_SESSION_TOKEN", False),
)


def local_path(build: str, pool: str, s3: S3Repository | None) -> str:
    """The folder the builder writes into: the PVC's, or scratch it uploads from."""
    root = SCRATCH_REPOSITORY if s3 else MODELS_MOUNT
    return f"{root}/{names.repository_path(build, pool)}"


def s3_uri(s3: S3Repository, build: str, pool: str) -> str:
    """The repository's URI, as the builder uploads to it and Triton reads it."""
    return f"{s3.uri.rstrip('/')}/{names.repository_path(build, pool)}"


def serving_path(build: str, pool: str, s3: S3Repository | None, variant: str) -> str:
    """``--model-repository`` of the Triton that serves ``variant`` of a build on a pool:
    the variant's own folder, whose one model is named after the LeptonModel (so the
    name clients call never changes with the variant)."""
    root = s3_uri(s3, build, pool) if s3 else f"{MODELS_MOUNT}/{names.repository_path(build, pool)}"
    return f"{root}/{variant}"


def credential_env(s3: S3Repository | None) -> list[dict[str, Any]]:
    """Environment from the credentials Secret; none without one (ambient credentials)."""
    if s3 is None or s3.credentials_secret is None:
        return []
    return [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {
                    "name": s3.credentials_secret,
                    "key": key,
                    **({} if required else {"optional": True}),
                }
            },
        }
        for key, required in S3_CREDENTIAL_KEYS
    ]
