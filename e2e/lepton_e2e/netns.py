"""A real address for each process-backed pod: one network namespace per pod.

Loopback addresses cannot be pod IPs (EndpointSlice validation rejects them, so
Services would get no endpoints). A bridge on the host and a veth pair per pod give
each pod an address of the project's own that the host, Prometheus and clients reach
on the pod's usual ports. Needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
from dataclasses import dataclass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Network:
    """The bridge all pod namespaces of one cluster hang off."""

    bridge: str
    cidr: str  # e.g. 10.244.0.0/16; the bridge takes the first address

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    def pod_address(self, index: int) -> str:
        """Pod addresses start at .1.1, so the gateway's /24 stays free for the host."""
        address = self.network.network_address + 257 + index
        if address not in self.network or address == self.network.broadcast_address:
            raise ValueError(f"pod index {index} is outside {self.cidr}")
        return str(address)

    def up(self) -> None:
        if _ip("link", "show", self.bridge, check=False).returncode != 0:
            _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "replace", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def down(self) -> None:
        _ip("link", "del", self.bridge, check=False)


@dataclass(frozen=True)
class PodNamespace:
    name: str  # the netns name; also the prefix of its host-side veth
    host_veth: str
    address: str

    def create(self, network: Network) -> None:
        peer = self.host_veth + "p"
        self.delete()
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", self.name)
        _ip("link", "set", self.host_veth, "master", network.bridge, "up")
        _ip("-n", self.name, "link", "set", peer, "name", "eth0")
        _ip(
            "-n",
            self.name,
            "addr",
            "add",
            f"{self.address}/{network.network.prefixlen}",
            "dev",
            "eth0",
        )
        _ip("-n", self.name, "link", "set", "eth0", "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        _ip("-n", self.name, "route", "add", "default", "via", network.gateway)

    def delete(self) -> None:
        _ip("link", "del", self.host_veth, check=False)
        _ip("netns", "del", self.name, check=False)

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


def kill_processes_in(name: str) -> None:
    """SIGKILL whatever still runs in a pod namespace (the runner may be gone already)."""
    for pid in _ip("netns", "pids", name, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def namespaces_with_prefix(prefix: str) -> list[str]:
    listing = _ip("netns", "list", check=False).stdout.splitlines()
    return [line.split()[0] for line in listing if line.startswith(prefix)]
