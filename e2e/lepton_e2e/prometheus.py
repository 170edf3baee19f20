"""A real Prometheus 3 for the tests: the binary ``binaries`` builds, run as a process.

On the harness's cluster it discovers Triton's metrics endpoints exactly as a user's
Prometheus Operator would from the operator's ServiceMonitor: Kubernetes service
discovery of EndpointSlices, keeping Services labelled ``lepton.ai/component=triton``
and their port named ``metrics``, and giving each series the ServiceMonitor's target
labels ``namespace``, ``pod`` and ``service`` (the operator's PromQL selects by them).
For tests without a cluster it scrapes static targets with the labels they are given.

One server keeps its data folder and address across ``stop()`` and ``start()``, so a
test can kill Prometheus mid-run and bring the same one back with its history.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lepton_e2e import binaries

TRITON_COMPONENT = "triton"  # lepton.ai/component on the operator's Triton Services
METRICS_PORT_NAME = "metrics"


@dataclass(frozen=True)
class KubeAccess:
    """What Prometheus needs to watch an apiserver: its URL, a token and its CA."""

    server: str
    token_file: Path
    ca_file: Path | None  # None: the kubeconfig skips TLS verification

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, secrets_dir: Path) -> KubeAccess:
        """The current context's server and bearer token, written as files under
        ``secrets_dir`` so that the Prometheus config never holds a credential."""
        document = yaml.safe_load(kubeconfig.read_text())
        context = _named(document, "contexts", document["current-context"])["context"]
        cluster = _named(document, "clusters", context["cluster"])["cluster"]
        user = _named(document, "users", context["user"])["user"]
        if "token" not in user:
            raise ValueError(f"{kubeconfig}: Prometheus here needs a bearer-token user")
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        token_file = secrets_dir / "token"
        token_file.write_text(user["token"])
        token_file.chmod(0o600)
        ca_file: Path | None = None
        if "certificate-authority-data" in cluster:
            ca_file = secrets_dir / "ca.crt"
            ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        elif "certificate-authority" in cluster:
            ca_file = (kubeconfig.parent / cluster["certificate-authority"]).resolve()
        return cls(server=cluster["server"], token_file=token_file, ca_file=ca_file)


def _named(document: Mapping[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in document.get(section) or []:
        if entry["name"] == name:
            found: dict[str, Any] = entry
            return found
    raise KeyError(f"kubeconfig has no {section} entry named {name!r}")


def triton_endpoints_job(access: KubeAccess, job: str = "triton") -> dict[str, Any]:
    """The scrape job a ServiceMonitor for the operator's Triton Services compiles to."""
    tls: dict[str, Any] = (
        {"ca_file": str(access.ca_file)} if access.ca_file else {"insecure_skip_verify": True}
    )
    return {
        "job_name": job,
        "kubernetes_sd_configs": [
            {
                "role": "endpointslice",
                "api_server": access.server,
                "authorization": {"credentials_file": str(access.token_file)},
                "tls_config": tls,
            }
        ],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_service_label_lepton_ai_component"],
                "regex": TRITON_COMPONENT,
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
                "regex": METRICS_PORT_NAME,
                "action": "keep",
            },
            *(
                {"source_labels": [f"__meta_kubernetes_{source}"], "target_label": target}
                for source, target in (
                    ("namespace", "namespace"),
                    ("pod_name", "pod"),
                    ("service_name", "service"),
                )
            ),
        ],
    }


def static_job(job: str, targets: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """A job scraping fixed ``host:port`` addresses, each with its own target labels
    (e.g. ``namespace``/``pod``/``service``, standing in for what discovery would add)."""
    return {
        "job_name": job,
        "static_configs": [
            {"targets": [address], "labels": dict(labels)} for address, labels in targets.items()
        ],
    }


class PrometheusServer:
    """One Prometheus process: its config, data and log under ``home``, on ``listen``.

    ``scrape_configs`` are Prometheus ``scrape_configs`` entries (see
    ``triton_endpoints_job`` and ``static_job``). Each job scrapes every
    ``scrape_interval`` with a timeout of the same length (Prometheus refuses a timeout
    longer than the interval, and its 10 s default is longer than a test's 2 s).
    """

    def __init__(
        self,
        home: Path,
        listen: str,
        scrape_configs: Sequence[Mapping[str, Any]],
        *,
        scrape_interval: str = "2s",
        enable_lifecycle: bool = False,
        binary: Path | None = None,
    ) -> None:
        self.home = home
        self.listen = listen
        self.scrape_configs = [dict(job) for job in scrape_configs]
        self.scrape_interval = scrape_interval
        self.enable_lifecycle = enable_lifecycle
        self.binary = binary or binaries.ensure_built() / "prometheus"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_file(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def log_file(self) -> Path:
        return self.home / "prometheus.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def write_config(self) -> None:
        interval = {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval}
        config = {
            "global": {**interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": self.scrape_configs,
        }
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def argv(self) -> list[str]:
        argv = [
            str(self.binary),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.listen}",
            "--storage.tsdb.retention.time=1d",
        ]
        return argv + (["--web.enable-lifecycle"] if self.enable_lifecycle else [])

    def start(self) -> None:
        """Start the process on the same data and address as before (no-op if running)."""
        if self.running:
            return
        self._refuse_a_taken_address()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _refuse_a_taken_address(self) -> None:
        """Fail if something already listens where this server would: a Prometheus left
        by an interrupted session would otherwise answer ``wait_ready`` in the moment
        before this one exits on "address already in use", and the tests would read a
        stranger's data until it stopped (seen once: a scale-up test starved of rates)."""
        host, _, port = self.listen.rpartition(":")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((host, int(port))) == 0:
                raise RuntimeError(
                    f"{self.listen} is taken, by a Prometheus of an interrupted session? "
                    f"(`pgrep -af 'prometheus --config'`); stop it and run again"
                )

    def stop(self, kill: bool = False) -> None:
        """Stop the process: SIGTERM and a clean shutdown, or SIGKILL with ``kill`` (a
        crash; the next ``start`` replays the write-ahead log as after a real one)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def wait_ready(self, timeout: float = 60) -> None:
        """Poll ``/-/ready`` until Prometheus serves queries (its WAL replayed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"prometheus is not running; log: {self._log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready in {timeout:.0f} s; log: {self._log_tail()}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result (``data.result``); raises on an API error."""
        return list(self._api("query", {"query": promql}))

    def query_range(
        self, promql: str, start: float, end: float, step_s: float = 1.0
    ) -> list[tuple[float, float]]:
        """(time, value) of a range query's first series, [] when there is none."""
        data = self._api(
            "query_range",
            {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s}"},
        )
        series = data.get("result") or []
        return [(float(t), float(v)) for t, v in series[0]["values"]] if series else []

    def targets(self, state: str = "active") -> list[dict[str, Any]]:
        """Scrape targets: ``active`` ones (``labels``, ``health``, ``lastError``), or
        ``dropped`` ones (``discoveredLabels``: found, then dropped by relabelling)."""
        return list(self._api("targets", {"state": state})[f"{state}Targets"])

    def _api(self, endpoint: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{url}: HTTP {error.code}: {error.read().decode()}") from error
        if body.get("status") != "success":
            raise RuntimeError(f"{url}: {body}")
        data: dict[str, Any] = body["data"]
        return data["result"] if endpoint == "query" else data

    def _log_tail(self) -> str:
        return self.log_file.read_text()[-3000:] if self.log_file.exists() else "(none)"

    def reset(self) -> None:
        """Stop and forget everything: config, data and log."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for tests that run their own Prometheus)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


__all__ = [
    "KubeAccess",
    "PrometheusServer",
    "free_port",
    "static_job",
    "triton_endpoints_job",
]
