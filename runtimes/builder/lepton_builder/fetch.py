"""Download a model named by ``https://`` or ``s3://`` into the build's own folder.

A remote source is as untrusted as a file on a claim, and the network adds ways to be
lied to, so every download here is bounded and checked before any loader sees it:

- streamed to a temporary file, never held in memory, and refused the moment it passes
  the size cap (``max_bytes``) or the length the server declared (a body longer than
  its ``Content-Length`` is a server that lies about what it sends);
- its SHA-256 computed while it streams and compared with the spec's before the file
  gets its final name: a mismatch leaves nothing behind for a loader to read;
- over HTTPS only to the host the user named: a redirect elsewhere is refused (it could
  lead the builder's credentials or its trust to a host nobody chose), and the CA
  bundle may be the user's own (``LEPTON_SOURCE_CA_BUNDLE``, PEM) for an internal server;
- retried with exponential back-off on what a retry can fix (a connection refused or
  reset, a 5xx, a 429), never on a refusal (4xx) or a check that failed;
- logged as it goes (bytes so far, every ``PROGRESS_BYTES``), so a slow download is
  visible in the Job's log.

S3 reads Triton's URI form, ``s3://[[http(s)://]host:port/]bucket/key``, with MinIO's
client (``lepton_builder.upload`` explains why not boto3). urllib3 is the HTTP client:
MinIO's own, so no new dependency.

Credentials come from the model's ``credentialsSecret``, which the operator passes as
environment under ``SOURCE_ENV_PREFIX`` (``LEPTON_SOURCE_AWS_ACCESS_KEY_ID`` for the
Secret's ``AWS_ACCESS_KEY_ID``), so they never mix with the repository upload's own
``AWS_*``; without them S3 falls back to the pod's ambient credentials (IRSA and kin).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import urllib3

from lepton_builder import upload
from lepton_builder.untrusted import LoadError

if TYPE_CHECKING:  # imported where an s3:// source is read: a build without one needs no S3
    from minio import Minio

log = logging.getLogger(__name__)

# The operator's names for them (lepton_operator.resources.sources; a unit test holds the
# two lists equal, since neither package may import the other).
SOURCE_ENV_PREFIX = "LEPTON_SOURCE_"
SOURCE_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "HF_TOKEN",
    "HF_ENDPOINT",
    "CA_BUNDLE",
)
CA_BUNDLE_ENV = SOURCE_ENV_PREFIX + "CA_BUNDLE"
SECRET_NAME_ENV = SOURCE_ENV_PREFIX + "SECRET"
# What each scheme cannot do without, once the model names a Secret.
NEEDED_KEYS = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    "https": ("CA_BUNDLE",),
    "hf": ("HF_TOKEN",),
}
PROGRESS_BYTES = 64 * 1024**2
CHUNK = 1024**2
MAX_REDIRECTS = 5
T = TypeVar("T")


class Retryable(Exception):
    """A failure a later attempt may not meet (connection, 5xx, 429)."""


@dataclass(frozen=True)
class Retry:
    """Attempts and back-off: ``base * 2**n`` seconds, with jitter, at most ``cap``."""

    attempts: int = 4
    base: float = 1.0
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def run(self, what: str, attempt: Callable[[], T]) -> T:
        for number in range(1, self.attempts + 1):
            try:
                return attempt()
            except Retryable as error:
                if number == self.attempts:
                    raise LoadError(f"{what}: {error} (gave up after {number} attempts)") from error
                delay = min(self.cap, self.base * 2 ** (number - 1)) * random.uniform(0.5, 1.0)
                log.warning("%s: %s; attempt %d again in %.1f s", what, error, number + 1, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")


def _stream_to(
    uri: str,
    chunks: Iterable[bytes],
    target: Path,
    *,
    declared: int | None,
    max_bytes: int,
    sha256: str | None,
) -> Path:
    """Write ``chunks`` to ``target`` through a temporary name, checking as it goes."""
    if declared is not None and declared > max_bytes:
        raise LoadError(f"{uri} is {declared} bytes, over the limit of {max_bytes}; not read")
    digest = hashlib.sha256()
    partial = target.with_name(target.name + ".partial")
    received = 0
    next_log = PROGRESS_BYTES
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                received += len(chunk)
                if received > max_bytes:
                    raise LoadError(f"{uri} passed the limit of {max_bytes} bytes; not read")
                if declared is not None and received > declared:
                    raise LoadError(
                        f"{uri} sent more than the {declared} bytes it declared; refused"
                    )
                digest.update(chunk)
                out.write(chunk)
                if received >= next_log:
                    log.info("%s: %d MiB so far", uri, received // 1024**2)
                    next_log += PROGRESS_BYTES
        if declared is not None and received != declared:
            raise Retryable(f"{uri} ended after {received} of the {declared} bytes declared")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise LoadError(
                f"sha256 mismatch for {uri}: expected {sha256}, got {digest.hexdigest()}; "
                "nothing was loaded"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("%s: %d bytes, sha256 %s", uri, received, digest.hexdigest())
    return target


def _file_name(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if not name or name in (".", ".."):
        raise LoadError(f"cannot name a file after {path!r}; the URI must end in a file name")
    return name


# ---- https:// -------------------------------------------------------------------------
def source_env(key: str) -> str | None:
    """A value of the model's credentials Secret, as the operator passed it."""
    return os.environ.get(SOURCE_ENV_PREFIX + key) or None


def require_secret_keys(uri: str) -> None:
    """A Secret the model names must hold what its scheme needs. The operator passes every
    key as optional (it may not read Secrets), so a Secret that does not exist arrives
    as no keys at all: said here, before any request, with the Secret's name."""
    secret = os.environ.get(SECRET_NAME_ENV)
    scheme = uri.partition("://")[0]
    if not secret:
        return
    missing = [key for key in NEEDED_KEYS.get(scheme, ()) if not source_env(key)]
    if missing:
        raise LoadError(
            f"{uri}: the credentials Secret {secret!r} does not exist in this namespace or "
            f"holds no {', '.join(missing)}; nothing was downloaded"
        )


def _https_pool(ca_bundle: str | None) -> urllib3.PoolManager:
    """Certificates checked against the system's CAs, or only the user's bundle (PEM)."""
    return urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED",
        ca_cert_data=ca_bundle,
        timeout=urllib3.Timeout(connect=10, read=60),
        retries=False,
    )


def _chunks(response: Any) -> Iterator[bytes]:
    try:
        yield from response.stream(CHUNK, decode_content=False)
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as error:
        raise Retryable(f"the download broke off: {error}") from error


def _checked_chunks(response: Any, uri: str, declared: int | None) -> Iterator[bytes]:
    """The body's chunks, then a look for bytes past the declared length."""
    sock = getattr(response.connection, "sock", None)  # before the body ends and frees it
    yield from _chunks(response)
    if declared is not None and sock is not None and _sent_more(sock):
        raise LoadError(f"{uri} sent more than the {declared} bytes it declared; refused")


def _sent_more(sock: Any, wait: float = 0.5) -> bool:
    """Whether the server kept sending after the body it declared.

    The HTTP client stops at ``Content-Length`` (what lies past it is never written); on
    a kept-alive connection an honest server then sends nothing until asked again, a
    lying one has more bytes on the socket. (Bytes the client's read buffer already took
    in are not seen here, nor anything after a response that closes the connection:
    the client has closed the socket by then. Neither was written.) The pool is used
    once, so the connection is never reused after this look."""
    try:
        sock.settimeout(wait)
        return bool(sock.recv(1))
    except (TimeoutError, OSError):
        return False


def fetch_https(
    uri: str,
    folder: Path,
    *,
    max_bytes: int,
    sha256: str | None,
    ca_bundle: str | None = None,
    retry: Retry | None = None,
) -> Path:
    """``https://host/.../name`` -> ``folder/name``, after every check above."""
    parts = urlsplit(uri)
    if parts.scheme != "https" or not parts.hostname:
        raise LoadError(f"{uri!r} is not an https:// URL")
    target = folder / _file_name(parts.path)
    pool = _https_pool(ca_bundle or source_env("CA_BUNDLE"))

    def attempt() -> Path:
        url = uri
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = pool.request("GET", url, preload_content=False, redirect=False)
            except urllib3.exceptions.SSLError as error:
                raise LoadError(
                    f"{uri}: the server's certificate is not trusted: {error}"
                ) from error
            except urllib3.exceptions.HTTPError as error:
                raise Retryable(f"cannot reach {parts.hostname}: {error}") from error
            try:
                if response.status in (301, 302, 303, 307, 308):
                    location = urljoin(url, response.headers.get("Location", ""))
                    moved = urlsplit(location)
                    if moved.scheme != "https" or moved.netloc != parts.netloc:
                        raise LoadError(
                            f"{uri} redirects to {location}, another host or scheme; refused "
                            "(name the final URL in the spec)"
                        )
                    url = location
                    continue
                if response.status == 429 or response.status >= 500:
                    raise Retryable(f"{url} answered {response.status}")
                if response.status != 200:
                    raise LoadError(f"{url} answered {response.status}; nothing was downloaded")
                length = response.headers.get("Content-Length")
                declared = int(length) if length and length.isdigit() else None
                return _stream_to(
                    uri,
                    _checked_chunks(response, uri, declared),
                    target,
                    declared=declared,
                    max_bytes=max_bytes,
                    sha256=sha256,
                )
            finally:
                response.release_conn()
                pool.clear()
        raise LoadError(f"{uri} redirects more than {MAX_REDIRECTS} times; refused")

    return (retry or Retry()).run(uri, attempt)


# ---- s3:// ----------------------------------------------------------------------------
def _s3_client(location: upload.S3Location) -> Minio:
    """The Secret's keys when the model names one, else the pods' ambient credentials."""
    from minio import Minio

    access, secret = source_env("AWS_ACCESS_KEY_ID"), source_env("AWS_SECRET_ACCESS_KEY")
    if not (access and secret):
        return upload.client(location)
    endpoint = urlsplit(location.endpoint_url or upload.AWS_ENDPOINT)
    return Minio(
        endpoint.netloc,
        access_key=access,
        secret_key=secret,
        session_token=source_env("AWS_SESSION_TOKEN"),
        region=source_env("AWS_DEFAULT_REGION"),
        secure=endpoint.scheme == "https",
    )


def fetch_s3(
    uri: str,
    folder: Path,
    *,
    max_bytes: int,
    sha256: str | None,
    retry: Retry | None = None,
) -> Path:
    """``s3://[[http(s)://]host:port/]bucket/key`` -> ``folder/<key's name>``."""
    try:
        location = upload.parse_s3_uri(uri)
    except ValueError as error:
        raise LoadError(str(error)) from error
    if not location.prefix:
        raise LoadError(f"{uri} names a bucket, not an object; write s3://bucket/key")
    from minio.error import S3Error

    target = folder / _file_name(location.prefix)
    s3 = _s3_client(location)

    def attempt() -> Path:
        try:
            stat = s3.stat_object(location.bucket, location.prefix)
            response = s3.get_object(location.bucket, location.prefix)
        except S3Error as error:
            if error.code in ("SlowDown", "InternalError", "ServiceUnavailable"):
                raise Retryable(f"{uri}: {error.code}") from error
            raise LoadError(f"{uri}: {error.code}: {error.message}") from error
        except urllib3.exceptions.HTTPError as error:
            raise Retryable(f"cannot reach the S3 endpoint: {error}") from error
        except ValueError as error:  # minio: no provider of its chain had credentials
            raise LoadError(
                f"{uri}: no S3 credentials ({error}): name a Secret with AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY in spec.model.credentialsSecret, or give the "
                "build pods' ServiceAccount a cloud identity"
            ) from error
        try:
            return _stream_to(
                uri,
                _chunks(response),
                target,
                declared=stat.size,
                max_bytes=max_bytes,
                sha256=sha256,
            )
        finally:
            response.close()
            response.release_conn()

    return (retry or Retry()).run(uri, attempt)


SCHEMES: dict[str, Callable[..., Path]] = {"https": fetch_https, "s3": fetch_s3}


def target_name(uri: str) -> str:
    """The file name a download of ``uri`` gets (its last path segment)."""
    if uri.startswith("s3://"):
        try:
            return _file_name(upload.parse_s3_uri(uri).prefix)
        except ValueError as error:
            raise LoadError(str(error)) from error
    return _file_name(urlsplit(uri).path)


def fetch(
    uri: str, folder: Path, *, max_bytes: int, sha256: str | None, retry: Retry | None = None
) -> Path:
    """The remote source, downloaded and checked, as a local file under ``folder``."""
    scheme = uri.partition("://")[0]
    if scheme not in SCHEMES:
        raise LoadError(f"{scheme}:// sources are not supported by this builder")
    require_secret_keys(uri)
    return SCHEMES[scheme](uri, folder, max_bytes=max_bytes, sha256=sha256, retry=retry)
