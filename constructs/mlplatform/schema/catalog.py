"""The model catalog: which model versions exist, as the model build wrote them.

`apps/inference/model_build/catalog.json` is committed and written by the model build (`make models`):
`{"models": {"<name>": {"<version>": {"sha256": "<hex of model.onnx>", "source": {"kind": "image"}}}}}`.
`source` says where the version comes from: `image` (inside the inference image, the default), or a tar of
the version folder from an OCI artifact, an https:// URL or a file on an existing PVC, always with the
tar's sha256 (an init container fetches it, checks the digest and unpacks it before the service starts).
The spec refuses any model version that is not in it: a Deployment asking for a version nothing builds would
never become ready.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlplatform.schema.common import DnsLabel, matching
from mlplatform.schema.platform import VERSION_PATTERN
from model_build.catalog import CATALOG_PATH

#: Where the catalog is, relative to the repository root: where the model build writes it.
CATALOG_FILE = CATALOG_PATH

Version = Annotated[str, matching(VERSION_PATTERN, "a version number such as 1")]


class _Open(BaseModel):
    """Fields the spec does not read are the model build's business: allowed, ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Sha256 = Annotated[str, matching(r"^[a-f0-9]{64}$", "64 lowercase hex digits (a sha256)")]


class ImageSource(_Open):
    """Baked into the inference image's model repository by the model build (the default)."""

    kind: Literal["image"]


class OciSource(_Open):
    """An OCI artifact whose one layer is a tar of the version folder; `sha256` is that layer's digest."""

    kind: Literal["oci"]
    reference: Annotated[
        str,
        matching(
            r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+@sha256:[a-f0-9]{64}$",
            "an artifact pinned by digest: registry/repository@sha256:<64 hex>",
        ),
    ]
    sha256: Sha256


class HttpsSource(_Open):
    """A tar of the version folder at an https:// URL; `sha256` is the tar's digest."""

    kind: Literal["https"]
    url: Annotated[str, matching(r"^https://[a-z0-9.-]+(:[0-9]+)?/[^\s]*$", "an https:// URL")]
    sha256: Sha256


class PvcSource(_Open):
    """A tar of the version folder at `path` on an existing PVC of the namespace; `sha256` is its digest."""

    kind: Literal["pvc"]
    claim: DnsLabel
    path: Annotated[str, matching(r"^/[^\s]*[^\s/]$", "an absolute file path such as /models/m-1.tar")]
    sha256: Sha256


ModelSource = Annotated[ImageSource | OciSource | HttpsSource | PvcSource, Field(discriminator="kind")]
#: Sources an init container fetches (everything but `image`).
RemoteSource = OciSource | HttpsSource | PvcSource


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

    def entry(self, name: str, version: str) -> CatalogEntry:
        return self.models[name][version]
