"""The boot check runs the inference Deployment as its manifest says and fails when the manifest is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testcluster.apply import load_folder
from testcluster.boot import Objects, boot_environment, hosts_file
from testcluster.errors import ClusterTestError

from .conftest import Docs, first


def config(docs: Docs) -> dict[str, Any]:
    data: dict[str, Any] = first(docs, "ConfigMap", "inference-config")["data"]
    return data


def test_dev_boots_redis_and_the_service() -> None:
    booted, failures = boot_environment(load_folder(Path(__file__).resolve().parents[3] / "dist" / "dev"))
    assert failures == []
    assert booted == ["StatefulSet redis", "Deployment inference"]


def test_an_image_digest_no_build_made_fails_with_one_line(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    unknown = "sha256:" + "0" * 64

    def foreign(docs: Docs) -> None:
        c = first(docs, "Deployment", "inference")["spec"]["template"]["spec"]["containers"][0]
        c["image"] = c["image"].split("@")[0] + "@" + unknown

    _, folder = mutant("dev", foreign)
    with pytest.raises(ClusterTestError) as caught:
        boot_environment(load_folder(folder))
    message = str(caught.value)
    assert "\n" not in message and unknown in message
    assert "no image built by `make image` has this digest" in message


def test_a_model_version_the_image_lacks_never_becomes_ready(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    _, folder = mutant("dev", lambda docs: config(docs).__setitem__("INFERENCE_MODELS", "breast-cancer:99"))
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted
    assert len(failures) == 1 and "container inference exited" in failures[0], failures
    assert "breast-cancer" in failures[0]


def test_the_api_keys_file_must_be_where_the_settings_say(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    def move_keys(docs: Docs) -> None:
        config(docs)["INFERENCE_API_KEYS_FILE"] = "/var/run/secrets/elsewhere/api-keys"

    _, folder = mutant("dev", move_keys)
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted
    assert any("api-keys" in f or "api_keys" in f for f in failures), failures


def test_the_root_filesystem_is_read_only_as_the_manifest_asks(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    def write_outside_tmp(docs: Docs) -> None:
        c = first(docs, "Deployment", "inference")["spec"]["template"]["spec"]["containers"][0]
        c["command"] = ["sh", "-c", "touch /app/written && exec python -m inference_service"]

    _, folder = mutant("dev", write_outside_tmp)
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted
    assert any("Read-only file system" in f for f in failures), failures


def test_the_jwks_and_the_access_policy_must_be_where_the_settings_say(
    mutant: Callable[[str, Callable[[Docs], None]], tuple[Path, Path]],
) -> None:
    """prod takes tokens: its projected identity volume must hold the JWKS where the settings say."""

    def move_jwks(docs: Docs) -> None:
        for name in ("inference", "inference-canary"):
            pod = first(docs, "Deployment", name)["spec"]["template"]["spec"]
            identity = next(v for v in pod["volumes"] if v["name"] == "identity")["projected"]
            identity["sources"][1]["configMap"]["items"][0]["path"] = "jwks/elsewhere.json"

    _, folder = mutant("prod", move_jwks)
    booted, failures = boot_environment(load_folder(folder))
    assert "Deployment inference" not in booted and "Deployment inference-canary" not in booted
    assert failures and all("INFERENCE_OIDC_JWKS_FILE" in f for f in failures), failures


STAGE = Path(__file__).resolve().parents[3] / "dist" / "stage"


def test_stage_boots_both_redis_the_job_worker_and_the_service() -> None:
    """Stage enables jobs: the jobs Redis and the cache both listen on 6379, each in its own pod network."""
    booted, failures = boot_environment(load_folder(STAGE))
    assert failures == []
    assert set(booted) == {
        "StatefulSet jobs-redis",
        "StatefulSet redis",
        "Deployment inference-worker",
        "Deployment inference",
    }


def test_each_redis_service_resolves_to_its_own_pod(tmp_path: Path) -> None:
    manifests = load_folder(STAGE)
    namespace = next(m.obj["metadata"]["namespace"] for m in manifests if m.obj["kind"] == "StatefulSet")
    pods = {"redis": "10.213.0.2", "jobs-redis": "10.213.1.2"}
    path = hosts_file(Objects.of(manifests), namespace, tmp_path / "hosts", pods)
    address = {name: line.split()[0] for line in path.read_text().splitlines() for name in line.split()[1:]}
    assert address["redis"] == address["redis-headless"] == address["redis-0.redis-headless"] == "10.213.0.2"
    assert address["jobs-redis"] == address[f"jobs-redis.{namespace}.svc.cluster.local"] == "10.213.1.2"
    assert address["jobs-redis-0.jobs-redis-headless"] == "10.213.1.2"
    assert address["inference"] == address["inference-worker"] == address["localhost"] == "127.0.0.1"
