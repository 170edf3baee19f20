"""The model's ``credentialsSecret`` as the build Job's environment, for remote sources.

The builder downloads ``s3://``, ``https://`` and ``hf://`` models itself
(``lepton_builder.fetch``, ``lepton_builder.hub``); what it needs to do so comes from
the Secret the model names, key by key through ``secretKeyRef`` (only these keys reach
the pod, never the rest of the Secret), each under ``LEPTON_SOURCE_``, so the model's
S3 keys never mix with those of ``spec.repository.s3``, which the upload reads as the
plain ``AWS_*``.

Every key is optional: the operator may not read Secrets (no Secret RBAC, by design),
so it cannot tell a missing Secret from one without a key. ``LEPTON_SOURCE_SECRET``
tells the builder a Secret was named; a source whose scheme needs a key that did not
arrive then fails with the Secret's name and the key, instead of a pod that waits on
``CreateContainerConfigError`` until the build's deadline.
"""

from __future__ import annotations

from typing import Any

from lepton_operator.api.spec import ModelSource

SOURCE_ENV_PREFIX = "LEPTON_SOURCE_"
SECRET_NAME_ENV = SOURCE_ENV_PREFIX + "SECRET"
# The keys a credentials Secret may hold; lepton_builder.fetch.SOURCE_KEYS is the same
# list (tests/unit/builder/test_sources.py holds them equal).
SOURCE_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "HF_TOKEN",
    "HF_ENDPOINT",
    "CA_BUNDLE",
)


def source_env(model: ModelSource) -> list[dict[str, Any]]:
    """The build container's environment from ``model.credentialsSecret``; none without."""
    secret = model.credentials_secret
    if secret is None:
        return []
    return [
        {"name": SECRET_NAME_ENV, "value": secret},
        *(
            {
                "name": SOURCE_ENV_PREFIX + key,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
            }
            for key in SOURCE_KEYS
        ),
    ]
