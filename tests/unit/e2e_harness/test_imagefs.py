"""Running pods from their image: the config a runtime reads, who the container runs as,
and when the operator's image must be built again (no cluster, no image needed)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lepton_e2e import imagefs, podexec, podspec, shipped_images
from lepton_e2e.images import load_image_table

OPERATOR_CONFIG = {
    "Entrypoint": ["lepton-operator"],
    "Env": ["PATH=/opt/venv/bin:/usr/bin", "HOME=/tmp", "EMPTY="],
    "User": "65532:65532",
    "WorkingDir": "/tmp",
}


def test_the_image_config_gives_entrypoint_env_user_and_working_directory() -> None:
    config = imagefs.ImageConfig.parse(OPERATOR_CONFIG)
    assert config.entrypoint == ["lepton-operator"]
    assert config.cmd == []
    assert config.env == {"PATH": "/opt/venv/bin:/usr/bin", "HOME": "/tmp", "EMPTY": ""}
    assert (config.uid, config.gid, config.working_dir) == (65532, 65532, "/tmp")


def test_a_user_without_a_group_is_its_own_group_and_none_is_root() -> None:
    assert imagefs.ImageConfig.parse({"User": "1000"}).gid == 1000
    config = imagefs.ImageConfig.parse({})
    assert (config.uid, config.gid, config.working_dir) == (0, 0, "/")


@pytest.mark.parametrize("user", ["nobody", "1000:users", "app:1000"])
def test_a_user_by_name_is_refused_with_the_name(user: str) -> None:
    with pytest.raises(imagefs.ImageError, match=user):
        imagefs.ImageConfig.parse({"User": user})


def test_command_replaces_the_entrypoint_and_cmd_args_replace_only_the_cmd() -> None:
    config = imagefs.ImageConfig.parse({"Entrypoint": ["tini", "--"], "Cmd": ["serve"]})
    assert config.argv(None, None) == ["tini", "--", "serve"]
    assert config.argv(None, ["--port", "1"]) == ["tini", "--", "--port", "1"]
    assert config.argv(["sh", "-c"], None) == ["sh", "-c"]
    assert config.argv(["sh", "-c"], ["true"]) == ["sh", "-c", "true"]


def _layout(root: Path, config: dict[str, object]) -> Path:
    """A minimal OCI layout: index -> manifest -> config, as skopeo writes it."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(document: dict[str, object]) -> dict[str, str]:
        data = json.dumps(document).encode()
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}"}

    manifest = put({"config": put({"architecture": "amd64", "config": config}), "layers": []})
    (root / "index.json").write_text(json.dumps({"manifests": [manifest]}))
    return root


def test_the_layout_config_is_read_through_index_and_manifest(tmp_path: Path) -> None:
    layout = _layout(tmp_path / "oci", OPERATOR_CONFIG)
    assert imagefs.read_layout_config(layout) == OPERATOR_CONFIG


def test_a_missing_archive_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(imagefs.ImageError, match="make e2e-images"):
        imagefs.unpack(tmp_path / "lepton-operator.oci.tar", tmp_path / "images")


def test_a_rewritten_archive_gets_a_new_key(tmp_path: Path) -> None:
    archive = tmp_path / "a.oci.tar"
    archive.write_bytes(b"one")
    first = imagefs.archive_key(archive)
    assert imagefs.archive_key(archive) == first
    archive.write_bytes(b"other")
    assert imagefs.archive_key(archive) != first


POD_CONTEXT = {"runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 2000, "runAsNonRoot": True}


def test_the_pods_security_context_overrides_the_images_user() -> None:
    user = podspec.run_as({"securityContext": POD_CONTEXT}, {"name": "op"}, 0, 0)
    assert user == podspec.RunAs(uid=65532, gid=65532, groups=(2000,))


def test_the_containers_security_context_overrides_the_pods() -> None:
    container = {"name": "op", "securityContext": {"runAsUser": 1001}}
    pod = {"securityContext": {**POD_CONTEXT, "supplementalGroups": [5, 2000]}}
    user = podspec.run_as(pod, container, 0, 0)
    assert user == podspec.RunAs(uid=1001, gid=65532, groups=(5, 2000))


def test_without_a_security_context_the_image_user_stands() -> None:
    assert podspec.run_as({}, {"name": "c"}, 1000, 1000) == podspec.RunAs(1000, 1000, ())


def test_run_as_non_root_refuses_an_image_that_runs_as_root() -> None:
    with pytest.raises(ValueError, match="runAsNonRoot"):
        podspec.run_as({"securityContext": {"runAsNonRoot": True}}, {"name": "c"}, 0, 0)


@pytest.mark.parametrize("shipped", [shipped_images.OPERATOR, shipped_images.ACTIVATOR])
def test_the_harness_runs_the_chart_s_pods_from_their_archives(
    shipped: shipped_images.ShippedImage,
) -> None:
    """The chart's operator and activator pods run from the images the harness builds,
    not the checkout's virtualenv."""
    image = load_image_table().lookup(f"ghcr.io/lepton-ai/lepton-{shipped.name}:0.1.0")
    assert image is not None
    assert image.archive() == shipped.archive
    assert f"runtimes/{shipped.name}/Dockerfile" in shipped.inputs


def _repo_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in ("pyproject.toml", "README.md", "requirements/constraints.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped_images.REPO_ROOT / name, root / name)
    (root / "operator" / "pkg").mkdir(parents=True)
    (root / "operator" / "pkg" / "code.py").write_text("A = 1\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_the_operator_image_is_rebuilt_when_its_sources_change(tmp_path: Path) -> None:
    root = _repo_copy(tmp_path)
    before = shipped_images.inputs_digest(shipped_images.OPERATOR, root)
    (root / "operator" / "pkg" / "__pycache__").mkdir()
    (root / "operator" / "pkg" / "__pycache__" / "code.cpython-311.pyc").write_bytes(b"x")
    (root / "docs.md").write_text("not in the image\n")
    assert (
        shipped_images.inputs_digest(shipped_images.OPERATOR, root) == before
    )  # caches and other files: no
    (root / "operator" / "pkg" / "code.py").write_text("A = 2\n")
    assert shipped_images.inputs_digest(shipped_images.OPERATOR, root) != before


def test_mount_targets_follow_the_images_links_within_its_root(tmp_path: Path) -> None:
    """Debian's /var/run is a link to the absolute /run: a volume at
    /var/run/secrets/... must land in the image's /run, never the host's."""
    root = tmp_path / "rootfs"
    (root / "var").mkdir(parents=True)
    (root / "run").mkdir()
    (root / "var" / "run").symlink_to("/run")
    (root / "etc").mkdir()
    (root / "etc" / "alt").symlink_to("../var/run")
    target = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert podexec.in_root(root, target) == root / "run/secrets/kubernetes.io/serviceaccount"
    assert podexec.in_root(root, "/etc/alt/x") == root / "run" / "x"
    assert podexec.in_root(root, "/../../etc/../../tmp") == root / "tmp"


def test_a_link_loop_in_the_image_is_an_error_not_a_hang(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "a").symlink_to("/b")
    (root / "b").symlink_to("/a")
    with pytest.raises(OSError, match="too many"):
        podexec.in_root(root, "/a/x")


def test_unpacks_of_removed_checkouts_are_forgotten_and_no_others(tmp_path: Path) -> None:
    """The unpacked images outlive clusters in the cache: a clean clone's are removed
    once its archive is gone; another checkout's, whose cluster may be running, stay."""
    name = tmp_path / "images" / "lepton-operator"
    kept_archive = tmp_path / "kept.oci.tar"
    kept_archive.write_bytes(b"")
    for checkout, archive in (("kept", kept_archive), ("gone", tmp_path / "gone.oci.tar")):
        (name / checkout / "0123").mkdir(parents=True)
        (name / checkout / imagefs.ARCHIVE_RECORD).write_text(str(archive))
    (name / "unrecorded" / "0123").mkdir(parents=True)  # mid-unpack: left alone
    imagefs._forget_removed_checkouts(name)
    assert sorted(p.name for p in name.iterdir()) == ["kept", "unrecorded"]
