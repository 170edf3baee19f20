"""The table that maps container images to local entrypoints.

No container engine runs here, so a pod that stands for the product's real work
(a builder Job, a Triton replica, the operator itself) runs as a local process from
the very command, args and env the pod spec names. This table says which images
get that treatment and what their ENTRYPOINT and PATH are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from lepton_e2e import podspec

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGES_FILE = REPO_ROOT / "e2e" / "cluster" / "images.yaml"
_TAG_OR_DIGEST = re.compile(r"(@sha256:[0-9a-f]+|:[^:/]+)$")
# A KWOK stage selector key (a jq query): the repositories of a pod's container images,
# as ``repository`` computes them.
KWOK_IMAGE_REPOSITORIES = '.spec.containers.[].image | sub("(@sha256:[0-9a-f]+|:[^:/]+)$"; "")'


def repository(image: str) -> str:
    """``repo/name:tag`` or ``repo/name@sha256:...`` -> ``repo/name``."""
    return _TAG_OR_DIGEST.sub("", image)


class LocalImage(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    oci_archive: str | None = Field(
        default=None,
        alias="ociArchive",
        description="The image itself, as `make images` writes it: its pods run in its "
        "unpacked root filesystem with its config (imagefs); entrypoint and path unused.",
    )
    entrypoint: list[str] = Field(default_factory=list)
    path: list[str] = Field(default_factory=lambda: ["/usr/local/bin", "/usr/bin", "/bin"])
    env: dict[str, str] = Field(default_factory=dict, description="The image's ENV.")

    @staticmethod
    def _resolve(text: str) -> str:
        venv = str(Path(sys.executable).parent.parent)
        return text.replace("{venv}", venv).replace("{repo}", str(REPO_ROOT))

    def archive(self) -> Path | None:
        return Path(self._resolve(self.oci_archive)) if self.oci_archive else None

    def resolved_path(self) -> str:
        return ":".join(self._resolve(entry) for entry in self.path)

    def resolved_env(self) -> dict[str, str]:
        return {key: self._resolve(value) for key, value in self.env.items()}

    def argv(self, container: dict[str, Any]) -> list[str]:
        """The entry has no CMD: the container's ``args`` follow its ENTRYPOINT."""
        return podspec.container_argv(
            self.entrypoint, [], container.get("command"), container.get("args")
        )


class ImageTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: dict[str, LocalImage]

    def lookup(self, image: str) -> LocalImage | None:
        return self.images.get(repository(image))

    def runs_pod(self, pod_spec: dict[str, Any]) -> bool:
        containers = [*(pod_spec.get("initContainers") or []), *pod_spec.get("containers", [])]
        return bool(containers) and all(self.lookup(c.get("image", "")) for c in containers)

    def kwok_exclusion(self) -> dict[str, Any]:
        """A KWOK stage selector term that skips every pod with a listed image.

        KWOK evaluates ``key`` as a jq query; for pods it must leave to the runner,
        the repository of some container is in the table.
        """
        return {
            "key": KWOK_IMAGE_REPOSITORIES,
            "operator": "NotIn",
            "values": sorted(self.images),
        }


def load_image_table(path: Path = DEFAULT_IMAGES_FILE) -> ImageTable:
    return ImageTable.model_validate(yaml.safe_load(path.read_text()))
