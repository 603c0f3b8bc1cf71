"""verify-image-signatures (dist/cluster-policies/), run by the real Kyverno CLI against a real registry.

distribution's registry (tools/registry/) listens on a free loopback port (plain HTTP: loopback is the one
place OCI clients allow it). The image is the Redis image `make image` built (the smallest), published and
signed with `python -m imagebuild publish`, the command a user runs, with a key pair made for the test by
`cosign generate-key-pair` (in real use the key comes from a secret store: README). The policy is the one
dist/ ships, with its attestor's key replaced by the test key's public half. `kyverno apply --registry` then
decides, reading the signatures from the registry as admission would:
- the image signed by that key, by digest, and by the tag it was pushed under: passes;
- the same image in a repository where nobody signed it: fails;
- the same image signed by another key: fails;
- the signed repository's tag moved to other bytes (another image pushed under it): fails.
Each failure names the pod and the image.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_check import kyverno
from tests.support.processes import free_port, http_ok, started

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".tools" / "bin"
IMAGES = REPO / "build" / "images"
POLICY = REPO / "dist" / "cluster-policies" / "verify-image-signatures.yaml"
IMAGE = "mlplatform-redis"  # the smallest image `make image` builds
OTHER = "mlplatform-models"  # other bytes, for the moved tag
NAMESPACE = "ml-fixture"


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make test-setup`", pytrace=False)
    return str(path)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`registry serve` on a free loopback port, its storage in a temporary folder; its host:port."""
    work = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(work / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-upload-secret"},
    }
    (work / "config.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"}
    with started(
        [_tool("registry"), "serve", str(work / "config.yml")],
        ready=http_ok(f"http://127.0.0.1:{port}/v2/"),
        what="the registry",
        timeout_s=30,
        env=env,
        stdout=work / "registry.log",
        stderr=subprocess.STDOUT,
        interval_s=0.1,
    ):
        yield f"127.0.0.1:{port}"


@dataclass(frozen=True)
class Key:
    private: Path
    public: Path


def _key_pair(folder: Path, env: dict[str, str]) -> Key:
    folder.mkdir()
    subprocess.run(
        [_tool("cosign"), "generate-key-pair"], cwd=folder, env=env, check=True, capture_output=True
    )
    return Key(folder / "cosign.key", folder / "cosign.pub")


def _digest(name: str) -> str:
    index = IMAGES / name / "index.json"
    if not index.is_file():
        pytest.fail(f"{index} is missing: run `make image`", pytrace=False)
    digest: str = json.loads(index.read_text())["manifests"][0]["digest"]
    return digest


@dataclass(frozen=True)
class Published:
    signed: str  # by digest, signed by the platform key
    signed_tag: str  # the tag it was pushed under
    unsigned: str  # the same digest in a repository nobody signed in
    other_key: str  # the same digest signed by another key
    moved_tag: str  # the signed repository's tag, moved to another image
    public_key: Path


@pytest.fixture(scope="module")
def published(registry: str, tmp_path_factory: pytest.TempPathFactory) -> Published:
    work = tmp_path_factory.mktemp("signing")
    # An empty password (COSIGN_PASSWORD), a HOME of its own: cosign reads and writes nothing of the user's.
    env = {**os.environ, "COSIGN_PASSWORD": "", "HOME": str(work), "PATH": f"{BIN}:{os.environ['PATH']}"}
    platform, other = _key_pair(work / "platform", env), _key_pair(work / "other", env)
    only = work / "images"  # the Redis image alone, with its SBOM, as `make image` left them
    only.mkdir()
    (only / IMAGE).symlink_to(IMAGES / IMAGE)
    if (IMAGES / f"{IMAGE}.spdx.json").is_file():
        shutil.copy(IMAGES / f"{IMAGE}.spdx.json", only)
    digest = _digest(IMAGE)

    def publish(prefix: str, key: Key) -> None:
        argv = [sys.executable, "-m", "imagebuild", "publish", "--images", str(only), "--no-tls-verify"]
        done = subprocess.run(
            [*argv, "--to", f"{registry}/{prefix}", "--key", str(key.private)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"published and signed {registry}/{prefix}/{IMAGE}@{digest}" in done.stdout, done.stdout

    def copy_only(layout: str, target: str) -> None:
        argv = [shutil.which("skopeo") or "skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        subprocess.run([*argv, f"oci:{IMAGES / layout}:latest", f"docker://{target}"], check=True, env=env)

    publish("signed", platform)
    publish("other", other)
    copy_only(IMAGE, f"{registry}/unsigned/{IMAGE}:latest")
    copy_only(OTHER, f"{registry}/moved/{IMAGE}:latest")  # moved: first the signed image, then other bytes
    publish("moved", platform)
    copy_only(OTHER, f"{registry}/moved/{IMAGE}:latest")
    return Published(
        signed=f"{registry}/signed/{IMAGE}@{digest}",
        signed_tag=f"{registry}/signed/{IMAGE}:latest",
        unsigned=f"{registry}/unsigned/{IMAGE}@{digest}",
        other_key=f"{registry}/other/{IMAGE}@{digest}",
        moved_tag=f"{registry}/moved/{IMAGE}:latest",
        public_key=platform.public,
    )


def _pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "redis", "image": image}]},
    }


def _apply(policy: dict[str, Any], pods: list[dict[str, Any]], work: Path) -> dict[str, dict[str, Any]]:
    """Pod name -> its result from `kyverno apply --registry` (the Namespace is one the platform manages)."""
    (work / "policy.yaml").write_text(yaml.safe_dump(policy))
    (work / "pods.yaml").write_text(yaml.safe_dump_all(pods))
    namespace = {"metadata": {"name": NAMESPACE, "labels": {"mlplatform.io/managed": "true"}}}
    (work / "values.yaml").write_text(yaml.safe_dump(kyverno.values_document([namespace])))
    cmd = kyverno.command(BIN / "kyverno", [work / "policy.yaml"], [work / "pods.yaml"], work / "values.yaml")
    env = {**os.environ, "HOME": str(work)}  # no docker credentials of the user's
    done = subprocess.run(
        [*cmd, "--registry"], capture_output=True, text=True, env=env, check=False, timeout=300
    )
    results = kyverno.parse_report(done.stdout, done.stderr, done.returncode)
    found = {}
    for result in results:
        for resource in result.get("resources") or []:
            found[resource["name"]] = result
    return found


def test_only_images_signed_by_the_spec_key_are_admitted(published: Published, tmp_path: Path) -> None:
    shipped = yaml.safe_load(POLICY.read_text())
    policy = copy.deepcopy(shipped)
    (attestor,) = policy["spec"]["attestors"]
    attestor["cosign"]["key"]["data"] = published.public_key.read_text()
    pods = {
        "signed": published.signed,
        "signed-tag": published.signed_tag,
        "unsigned": published.unsigned,
        "other-key": published.other_key,
        "moved-tag": published.moved_tag,
    }
    results = _apply(policy, [_pod(name, image) for name, image in pods.items()], tmp_path)
    assert set(results) == set(pods), results
    for name in ("signed", "signed-tag"):  # so the moved tag fails for its bytes, not for being a tag
        assert results[name]["result"] == "pass", results[name]
    for name in ("unsigned", "other-key", "moved-tag"):
        result = results[name]
        assert result["result"] == "fail", (name, result)
        message = result["message"]
        assert f"Pod {NAMESPACE}/{name}: image(s) not signed by the platform key" in message, message
        assert pods[name] in message, message
