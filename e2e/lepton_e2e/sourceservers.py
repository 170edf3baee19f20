"""Real servers of model files for the builder's remote sources, on an address of ours.

- ``certificates``: a CA of our own (openssl) and a server certificate it signed for one
  IP address, as a team's internal HTTPS server would have;
- ``serving``: a threading HTTP(S) server for a handler class, on ``host`` and a free
  port, shut down on exit;
- ``files_handler``: a handler serving a few files by path;
- ``hub_handler``: the paths ``huggingface_hub`` calls on the Hub (a repository's listing
  at a revision, a file resolved at a commit), answering with a token only, so a mirror
  endpoint (``HF_ENDPOINT``) can point at it.

The integration tests bind them to loopback; the e2e tests to the cluster's gateway,
which the process pods reach (``netns``). S3 is gofakes3 (``fakes3``).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

HUB_COMMIT = "c0ffee" + "0" * 34
HUB_TOKEN = "hf_test_token"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificates(folder: Path, ip: str) -> Certificates:
    """A CA of our own and a certificate it signed for ``ip``."""
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
             str(ca), "-days", "2", "-subj", "/CN=lepton test CA")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={ip}")  # fmt: skip
    extensions = folder / "san.cnf"
    extensions.write_text(f"subjectAltName=IP:{ip}\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2",
             "-extfile", str(extensions))  # fmt: skip
    return Certificates(ca=ca, cert=cert, key=key)


@contextmanager
def serving(
    handler: type[http.server.BaseHTTPRequestHandler],
    host: str = "127.0.0.1",
    tls: Certificates | None = None,
) -> Iterator[str]:
    """The server's base URL (``https://`` with ``tls``), serving until the block ends."""
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive, as servers of models are

    def log_message(self, *args: object) -> None:
        pass

    def reply(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, head: bool = False
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class Files(_Quiet):
    """Serves ``served`` at ``/<name>``; anything else is a 404. Subclassed per server
    (``files_handler``), so each has its own files and log."""

    served: ClassVar[dict[str, bytes]] = {}
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = self.served.get(self.path.lstrip("/"))
        if body is None:
            self.reply(404, b"no such file")
        else:
            self.reply(200, body)


def files_handler(files: dict[str, bytes]) -> type[Files]:
    return type("ServedFiles", (Files,), {"served": dict(files), "seen": []})


def blob_id(body: bytes) -> str:
    """The git blob hash the Hub lists for a file that is not in LFS."""
    return hashlib.sha1(f"blob {len(body)}\0".encode() + body).hexdigest()


def _listing(repo: str, files: dict[str, bytes]) -> bytes:
    siblings = []
    for name, body in files.items():
        entry: dict[str, object] = {"rfilename": name, "size": len(body), "blobId": blob_id(body)}
        if name.endswith(".safetensors"):
            entry["lfs"] = {
                "sha256": hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "pointerSize": 130,
            }
        siblings.append(entry)
    return json.dumps({"id": repo, "sha": HUB_COMMIT, "siblings": siblings}).encode()


class Hub(_Quiet):
    """``/api/models/<repo>/revision/<rev>`` and ``/<repo>/resolve/<commit>/<file>`` as
    the Hub answers them, every revision resolving to ``HUB_COMMIT``; the (repo, file)
    pairs in ``tamper`` are served with other bytes than listed (same size). Subclassed
    per server (``hub_handler``)."""

    repos: ClassVar[dict[str, dict[str, bytes]]] = {}
    tamper: ClassVar[frozenset[tuple[str, str]]] = frozenset()
    requests: ClassVar[list[str]] = []

    def _answer(self, head: bool) -> None:
        self.requests.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {HUB_TOKEN}":
            self.reply(401, b"", {"X-Error-Code": "RepoNotFound"}, head)
            return
        listing = re.match(r"^/api/models/(\w+/\w+)/revision/([^?]+)", self.path)
        resolve = re.match(rf"^/(\w+/\w+)/resolve/{HUB_COMMIT}/(.+)$", self.path)
        if listing and listing[1] in self.repos:
            self.reply(200, _listing(listing[1], self.repos[listing[1]]), {}, head)
        elif resolve and resolve[2] in self.repos.get(resolve[1], {}):
            body = self.repos[resolve[1]][resolve[2]]
            if (resolve[1], resolve[2]) in self.tamper:
                body = body[:-1] + bytes([body[-1] ^ 1])  # same size, other bytes
            headers = {"X-Repo-Commit": HUB_COMMIT, "ETag": f'"{blob_id(body)}"'}
            self.reply(200, body, headers, head)
        else:
            self.reply(404, b"", {"X-Error-Code": "RepoNotFound"}, head)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)


def hub_handler(
    repos: dict[str, dict[str, bytes]], tamper: set[tuple[str, str]] | None = None
) -> type[Hub]:
    return type(
        "ServedHub", (Hub,), {"repos": repos, "tamper": frozenset(tamper or ()), "requests": []}
    )
