"""The builder's remote sources against real servers on loopback: an HTTPS server with a
CA of its own (made here with openssl) and gofakes3 for S3. Each hostile case must fail
with a reason a person can act on, and leave no file behind for a loader to read."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from lepton_builder import cli, fetch, hub, loading, sourcecache
from lepton_builder.untrusted import LoadError
from lepton_e2e import models, sourceservers
from lepton_e2e.fakes3 import CREDENTIALS, gofakes3

pytestmark = pytest.mark.integration

BODY = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(BODY).hexdigest()
NO_WAIT = fetch.Retry(attempts=3, base=0.0, sleep=lambda _: None)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA of our own and a certificate it signed for 127.0.0.1."""
    made = sourceservers.certificates(tmp_path_factory.mktemp("pki"), "127.0.0.1")
    return {"ca": made.ca, "cert": made.cert, "key": made.key}


class Handler(http.server.BaseHTTPRequestHandler):
    """The paths each case needs; ``flaky`` fails once per server, then serves."""

    served_flaky = False
    files: ClassVar[dict[str, bytes]] = {}  # served at /files/<name>
    seen: ClassVar[list[str]] = []  # every path asked for
    protocol_version = "HTTP/1.1"  # kept alive, as servers of models are

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        # The client may hang up mid-body, as the size cap does: nothing to report (over
        # TLS that reads as an EOF in violation of the protocol).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
            self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.seen.append(self.path)
        if self.path.startswith("/files/") and self.path[7:] in Handler.files:
            self._send(200, Handler.files[self.path[7:]])
        elif self.path == "/models/model.onnx":
            self._send(200, BODY)
        elif self.path == "/same-host/model.onnx":
            self.send_response(302)
            self.send_header("Location", "/models/model.onnx")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/other-host/model.onnx":
            self.send_response(302)
            self.send_header("Location", "https://attacker.example/model.onnx")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/longer/model.onnx":
            self._send(200, BODY, length=1000)  # declares 1,000 bytes, sends 1 MiB
        elif self.path == "/flaky/model.onnx":
            if not Handler.served_flaky:
                Handler.served_flaky = True
                self._send(503, b"busy")
            else:
                self._send(200, BODY)
        else:
            self._send(404, b"no such file")


@pytest.fixture(scope="module")
def https_server(certificates: dict[str, Path]) -> Iterator[str]:
    tls = sourceservers.Certificates(certificates["ca"], certificates["cert"], certificates["key"])
    with sourceservers.serving(Handler, "127.0.0.1", tls) as url:
        yield url


def _get(url: str, folder: Path, ca: Path | None, **kwargs: object) -> Path:
    options: dict[str, object] = {"max_bytes": 10 * len(BODY), "sha256": DIGEST, "retry": NO_WAIT}
    options.update(kwargs)
    return fetch.fetch_https(url, folder, ca_bundle=ca.read_text() if ca else None, **options)  # type: ignore[arg-type]


def test_a_model_is_downloaded_and_checked(https_server, certificates, tmp_path) -> None:
    path = _get(f"{https_server}/models/model.onnx", tmp_path, certificates["ca"])
    assert path == tmp_path / "model.onnx" and path.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_the_ca_bundle_comes_from_the_environment_too(
    https_server, certificates, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(fetch.CA_BUNDLE_ENV, certificates["ca"].read_text())
    assert _get(f"{https_server}/models/model.onnx", tmp_path, None).read_bytes() == BODY


def test_a_server_no_trusted_ca_signed_is_refused(https_server, tmp_path) -> None:
    with pytest.raises(LoadError, match="certificate is not trusted"):
        _get(f"{https_server}/models/model.onnx", tmp_path, None)
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_checksum_leaves_nothing_to_load(https_server, certificates, tmp_path) -> None:
    with pytest.raises(LoadError, match=r"sha256 mismatch.*nothing was loaded"):
        _get(f"{https_server}/models/model.onnx", tmp_path, certificates["ca"], sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_on_the_same_host_is_followed(https_server, certificates, tmp_path) -> None:
    path = _get(f"{https_server}/same-host/model.onnx", tmp_path, certificates["ca"])
    assert path.read_bytes() == BODY


def test_a_redirect_to_another_host_is_refused(https_server, certificates, tmp_path) -> None:
    with pytest.raises(LoadError, match=r"redirects to https://attacker\.example/.*refused"):
        _get(f"{https_server}/other-host/model.onnx", tmp_path, certificates["ca"])
    assert list(tmp_path.iterdir()) == []


def test_a_body_longer_than_declared_is_refused(https_server, certificates, tmp_path) -> None:
    with pytest.raises(LoadError, match="more than the 1000 bytes it declared"):
        _get(f"{https_server}/longer/model.onnx", tmp_path, certificates["ca"], sha256=None)
    assert list(tmp_path.iterdir()) == []


def test_a_file_over_the_cap_is_refused_before_reading(
    https_server, certificates, tmp_path
) -> None:
    with pytest.raises(LoadError, match="over the limit of 1000; not read"):
        _get(f"{https_server}/models/model.onnx", tmp_path, certificates["ca"], max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


def test_a_busy_server_is_retried(https_server, certificates, tmp_path) -> None:
    assert (
        _get(f"{https_server}/flaky/model.onnx", tmp_path, certificates["ca"]).read_bytes() == BODY
    )
    assert Handler.served_flaky


def test_a_missing_file_is_not_retried(https_server, certificates, tmp_path) -> None:
    sleeps: list[float] = []
    retry = fetch.Retry(attempts=3, base=1.0, sleep=sleeps.append)
    with pytest.raises(LoadError, match="answered 404"):
        _get(f"{https_server}/models/gone.onnx", tmp_path, certificates["ca"], retry=retry)
    assert sleeps == []


def test_an_unreachable_server_is_retried_with_back_off_then_named(tmp_path) -> None:
    sleeps: list[float] = []
    retry = fetch.Retry(attempts=3, base=1.0, sleep=sleeps.append)
    with pytest.raises(LoadError, match="gave up after 3 attempts"):
        fetch.fetch_https(
            "https://127.0.0.1:9/model.onnx", tmp_path, max_bytes=10, sha256=None, retry=retry
        )
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


# ---- S3 (gofakes3) --------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gofakes3 on a free port, a bucket holding the model, and the credentials in the
    environment as the operator passes the model's Secret."""
    with (
        gofakes3(tmp_path_factory.mktemp("gofakes3")) as (endpoint, client),
        pytest.MonkeyPatch.context() as patch,
    ):
        for key, value in CREDENTIALS.items():
            patch.setenv(fetch.SOURCE_ENV_PREFIX + key, value)  # as from the Secret
        client.make_bucket("models")
        client.put_object("models", "team/model.onnx", io.BytesIO(BODY), len(BODY))
        yield f"s3://{endpoint}/models/team/model.onnx"


def test_an_s3_object_is_downloaded_and_checked(s3, tmp_path) -> None:
    path = fetch.fetch(s3, tmp_path, max_bytes=10 * len(BODY), sha256=DIGEST, retry=NO_WAIT)
    assert path == tmp_path / "model.onnx" and path.read_bytes() == BODY


def test_an_s3_object_with_a_wrong_checksum_leaves_nothing(s3, tmp_path) -> None:
    with pytest.raises(LoadError, match="sha256 mismatch"):
        fetch.fetch(s3, tmp_path, max_bytes=10 * len(BODY), sha256="1" * 64, retry=NO_WAIT)
    assert list(tmp_path.iterdir()) == []


def test_an_s3_object_over_the_cap_is_not_read(s3, tmp_path) -> None:
    with pytest.raises(LoadError, match="over the limit"):
        fetch.fetch(s3, tmp_path, max_bytes=1000, sha256=None, retry=NO_WAIT)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_s3_object_is_named(s3, tmp_path) -> None:
    with pytest.raises(LoadError, match="NoSuchKey"):
        fetch.fetch(s3.replace("model.onnx", "gone.onnx"), tmp_path, max_bytes=10, sha256=None)


# ---- the Hugging Face Hub (a local server answering the paths huggingface_hub calls) ---
COMMIT = sourceservers.HUB_COMMIT
OTHER_COMMIT = "bad" + "0" * 37  # a revision the Hub answers with COMMIT (history rewritten)
TOKEN = sourceservers.HUB_TOKEN
WEIGHTS = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(1000)
REPOS: dict[str, dict[str, bytes]] = {
    "org/model": {
        "config.json": b'{"model_type": "bert"}',
        "model.safetensors": WEIGHTS,
        "vocab.txt": b"[PAD]\n[CLS]\n",
        "pytorch_model.bin": b"\x80\x04pickle",
        "modeling_evil.py": b"import os; os.system('true')",
        "onnx/model.onnx": b"onnx in a sub-folder",
    },
    "org/pickles": {"config.json": b"{}", "pytorch_model.bin": b"\x80\x04pickle"},
    "org/liar": {"config.json": b"{}", "model.safetensors": WEIGHTS},
}
Hub = sourceservers.hub_handler(REPOS, tamper={("org/liar", "model.safetensors")})


@pytest.fixture(scope="module")
def hub_endpoint() -> Iterator[str]:
    with sourceservers.serving(Hub) as url:
        yield url


@pytest.fixture
def hub_env(hub_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The mirror and token as the build Job gets them: from its environment."""
    monkeypatch.setenv("LEPTON_SOURCE_HF_ENDPOINT", hub_endpoint)
    monkeypatch.setenv("LEPTON_SOURCE_HF_TOKEN", TOKEN)
    Hub.requests.clear()
    return hub_endpoint


def test_a_hub_model_is_fetched_at_one_commit_data_files_only(
    hub_env, tmp_path, monkeypatch
) -> None:
    from huggingface_hub import constants

    # The builder's environment keeps the Hub offline for loading (HF_HUB_OFFLINE=1 in
    # its image); the download goes online for itself alone.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = hub.fetch_hf("hf://org/model@main", tmp_path / "m", max_bytes=10**6, retry=NO_WAIT)
    assert constants.HF_HUB_OFFLINE is True
    assert model.commit == COMMIT
    assert sorted(p.name for p in model.path.iterdir()) == [
        "config.json",
        "model.safetensors",
        "vocab.txt",
    ]
    assert (model.path / "model.safetensors").read_bytes() == WEIGHTS
    # Code, pickles and sub-folders were never asked for; every file at the one commit.
    downloads = [p for p in Hub.requests if "/resolve/" in p]
    assert downloads and all(f"/resolve/{COMMIT}/" in p for p in downloads)
    assert not any(p.endswith((".py", ".bin", ".onnx")) for p in Hub.requests)


def test_a_repository_of_pickles_only_is_refused_naming_what_it_holds(hub_env, tmp_path) -> None:
    with pytest.raises(LoadError, match=r"no \.safetensors weights.*pytorch_model\.bin"):
        hub.fetch_hf("hf://org/pickles", tmp_path / "m", max_bytes=10**6, retry=NO_WAIT)
    assert not any("/resolve/" in p for p in Hub.requests)
    assert not (tmp_path / "m").exists()


def test_a_file_that_is_not_what_the_hub_listed_leaves_nothing(hub_env, tmp_path) -> None:
    with pytest.raises(LoadError, match=r"does not match the Hub's checksum.*nothing was loaded"):
        hub.fetch_hf("hf://org/liar", tmp_path / "m", max_bytes=10**6, retry=NO_WAIT)
    assert not (tmp_path / "m").exists()


def test_a_pinned_commit_that_resolves_elsewhere_is_refused(hub_env, tmp_path) -> None:
    uri = f"hf://org/model@{OTHER_COMMIT}"
    with pytest.raises(LoadError, match=f"resolved to commit {COMMIT}.*Refused"):
        hub.fetch_hf(uri, tmp_path / "m", max_bytes=10**6, retry=NO_WAIT)
    assert not any("/resolve/" in p for p in Hub.requests)


def test_a_hub_model_over_the_cap_is_not_fetched(hub_env, tmp_path) -> None:
    with pytest.raises(LoadError, match="over the limit of 100"):
        hub.fetch_hf("hf://org/model", tmp_path / "m", max_bytes=100, retry=NO_WAIT)
    assert not any("/resolve/" in p for p in Hub.requests)


def test_a_missing_repository_or_token_is_named(hub_env, tmp_path, monkeypatch) -> None:
    with pytest.raises(LoadError, match="RepositoryNotFoundError"):
        hub.fetch_hf("hf://org/absent", tmp_path / "m", max_bytes=10**6, retry=NO_WAIT)
    monkeypatch.delenv("LEPTON_SOURCE_HF_TOKEN")
    with pytest.raises(LoadError, match="hf://org/model: RepositoryNotFoundError"):
        hub.fetch_hf("hf://org/model", tmp_path / "m", max_bytes=10**6, retry=NO_WAIT)


@pytest.mark.parametrize("uri", ["hf://model", "hf://org/m@", "hf://../x", "hf://org/m/extra"])
def test_a_malformed_hub_uri_is_refused(uri, tmp_path) -> None:
    with pytest.raises(LoadError, match="is not hf://"):
        hub.fetch_hf(uri, tmp_path, max_bytes=10, retry=NO_WAIT)


# ---- a credentials Secret that does not exist --------------------------------------------
def test_a_missing_secret_is_named_before_any_request(s3, hub_env, tmp_path, monkeypatch) -> None:
    """The operator passes the Secret's keys as optional, so a Secret that does not exist
    arrives as its name alone: each scheme says so before it asks any server."""
    monkeypatch.setenv(fetch.SECRET_NAME_ENV, "absent-creds")
    for key in fetch.SOURCE_KEYS:
        monkeypatch.delenv(fetch.SOURCE_ENV_PREFIX + key, raising=False)
    Hub.requests.clear()
    for uri, missing in [
        (s3, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
        ("https://127.0.0.1:9/model.onnx", "CA_BUNDLE"),
        ("hf://org/model", "HF_TOKEN"),
    ]:
        with pytest.raises(LoadError) as raised:
            if uri.startswith("hf://"):
                hub.fetch_hf(uri, tmp_path / "m", max_bytes=10**6, retry=NO_WAIT)
            else:
                fetch.fetch(uri, tmp_path, max_bytes=10**6, sha256=None, retry=NO_WAIT)
        assert str(raised.value) == (
            f"{uri}: the credentials Secret 'absent-creds' does not exist in this namespace "
            f"or holds no {missing}; nothing was downloaded"
        )
    assert Hub.requests == [] and list(tmp_path.iterdir()) == []


# ---- the whole builder, from a remote source ------------------------------------------
FAST = ["--profile-seconds", "0.1", "--min-iterations", "2", "--threads", "1"]


def _build(
    tmp_path: Path, uri: str, calibration: str, sha256: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, Path]:
    monkeypatch.setattr(cli, "TERMINATION_LOG", tmp_path / "termination-log")
    monkeypatch.setattr(loading, "DOWNLOADS_ROOT", tmp_path / "downloads")
    request = {
        "requestVersion": 1,
        "modelName": "digits",
        "pool": "cpu",
        "device": "cpu",
        "model": {
            "uri": uri,
            "format": "torchscript",
            "sha256": sha256,
            "inputs": models.DIGITS_INPUTS,
            "outputs": models.DIGITS_OUTPUTS,
        },
        "optimization": {"batchSizes": [1], "variants": ["fp32"], "calibrationUri": calibration},
        "repository": str(tmp_path / "repository"),
    }
    argv = ["--request", json.dumps(request), "--report-file", str(tmp_path / "report.json")]
    return cli.main([*argv, *FAST]), tmp_path / "termination-log"


def test_the_builder_builds_a_model_served_over_https(
    https_server, certificates, digits, tmp_path, monkeypatch
) -> None:
    honest = digits.sources_root / "models"
    Handler.files.update(
        {
            "digits.pt": (honest / "digits.pt").read_bytes(),
            "calibration.npz": (honest / "digits-calibration.npz").read_bytes(),
        }
    )
    monkeypatch.setenv(fetch.CA_BUNDLE_ENV, certificates["ca"].read_text())
    sha = hashlib.sha256(Handler.files["digits.pt"]).hexdigest()
    code, _ = _build(
        tmp_path,
        f"{https_server}/files/digits.pt",
        f"{https_server}/files/calibration.npz",
        sha,
        monkeypatch,
    )
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(v["name"], v["status"]) for v in report["variants"]] == [("fp32", "accepted")]


def test_a_wrong_checksum_stops_the_build_before_any_loader(
    https_server, certificates, digits, tmp_path, monkeypatch
) -> None:
    honest = digits.sources_root / "models"
    Handler.files["digits.pt"] = (honest / "digits.pt").read_bytes()
    monkeypatch.setenv(fetch.CA_BUNDLE_ENV, certificates["ca"].read_text())
    code, termination = _build(
        tmp_path, f"{https_server}/files/digits.pt", f"{https_server}/files/none", "0" * 64,
        monkeypatch,
    )  # fmt: skip
    assert code == 1
    assert termination.read_text().startswith(
        f"sha256 mismatch for {https_server}/files/digits.pt: expected {'0' * 64}"
    )
    assert not (tmp_path / "repository").exists()
    assert [p for p in (tmp_path / "downloads").rglob("*") if p.is_file()] == []


# ---- the source cache: a rebuild does not download again -------------------------------
def test_a_rebuild_takes_a_checked_file_from_the_cache(
    https_server, certificates, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(fetch.CA_BUNDLE_ENV, certificates["ca"].read_text())
    uri = f"{https_server}/models/model.onnx"
    cache = tmp_path / "cache"

    def source(run: str) -> Path:
        path, _ = loading.local_source(
            uri, sha256=DIGEST, downloads_root=tmp_path / run, cache=cache
        )
        return path

    Handler.seen.clear()
    assert source("first").read_bytes() == BODY
    assert Handler.seen == ["/models/model.onnx"]
    cached = source("second")
    assert cached.read_bytes() == BODY and cached.is_relative_to(cache)
    assert Handler.seen == ["/models/model.onnx"]  # no second download
    cached.write_bytes(b"tampered")  # an entry is trusted no more than a download
    assert source("third").read_bytes() == BODY
    assert Handler.seen == ["/models/model.onnx"] * 2


def test_without_a_sha256_nothing_is_kept(https_server, certificates, tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.CA_BUNDLE_ENV, certificates["ca"].read_text())
    uri = f"{https_server}/models/model.onnx"
    for run in ("first", "second"):
        loading.local_source(uri, downloads_root=tmp_path / run, cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_rebuild_takes_a_hub_commit_from_the_cache(hub_env, tmp_path) -> None:
    cache = tmp_path / "cache"

    def source(run: str) -> tuple[Path, str | None]:
        return loading.local_source("hf://org/model", downloads_root=tmp_path / run, cache=cache)

    first, commit = source("first")
    assert commit == COMMIT and (first / "model.safetensors").read_bytes() == WEIGHTS
    Hub.requests.clear()
    second, _ = source("second")
    assert second.is_relative_to(cache) and (second / "model.safetensors").read_bytes() == WEIGHTS
    # The listing is asked again (a branch may have moved); no file is.
    assert Hub.requests and not any("/resolve/" in p for p in Hub.requests)
    (second / "vocab.txt").write_bytes(b"tampered")
    third, _ = source("third")
    assert (third / "vocab.txt").read_bytes() == REPOS["org/model"]["vocab.txt"]
    assert any(p.endswith("/vocab.txt") for p in Hub.requests)


def test_two_builds_keeping_one_entry_at_once_never_share_a_copy(tmp_path) -> None:
    """A namespace's cache is shared: another build's entry may land while this one
    copies. Its own temporary copy goes, theirs stays whole, and nothing is left over."""
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    entry = sourcecache.hub_entry(tmp_path / "cache", "org/model", COMMIT)
    partials: list[Path] = []

    def copy_while_another_lands(source: Path, partial: Path) -> None:
        partials.append(partial)
        shutil.copytree(source, partial)
        shutil.copytree(source, entry)  # the other build's rename, first

    sourcecache._place(folder, entry, copy_while_another_lands)
    assert (entry / "model.safetensors").read_bytes() == WEIGHTS
    assert sorted(p.name for p in entry.parent.iterdir()) == [COMMIT]
    assert partials and not partials[0].exists() and partials[0].name != f"{COMMIT}.partial"
