"""The Kubernetes adapter: watch the operator's EndpointSlices, signal demand.

aiohttp against the apiserver with the pod's service-account token: the activator
needs two things of the API, so a client library's weight buys nothing. Its
ServiceAccount may list and watch EndpointSlices and get and patch LeptonModels;
nothing else (the chart's ClusterRole).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

LOG = logging.getLogger(__name__)
ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
MODELS = "/apis/lepton.ai/v1alpha1/namespaces/{namespace}/leptonmodels/{name}"
# Which EndpointSlices to watch: those of the operator's Services (the EndpointSlice
# controller copies a Service's labels onto its slices) and the operator's own.
SELECTOR = "app.kubernetes.io/managed-by=lepton-operator"
DEMAND_ANNOTATION = "lepton.ai/demand-at"
WAIT_ANNOTATION = "lepton.ai/activator-wait"

SliceEvent = Callable[[str, dict[str, Any]], None]


class ModelGone(Exception):
    """The LeptonModel no longer exists (HTTP 404)."""


class Conflict(Exception):
    """The LeptonModel changed since it was read (HTTP 409 on a resourceVersion)."""


class KubeClient:
    """In-cluster by default; ``base_url`` and no token for a test's apiserver."""

    def __init__(self, base_url: str | None = None, token_file: Path | None = None) -> None:
        if base_url is None:
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            base_url = f"https://{host}:{port}"
            token_file = ACCOUNT / "token"
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        if self.token_file is None:
            return {}
        # Re-read each time: projected tokens are rotated by the kubelet.
        return {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            context: ssl.SSLContext | bool = False
            if self.base_url.startswith("https://"):
                context = ssl.create_default_context(cafile=str(ACCOUNT / "ca.crt"))
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def patch_annotations(
        self,
        namespace: str,
        name: str,
        values: dict[str, str],
        resource_version: str | None = None,
    ) -> None:
        """Merge-patch annotations of a LeptonModel (metadata only: never its spec);
        with ``resource_version``, only if the object is still at it (else
        ``Conflict``)."""
        url = self.base_url + MODELS.format(namespace=namespace, name=name)
        metadata: dict[str, Any] = {"annotations": values}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        async with self.session().patch(
            url,
            data=json.dumps({"metadata": metadata}),
            headers={**self._headers(), "Content-Type": "application/merge-patch+json"},
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response:
            if response.status == 404:
                raise ModelGone(f"{namespace}/{name}")
            if response.status == 409:
                raise Conflict(f"{namespace}/{name}")
            if response.status >= 300:
                text = await response.text()
                raise RuntimeError(f"patch {namespace}/{name}: HTTP {response.status}: {text}")

    async def model_annotations(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """A LeptonModel's annotations and resourceVersion (``ModelGone`` if none)."""
        url = self.base_url + MODELS.format(namespace=namespace, name=name)
        async with self.session().get(
            url, headers=self._headers(), timeout=aiohttp.ClientTimeout(total=10)
        ) as response:
            if response.status == 404:
                raise ModelGone(f"{namespace}/{name}")
            response.raise_for_status()
            metadata = (await response.json()).get("metadata") or {}
        return dict(metadata.get("annotations") or {}), str(metadata.get("resourceVersion"))

    async def model_exists(self, namespace: str, name: str) -> bool:
        url = self.base_url + MODELS.format(namespace=namespace, name=name)
        async with self.session().get(
            url, headers=self._headers(), timeout=aiohttp.ClientTimeout(total=10)
        ) as response:
            if response.status == 404:
                return False
            response.raise_for_status()
            return True

    async def watch_slices(
        self,
        replace: Callable[[list[dict[str, Any]]], None],
        event: SliceEvent,
        synced: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """List, then watch from the listing's resourceVersion; list again when the
        watch ends or expires (410). Runs until cancelled."""
        while True:
            try:
                version = await self._list(replace)
                if synced is not None:
                    await synced()
                await self._watch(version, event)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the apiserver restarting, a network blip
                LOG.warning("EndpointSlice watch failed (%s); listing again in 1 s", error)
                await asyncio.sleep(1.0)

    async def _list(self, replace: Callable[[list[dict[str, Any]]], None]) -> str:
        async with self.session().get(
            self.base_url + SLICES,
            params={"labelSelector": SELECTOR},
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            response.raise_for_status()
            listing = await response.json()
        replace(list(listing.get("items") or []))
        return str(listing["metadata"]["resourceVersion"])

    async def _watch(self, version: str, event: SliceEvent) -> None:
        params = {
            "labelSelector": SELECTOR,
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        async with self.session().get(
            self.base_url + SLICES,
            params=params,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=330),
        ) as response:
            response.raise_for_status()
            async for line in response.content:
                if not line.strip():
                    continue
                item = json.loads(line)
                kind, obj = item.get("type"), item.get("object") or {}
                if kind == "ERROR":
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    event(str(kind), obj)
