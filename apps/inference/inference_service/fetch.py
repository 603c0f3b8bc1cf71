"""Fetch model versions from their catalog source, verify them, and only then unpack them.

Run as the inference pod's `model-source` init container (the same image, so the same Python):

    python -m inference_service.fetch --dest /models-fetched SOURCE_JSON...

Each SOURCE_JSON is {"name", "version", "sha256" (of model.onnx), "source": {"kind": "https", ...}} as in
catalog.json (kinds https, oci, pvc). The source is a tar of the version folder (model.onnx, metadata.json,
tokenizer); its
bytes are streamed to a temporary file while hashed, and nothing is unpacked unless the digest is the
catalog's. After unpacking, model.onnx must hash to the catalog's model sha256 too; only then is the folder
moved to DEST/<name>/<version>. Any failure exits non-zero with one line naming the model and what was wrong,
so the pod never starts (init containers must all succeed first) and no unverified byte is served. On a
shared model-cache volume a version already there whose model.onnx hashes to the catalog's is kept as it is.

Kinds: `https` (GET the URL), `pvc` (a file under /sources/<claim>/, the claim mounted read-only), `oci` (the
artifact's manifest by digest from the registry's HTTP API, verified against the digest in the reference,
then the layer whose digest is `sha256`; anonymous pulls, with the registry's bearer-token challenge).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

SOURCES_DIR = Path("/sources")  # where the init container mounts PVC sources, one folder per claim
CHUNK = 1 << 20
TIMEOUT_S = 60
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class FetchError(Exception):
    """One line: which model, what was wrong."""


def _copy_hashing(src: IO[bytes], dst: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: src.read(CHUNK), b""):
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest()


def _open_url(url: str, headers: dict[str, str]) -> IO[bytes]:
    if urllib.parse.urlsplit(url).scheme != "https":
        raise FetchError(f"{url}: only https:// is allowed")
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (https only, checked above)
    response: IO[bytes] = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310
    return response


def _registry_get(host: str, path: str, accept: str, token: list[str]) -> IO[bytes]:
    """GET https://host/v2/path, answering a bearer-token challenge once (anonymous pulls)."""
    url = f"https://{host}/v2/{path}"
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token[0]}"
    try:
        return _open_url(url, headers)
    except urllib.error.HTTPError as err:
        challenge = err.headers.get("WWW-Authenticate", "") if err.code == 401 else ""
        if token or not challenge.lower().startswith("bearer "):
            raise
    fields = dict(
        part.split("=", 1) for part in challenge[len("bearer ") :].replace('"', "").split(",") if "=" in part
    )
    realm = fields.pop("realm", "")
    with _open_url(f"{realm}?{urllib.parse.urlencode(fields)}", {}) as answer:
        body = json.loads(answer.read())
    token.append(str(body.get("token") or body.get("access_token") or ""))
    headers["Authorization"] = f"Bearer {token[0]}"
    return _open_url(url, headers)


def _oci_layer(reference: str, layer: str, token: list[str]) -> IO[bytes]:
    host, _, rest = reference.partition("/")
    repository, _, manifest_digest = rest.partition("@")
    with _registry_get(host, f"{repository}/manifests/{manifest_digest}", OCI_MANIFEST, token) as answer:
        manifest = answer.read()
    if f"sha256:{hashlib.sha256(manifest).hexdigest()}" != manifest_digest:
        raise FetchError(f"{reference}: the manifest's bytes do not hash to its digest")
    layers = [entry.get("digest") for entry in json.loads(manifest).get("layers", [])]
    if f"sha256:{layer}" not in layers:
        raise FetchError(f"{reference}: no layer sha256:{layer} in the manifest (layers: {layers})")
    return _registry_get(host, f"{repository}/blobs/sha256:{layer}", "*/*", token)


def _open_source(source: dict[str, Any]) -> IO[bytes]:
    kind = source.get("kind")
    if kind == "https":
        return _open_url(str(source["url"]), {})
    if kind == "pvc":
        path = (SOURCES_DIR / str(source["claim"]) / str(source["path"]).lstrip("/")).resolve()
        if not path.is_relative_to(SOURCES_DIR / str(source["claim"])):
            raise FetchError(f"{source['path']}: outside the claim")
        return path.open("rb")
    if kind == "oci":
        return _oci_layer(str(source["reference"]), str(source["sha256"]), [])
    raise FetchError(f"source kind {kind!r}; allowed: https, oci, pvc")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_one(entry: dict[str, Any], dest: Path) -> Path:
    """Fetch, verify and unpack one model version; returns its folder. Raises FetchError."""
    name, version, source = str(entry["name"]), str(entry["version"]), entry["source"]
    where = f"{name}:{version} ({source.get('kind')})"
    final = dest / name / version
    if _verified(final, entry):
        return final  # on a shared model cache: fetched and checked by an earlier pod
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as scratch:
        archive = Path(scratch) / "model.tar"
        try:
            with _open_source(source) as src, archive.open("wb") as out:
                got = _copy_hashing(src, out)
        except FetchError as err:  # the source's own refusal (oci manifest, pvc path): name the model too
            raise FetchError(f"{where}: {err}") from None
        except (OSError, ValueError) as err:
            raise FetchError(f"{where}: cannot read the source: {err}") from err
        if got != source["sha256"]:
            raise FetchError(
                f"{where}: sha256 {got} is not the catalog's {source['sha256']}; nothing unpacked"
            )
        unpacked = Path(scratch) / "unpacked"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")  # no absolute paths, links out or devices
        except (tarfile.TarError, OSError) as err:
            raise FetchError(f"{where}: not a tar of the version folder: {err}") from err
        model = unpacked / "model.onnx"
        if not model.is_file():
            raise FetchError(f"{where}: the archive has no model.onnx at its top")
        if _file_sha256(model) != entry["sha256"]:
            raise FetchError(f"{where}: model.onnx does not hash to the catalog's {entry['sha256']}")
        if final.exists() and not _verified(final, entry):
            shutil.rmtree(final)  # a partial or stale copy nothing can serve
        try:
            unpacked.rename(final)
        except OSError:
            if not _verified(final, entry):  # another pod sharing the cache won the race with a good copy
                raise FetchError(f"{where}: cannot move the checked copy into {final}") from None
    return final


def _verified(folder: Path, entry: dict[str, Any]) -> bool:
    model = folder / "model.onnx"
    return model.is_file() and _file_sha256(model) == entry["sha256"]


def fetch_all(entries: Iterable[dict[str, Any]], dest: Path) -> list[Path]:
    return [fetch_one(entry, dest) for entry in entries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dest", type=Path, required=True, help="the model-source volume")
    parser.add_argument("sources", nargs="+", help="one JSON object per model version")
    args = parser.parse_args(argv)
    try:
        entries = [json.loads(text) for text in args.sources]
        for path in fetch_all(entries, args.dest):
            print(f"inference_service.fetch: verified and unpacked {path}", flush=True)
    except (FetchError, json.JSONDecodeError, KeyError) as err:
        print(f"inference_service.fetch: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
