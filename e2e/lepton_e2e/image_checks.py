"""The built images, run the way the cluster runs them, before anything depends on them.

``python -m lepton_e2e check-image {operator|builder} ARCHIVE``; ``hack/images.sh`` runs
it on each image right after building it. Each container runs from its image as the e2e
harness runs any pod from an image: ``imagefs`` unpacks the OCI archive and ``podexec``
enters its root (read-only where the pod says so) as the pod's user, with the image's
environment and working directory and the pod's volumes on host folders.

The operator's: the chart's pod (``templates/deployment.yaml``: uid 65532, a read-only
root, an empty /tmp, the configuration at /etc/lepton). It fails unless the image's user
is 65532 and its entrypoint ``lepton-operator``, ``--help`` runs (the whole operator
imports from the image alone), ``getpass.getuser()`` works as uid 65532 (kopf names
itself with it), a bad configuration exits 2, the chart's default configuration passes
validation (the process then stops for want of a cluster), and no torch, onnxruntime,
builder package, pip or compiler is in the image.

The builder's: the operator's own build Job for the digits model (``resources.build.job``:
its request, args, env, security context and volumes, with the e2e suite's one-second
serving-search levels), uid 1000, the model volume, an empty /tmp and the source claim
read-only. There is no cluster: the builder writes its report ConfigMap only inside one,
so the report also goes to ``--report-file``. It proves that the image alone (its
torch, onnxruntime, onnx, tritonserver and the builder) builds, profiles and judges
every CPU variant of a real model, runs the serving search on a real Triton and writes
the Triton repository. The digits model is trained on the host: the image has no
scikit-learn, and the model is the Job's input, not part of the image.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from lepton_e2e import imagefs, models, podspec
from lepton_e2e.podrunner import image_exec_spec, podexec_argv, podexec_env, write_exec_spec
from lepton_operator.api.spec import LeptonModelSpec
from lepton_operator.report import BuildReport, parse_report
from lepton_operator.resources import build
from lepton_operator.resources.repository import MODELS_MOUNT

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "check"
MODEL = "digits"
BUILD = "imagecheck"
OPTIMIZATION = {
    "batchSizes": [1, 16],
    "calibrationUri": "pvc://models/digits-calibration.npz",
    "accuracy": {"metric": "top1-agreement", "tolerance": 0.98},
    "servingSearch": True,  # on the image's own tritonserver
}
# Shorter than a real build's profile (the builder's defaults), as the e2e suite's are.
FAST_PROFILE = ["--profile-seconds", "0.3", "--min-iterations", "5"]
REPORT = "/tmp/report.json"
EXACT = ("fp32", "onnx", "torchscript")  # lossless conversions: top-1 agreement 1.0


class CheckFailed(AssertionError):
    pass


def _chart_config() -> dict[str, Any]:
    """The chart's default operator configuration (``config`` in its values.yaml)."""
    values = yaml.safe_load((REPO / "charts" / "lepton-operator" / "values.yaml").read_text())
    config: dict[str, Any] = values["config"]
    return config


def build_pod(image: str) -> dict[str, Any]:
    """The pod of the operator's build Job for the digits model on the harness's CPU
    pool, with the report also written to a file."""
    manifest = models.leptonmodel(
        MODEL, models.digits_source(f"pvc://models/{MODEL}.pt"), OPTIMIZATION
    )
    spec = LeptonModelSpec.model_validate(manifest["spec"])
    assert spec.pools, "the harness's model names its CPU pool"
    job = build.job(
        MODEL,
        NAMESPACE,
        spec,
        spec.pools[0],
        BUILD,
        image,
        search_seconds_per_level=1,
        serving_backends=list(_chart_config()["images"]["tritonNativeBackends"]),
    )
    template = job["spec"]["template"]
    container = template["spec"]["containers"][0]
    container["args"] += ["--report-file", REPORT, *FAST_PROFILE]
    metadata = {**template["metadata"], "name": f"{job['metadata']['name']}-check"}
    return {**template, "metadata": {**metadata, "namespace": NAMESPACE, "uid": "check"}}


def _volumes(pod: dict[str, Any], work: Path) -> dict[str, Path]:
    """The pod's volumes on host folders, each claim a folder of its own (as the
    harness's PVCs are), the writable ones as an emptyDir or fsGroup leaves them."""
    volumes = podspec.volume_sources(pod, work / "pod", work / "pvcs")
    for volume in pod["spec"]["volumes"]:
        path = volumes[volume["name"]]
        path.mkdir(parents=True, exist_ok=True)
        claim = volume.get("persistentVolumeClaim") or {}
        if not claim.get("readOnly"):
            path.chmod(0o777)
    return volumes


def _run_container(
    pod: dict[str, Any], image: imagefs.UnpackedImage, volumes: dict[str, Path], work: Path
) -> tuple[int, str]:
    """Run the pod's one container from ``image`` to its end: (exit code, output)."""
    container = pod["spec"]["containers"][0]
    facts = podspec.PodFacts.from_pod(pod, pod_ip="127.0.0.1", host_ip="127.0.0.1")
    spec = image_exec_spec(pod["spec"], container, facts, {}, image, {})
    work.mkdir(parents=True, exist_ok=True)
    spec_path = write_exec_spec(spec, container, volumes, work)
    log = work / f"{container['name']}.log"
    with log.open("wb") as out:
        code = subprocess.run(
            podexec_argv(spec_path), stdout=out, stderr=subprocess.STDOUT, env=podexec_env()
        ).returncode
    return code, log.read_text(errors="replace")


def _judge(report: BuildReport, repository: Path) -> list[str]:
    """One line per variant; raises CheckFailed on what the image got wrong."""
    rows = {row.name: row for row in report.variants}
    lines = []
    for name, row in rows.items():
        p95 = "/".join(f"{p.p95_ms:.2f}" for p in row.profiles) or "-"
        lines.append(f"{name:24} {row.status:9} p95 ms {p95:14} {row.reason or ''}"[:150])
        if row.status == "failed" and not row.reason:
            raise CheckFailed(f"{name} failed without a reason")
    for name in EXACT:
        exact = rows.get(name)
        if exact is None or exact.status != "accepted" or exact.accuracy != 1.0:
            raise CheckFailed(f"{name}: {exact}")
    configs = sorted(repository.glob(f"*/{MODEL}/config.pbtxt"))
    if not configs:
        raise CheckFailed(f"no Triton model configuration under {repository}")
    lines.append(f"Triton models written for {len(configs)} variants")
    searched = [(n, r.serving_search) for n, r in rows.items() if r.serving_search]
    ran = [(n, s) for n, s in searched if not s.skipped]
    if not ran:
        raise CheckFailed(f"no serving search ran on the image's Triton: {searched}")
    lines += [f"serving search of {n}: {s.summary}"[:150] for n, s in ran]
    return lines


def check_builder(archive: Path, work: Path) -> list[str]:
    """The builder image's check in ``work``: the lines to print, or CheckFailed."""
    started = time.monotonic()
    image = imagefs.unpack(archive, work / "images")
    unpacked_s = time.monotonic() - started
    if image.config.argv(None, None) != ["lepton-build"]:
        raise CheckFailed(
            f"the entrypoint is {image.config.argv(None, None)}, the build Job passes only args"
        )
    pod = build_pod(f"lepton-builder-check:{archive.stat().st_mtime_ns}")
    volumes = _volumes(pod, work)
    digits = models.train_digits(work / "pvcs" / NAMESPACE / "models")
    code, log = _run_container(pod, image, volumes, work)
    if code != 0:
        raise CheckFailed(f"lepton-build exited {code}: {log[-3000:]}")
    report = parse_report((volumes["tmp"] / Path(REPORT).name).read_text())
    repository = volumes["models"] / Path(report.repository).relative_to(MODELS_MOUNT)
    return [
        f"unpacked in {unpacked_s:.0f} s; digits trained (test accuracy "
        f"{digits.test_accuracy:.3f}); built in {time.monotonic() - started - unpacked_s:.0f} s",
        *_judge(report, repository),
    ]


OPERATOR_UID = 65532  # the chart's runAsUser
# What the operator's image must not carry: the builder's weight, a way to install more.
NOT_IN_OPERATOR = ("torch", "onnxruntime", "lepton_builder", "pip", "setuptools")
COMPILERS = ("gcc", "cc", "c++", "g++", "clang")


def operator_pod(args: list[str], command: list[str] | None = None) -> dict[str, Any]:
    """The chart's operator pod as far as running the image goes (its container's
    securityContext, LEPTON_CONFIG and volumes: templates/deployment.yaml)."""
    container: dict[str, Any] = {
        "name": "operator",
        "args": args,
        "env": [{"name": "LEPTON_CONFIG", "value": "/etc/lepton/config.yaml"}],
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/lepton", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if command is not None:
        container["command"] = command
    return {
        "metadata": {"name": "lepton-operator-check", "namespace": NAMESPACE, "uid": "check"},
        "spec": {
            "securityContext": {"runAsNonRoot": True},
            "containers": [container],
            "volumes": [{"name": "config", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        },
    }


def _forbidden(rootfs: Path) -> list[str]:
    venv = rootfs / "opt" / "venv"
    found = [str(p) for p in venv.rglob("*") if p.is_dir() and p.name in NOT_IN_OPERATOR]
    found += [
        str(p)
        for p in (rootfs / "usr" / "bin").iterdir()
        if any(p.name.startswith(c) for c in COMPILERS)
    ]
    return found + [str(p) for p in (rootfs / "usr" / "lib" / "gcc",) if p.exists()]


def _megabytes(path: Path) -> int:
    files = (p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.stat().st_size for p in files) // 2**20


def _sizes(rootfs: Path) -> list[str]:
    (site,) = (rootfs / "opt" / "venv" / "lib").glob("python3*/site-packages")
    pyc = sum(_megabytes(p) for p in site.rglob("__pycache__"))
    largest = sorted(((_megabytes(p), p.name) for p in site.iterdir()), reverse=True)[:12]
    return [
        f"unpacked: {_megabytes(rootfs)} MB, of which /opt/venv "
        f"{_megabytes(rootfs / 'opt' / 'venv')} MB (.pyc {pyc} MB); largest in site-packages:",
        *(f"  {size:5} {name}" for size, name in largest),
    ]


def check_operator(archive: Path, work: Path) -> list[str]:
    """The operator image's check in ``work``: the lines to print, or CheckFailed."""
    image = imagefs.unpack(archive, work / "images")
    if image.config.uid != OPERATOR_UID:
        raise CheckFailed(f"runs as uid {image.config.uid}, the chart's pod runs {OPERATOR_UID}")
    if image.config.argv(None, None) != ["lepton-operator"]:
        raise CheckFailed(
            f"the entrypoint is {image.config.argv(None, None)}, the chart gives none"
        )
    if found := _forbidden(image.rootfs):
        raise CheckFailed(f"carries what it must not: {found}")

    def run(
        name: str, config: str | None, args: list[str], command: list[str] | None = None
    ) -> tuple[int, str]:
        pod = operator_pod(args, command)
        folder = work / name
        volumes = _volumes(pod, folder)
        if config is not None:
            (volumes["config"] / "config.yaml").write_text(config)
        return _run_container(pod, image, volumes, folder)

    code, out = run("help", None, ["--help"])
    if code != 0 or "--standalone" not in out:
        raise CheckFailed(f"lepton-operator --help did not run (exit {code}): {out[-2000:]}")
    getuser = ["python3", "-c", "import getpass; print(getpass.getuser())"]
    code, out = run("getuser", None, [], command=getuser)
    if code != 0:
        raise CheckFailed(f"getpass.getuser() fails as uid {OPERATOR_UID}: {out[-2000:]}")
    code, out = run("read-only", None, [], command=["python3", "-c", "open('/probe', 'w')"])
    if code == 0 or "Read-only file system" not in out:
        raise CheckFailed(f"the root was writable (exit {code}): {out[-2000:]}")
    code, out = run("bad-config", "images: {}\n", ["--log-format", "plain"])
    if code != 2:
        raise CheckFailed(f"a bad configuration exited {code}, not 2: {out[-2000:]}")
    code, out = run("chart-config", yaml.safe_dump(_chart_config()), ["--log-format", "plain"])
    # Past validation it looks for a cluster: none here, so the kubernetes client's error.
    if code in (0, 2) or "kube" not in out or "config" not in out:
        raise CheckFailed(
            f"the chart's configuration did not get past validation (exit {code}): {out[-2000:]}"
        )
    return _sizes(image.rootfs)


CHECKS = {"operator": check_operator, "builder": check_builder}
PASSED = {
    "operator": "uid 65532, entrypoint lepton-operator, read-only root, no torch, "
    "onnxruntime, builder, compiler or pip, the chart's configuration valid, a bad one exits 2",
    "builder": "the operator's build Job from the image, uid 1000, read-only root: digits "
    "built, profiled, judged and searched on the image's Triton, the repository written",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_e2e check-image")
    parser.add_argument("image", choices=sorted(CHECKS))
    parser.add_argument("archive", type=Path, help="the OCI archive `make images` wrote")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"lepton-{args.image}-check.") as work:
        try:
            lines = CHECKS[args.image](args.archive, Path(work))
        except CheckFailed as error:
            print(f"{args.image} image check FAILED: {error}")
            return 1
    print(f"== {args.image} image check passed: {PASSED[args.image]}")
    for line in lines:
        print(f"   {line}")
    return 0
