"""Leader election on a coordination.k8s.io Lease: only the holder runs the operator.

kopf's peering pauses lower-priority replicas once they see each other, but two
replicas that start together both act until the next peering round (seen in e2e: both
reconciled after a restart). A Lease taken with optimistic concurrency (the apiserver
refuses a stale resourceVersion) gives one holder at a time; a standby waits, a holder
that cannot renew within the lease exits so its pod restarts as a standby. The same
pattern as client-go's leaderelection, which the Python client lacks for Leases.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("lepton_operator.election")
LEASE_SECONDS = 15
RENEW_SECONDS = 5


def may_hold(
    holder: str | None,
    renewed: datetime.datetime | None,
    lease_seconds: int,
    identity: str,
    now: datetime.datetime,
) -> bool:
    """Whether ``identity`` may take or keep the lease: it is ours, free, or expired."""
    if not holder or holder == identity:
        return True
    return renewed is None or renewed + datetime.timedelta(seconds=lease_seconds) < now


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaseElector:
    def __init__(
        self,
        api: client.CoordinationV1Api,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = LEASE_SECONDS,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds

    def try_hold(self) -> bool:
        """Take or renew the lease once; False when another holder has it or we raced."""
        now = _now()
        try:
            lease: Any = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    acquire_time=now,
                    renew_time=now,
                    lease_duration_seconds=self.lease_seconds,
                    lease_transitions=0,
                ),
            )
            return self._write(lambda: self.api.create_namespaced_lease(self.namespace, body))
        spec = lease.spec
        if not may_hold(
            spec.holder_identity, spec.renew_time, self.lease_seconds, self.identity, now
        ):
            return False
        if spec.holder_identity != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            log.info(
                "taking the lease %s/%s from %r", self.namespace, self.name, spec.holder_identity
            )
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_seconds
        return self._write(
            lambda: self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        )

    @staticmethod
    def _write(call: Callable[[], object]) -> bool:
        try:
            call()
        except ApiException as error:
            if error.status == 409:  # someone else wrote first: not ours this round
                return False
            raise
        return True

    def release(self) -> None:
        """Hand the lease over at once on a clean shutdown."""
        try:
            lease: Any = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            log.warning("could not release the lease: %s", error)

    def wait_until_held(self) -> None:
        """Stand by until the lease is ours. An apiserver that cannot be reached (it may
        be restarting) is waited out like a lease held by another: a standby that exits
        on it only restarts, and the holder's exit on the same outage finds none."""
        while True:
            try:
                if self.try_hold():
                    log.info(
                        "holding the lease %s/%s as %s", self.namespace, self.name, self.identity
                    )
                    return
            except Exception as error:  # ApiException, or the connection refused/reset
                log.warning("lease: %s", error)
            time.sleep(RENEW_SECONDS)

    def keep_renewing(self, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew in the background; call ``on_lost`` once the lease could not be kept."""

        def loop() -> None:
            last_held = time.monotonic()
            while True:
                time.sleep(RENEW_SECONDS)
                try:
                    if self.try_hold():
                        last_held = time.monotonic()
                        continue
                    log.error(
                        "another replica holds the lease %s/%s; stopping", self.namespace, self.name
                    )
                    on_lost()
                    return
                except Exception as error:  # the apiserver may be restarting: grace
                    log.warning("lease renewal failed: %s", error)
                if time.monotonic() - last_held > self.lease_seconds:
                    log.error("lost the lease %s/%s; stopping", self.namespace, self.name)
                    on_lost()
                    return

        thread = threading.Thread(target=loop, name="lease", daemon=True)
        thread.start()
        return thread


def identity() -> str:
    return os.environ.get("POD_NAME") or f"{os.uname().nodename}-{os.getpid()}"
