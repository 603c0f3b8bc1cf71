"""Model versions whose catalog source is not the image: the `model-source` init container and its volumes.

The init container runs the service's own image (`python -m inference_service.fetch`): it fetches each
version's tar from its source (an OCI artifact, an https:// URL, or a file on an existing PVC), checks the
tar's sha256 and then model.onnx's against the catalog, and unpacks into an emptyDir. Init containers must all
succeed before the service container starts, so a version that fails its digest never reaches it; the service
then checks model.onnx's sha256 again at load (verified serving). The service container mounts each fetched
version read-only at `/models/<name>/<version>` (a subPath of the emptyDir), next to the versions inside the
image or on the model cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdk8s_plus_33 import k8s

from mlplatform import runtime_contract as contract
from mlplatform.components.base import container_security_context, quantity, resources

if TYPE_CHECKING:
    from mlplatform.schema.catalog import RemoteSource
    from mlplatform.schema.platform import Model

VOLUME = "model-source"
FETCH_DIR = "/models-fetched"
SOURCES_DIR = "/sources"  # inference_service.fetch.SOURCES_DIR
CONTAINER = "model-source"


@dataclass(frozen=True, kw_only=True, slots=True)
class Fetched:
    """What a pod needs for its fetched versions: volumes, the init container, the service's mounts."""

    volumes: list[k8s.Volume]
    init: k8s.Container
    mounts: list[k8s.VolumeMount]


def _claim_volume(claim: str) -> str:
    return f"source-{claim}"


def fetched(
    *,
    sources: Sequence[tuple[Model, RemoteSource]],
    catalog_sha256: Mapping[tuple[str, str], str],
    image: str,
    model_dir: str,
    size_limit: str,
    uid: int,
    init_resources: dict[str, dict[str, str]],
    cache_volume: str | None = None,
    knative: bool = False,
) -> Fetched:
    """The volumes, init container and mounts for the given (model, source) pairs (at least one).

    With a model-cache PVC (`cache_volume`, the pod's volume holding /models), the versions are fetched into
    the cache itself: the service sees them at /models/<name>/<version> with no mount of their own (a mount
    point inside the read-only cache mount could not be made).
    """
    claims = sorted({s.claim for _, s in sources if s.kind == "pvc"})
    volumes = []
    if cache_volume is None:
        empty = k8s.EmptyDirVolumeSource(size_limit=quantity(size_limit))
        volumes.append(k8s.Volume(name=VOLUME, empty_dir=empty))
    init_mounts = [k8s.VolumeMount(name=cache_volume or VOLUME, mount_path=FETCH_DIR)]
    for claim in claims:
        volume = k8s.PersistentVolumeClaimVolumeSource(claim_name=claim, read_only=True)
        volumes.append(k8s.Volume(name=_claim_volume(claim), persistent_volume_claim=volume))
        mount = k8s.VolumeMount(
            name=_claim_volume(claim), mount_path=f"{SOURCES_DIR}/{claim}", read_only=True
        )
        init_mounts.append(mount)
    entries = []
    mounts = []
    for model, source in sources:
        key = (model.name, model.version)
        entry: dict[str, object] = {"name": model.name, "version": model.version}
        entry |= {"sha256": catalog_sha256[key], "source": source.model_dump(mode="json")}
        entries.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))
        if cache_volume is not None:
            continue
        mounts.append(
            k8s.VolumeMount(
                name=VOLUME,
                mount_path=f"{model_dir}/{model.name}/{model.version}",
                sub_path=f"{model.name}/{model.version}",
                read_only=True,
            )
        )
    init = k8s.Container(
        name=CONTAINER,
        image=image,
        image_pull_policy="IfNotPresent",
        command=[*contract.FETCH_COMMAND, "--dest", FETCH_DIR, *entries],
        resources=resources(init_resources),
        security_context=container_security_context(uid, knative=knative),
        volume_mounts=init_mounts,
    )
    return Fetched(volumes=volumes, init=init, mounts=mounts)
