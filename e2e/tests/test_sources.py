"""A model from each remote source builds and serves (issue 26), as a user's would.

Real servers on the cluster's gateway, which the process pods reach: an HTTPS server
whose certificate a CA of the team's own signed, gofakes3 for an S3-compatible store,
and a Hub mirror answering the paths ``huggingface_hub`` calls, with a token. What each
needs comes from a Secret the LeptonModel names (``CA_BUNDLE``; the ``AWS_*`` keys;
``HF_TOKEN`` and ``HF_ENDPOINT``); the operator passes it to the real builder's Job,
which downloads, checks and builds; Triton serves what was built, and a request through
the Service answers what the fp32 model answered. Status says what checked each file
(``SourceVerified``: the sha256, the Hub's listing, or nothing, with a warning) and the
Hub commit the revision resolved to. A second model of the same file, once the first
is Ready, finds it on the namespace's source cache and downloads nothing, and finds the
first one's whole build in its build cache: it reuses it, served under its own name.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_e2e import models, sourceservers
from lepton_e2e.cluster import ClusterConfig, state_root
from lepton_e2e.fakes3 import CREDENTIALS, gofakes3
from lepton_e2e.fixtures import Kube, installed_operator, model_namespace, shared_claim, wait_for
from lepton_e2e.lanes import Lane
from lepton_e2e.load import infer, sample_inputs, served_sample, service_endpoints

pytestmark = pytest.mark.e2e

BUILDER = "ghcr.io/lepton-ai/lepton-builder:0.1.0"
OPTIMIZATION = {"variants": ["onnx"], "batchSizes": [1, 4]}
SOURCE_CACHE = "lepton-source-cache"  # the chart's default builds.sourceCacheClaim


@pytest.fixture(scope="module")
def operator(kube: Kube, lane: Lane) -> Iterator[None]:
    with installed_operator(kube, BUILDER, lane=lane):
        yield


def _secret(kube: Kube, namespace: str, name: str, data: dict[str, str]) -> None:
    kube.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data},
        namespace=namespace,
    )


def _ready(kube: Kube, namespace: str, names: list[str]) -> dict[str, dict[str, Any]]:
    def check() -> dict[str, dict[str, Any]] | None:
        statuses = {n: kube.get("lm", n, namespace).get("status") or {} for n in names}
        failed = {n: s for n, s in statuses.items() if s.get("phase") == "Failed"}
        assert not failed, failed
        return statuses if all(s.get("phase") == "Ready" for s in statuses.values()) else None

    ready: dict[str, dict[str, Any]] = wait_for(
        check, timeout=600, interval=3, what=f"{', '.join(names)} Ready"
    )
    return ready


def test_a_model_from_each_remote_source_builds_and_serves(
    kube: Kube, namespace: str, operator: None, tmp_path: Path
) -> None:
    gateway = ClusterConfig.default().network.gateway
    models.train_digits(tmp_path / "digits")
    weights = (tmp_path / "digits" / "digits.pt").read_bytes()
    digest = hashlib.sha256(weights).hexdigest()
    (tmp_path / "bert").mkdir()
    bert = models.tiny_bert_files(tmp_path / "bert")
    tls = sourceservers.certificates(tmp_path, gateway)
    files = sourceservers.files_handler({"team/digits.pt": weights})
    hub = sourceservers.hub_handler({"team/tinybert": bert})
    model_namespace(kube, namespace)  # restricted Pod Security, as a user's namespace
    with ExitStack() as servers:
        https = servers.enter_context(sourceservers.serving(files, gateway, tls))
        s3, client = servers.enter_context(gofakes3(tmp_path, gateway))
        mirror = servers.enter_context(sourceservers.serving(hub, gateway))
        client.make_bucket("models")
        client.put_object("models", "team/digits.pt", io.BytesIO(weights), len(weights))
        _secret(kube, namespace, "internal-ca", {"CA_BUNDLE": tls.ca.read_text()})
        _secret(kube, namespace, "s3-keys", CREDENTIALS)
        _secret(
            kube,
            namespace,
            "hub",
            {"HF_TOKEN": sourceservers.HUB_TOKEN, "HF_ENDPOINT": mirror},
        )
        sources = {
            "from-https": models.digits_source(
                f"{https}/team/digits.pt", sha256=digest, credentialsSecret="internal-ca"
            ),
            # No sha256: served all the same, with a warning that nothing pins the file.
            "from-s3": models.digits_source(
                f"s3://{s3}/models/team/digits.pt", credentialsSecret="s3-keys"
            ),
            "from-hub": models.tiny_bert_source("hf://team/tinybert@main", credentialsSecret="hub"),
        }
        # The namespace's source cache, the claim the chart's builds.sourceCacheClaim names.
        shared_claim(kube, namespace, SOURCE_CACHE)
        for name, source in sources.items():
            kube.apply(models.leptonmodel(name, source, OPTIMIZATION), namespace=namespace)
        statuses = _ready(kube, namespace, list(sources))
        # A second model of the same file in the namespace: its build finds the file on
        # the namespace's source cache, kept there by the first, and downloads nothing.
        assert files.seen.count("/team/digits.pt") == 1, files.seen
        again = models.digits_source(
            f"{https}/team/digits.pt", sha256=digest, credentialsSecret="internal-ca"
        )
        kube.apply(models.leptonmodel("from-https-again", again, OPTIMIZATION), namespace=namespace)
        again_status = _ready(kube, namespace, ["from-https-again"])["from-https-again"]
        assert files.seen.count("/team/digits.pt") == 1, files.seen
        # The same bytes, settings, builder and node: the build itself is reused.
        assert all(b.get("reusedFrom") for b in again_status["builds"]), again_status["builds"]
        kept = state_root() / "pvcs" / namespace / SOURCE_CACHE / "sha256" / digest
        assert (kept / "digits.pt").read_bytes() == weights

    # Each server was asked, each for the file the model named (and the Hub at one commit).
    assert "/team/digits.pt" in files.seen
    assert any(
        f"/team/tinybert/resolve/{sourceservers.HUB_COMMIT}/model.safetensors" in p
        for p in hub.requests
    ), hub.requests
    assert not any(p.endswith((".py", ".bin")) for p in hub.requests)
    (report,) = kube.list(
        "configmap", namespace, "lepton.ai/model=from-hub,lepton.ai/component=build-report"
    )
    assert json.loads(report["data"]["report.json"])["sourceCommit"] == sourceservers.HUB_COMMIT
    assert statuses["from-hub"]["sourceCommit"] == sourceservers.HUB_COMMIT
    verified = {
        name: next(
            (c["status"], c["reason"]) for c in s["conditions"] if c["type"] == "SourceVerified"
        )
        for name, s in statuses.items()
    }
    assert verified == {
        "from-https": ("True", "ChecksumPinned"),
        "from-s3": ("False", "NoChecksum"),
        "from-hub": ("True", "HubChecksums"),
    }
    for name, status in {**statuses, "from-https-again": again_status}.items():
        sample = served_sample(status, namespace, name)
        (address,) = service_endpoints(kube, name, namespace)
        answer = infer(address, name, sample_inputs(sample))
        for key, expected in sample.items():
            if key.startswith("baseline:"):
                output = key.split(":", 1)[1]
                np.testing.assert_allclose(answer[output], expected, rtol=1e-3, atol=1e-3)
        print(f"{name}: {status['decision']['reason']}")
