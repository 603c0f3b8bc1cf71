"""The model catalog: which model versions exist, as the model build wrote them.

`apps/inference/model_build/catalog.json` is committed and written by the model build (`make models`):
`{"models": {"<name>": {"<version>": {"sha256": "<hex of model.onnx>", "source": {"kind": "image"}}}}}`.
The spec refuses any model version that is not in it: a Deployment asking for a version nothing builds would
never become ready.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mlplatform.spec.common import DnsLabel, matching
from mlplatform.spec.platform import VERSION_PATTERN

#: Where the catalog is, relative to the repository root.
CATALOG_FILE = "apps/inference/model_build/catalog.json"

Version = Annotated[str, matching(VERSION_PATTERN, "a version number such as 1")]


class _Open(BaseModel):
    """Fields the spec does not read are the model build's business: allowed, ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ModelSource(_Open):
    kind: str = Field(min_length=1)


class CatalogEntry(_Open):
    sha256: Annotated[str, matching(r"^[a-f0-9]{64}$", "64 lowercase hex digits (sha256 of model.onnx)")]
    source: ModelSource


class Catalog(_Open):
    """Model name -> version -> entry."""

    models: dict[DnsLabel, dict[Version, CatalogEntry]]

    def versions(self, name: str) -> list[str]:
        """The versions of `name` that exist, in numeric order (empty for an unknown model)."""
        return sorted(self.models.get(name, {}), key=int)

    def has(self, name: str, version: str) -> bool:
        return version in self.models.get(name, {})


def catalog_path(repo_root: Path) -> Path:
    return repo_root / CATALOG_FILE
