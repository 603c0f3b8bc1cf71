"""Bad specs stop the synth naming the file, field path, bad value and what is allowed; dist/ untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlplatform.spec import SpecError
from mlplatform.synth import synthesize


def _set(path: list[Any], value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return change


CASES = [
    # (file, change, expected fragments of the message)
    (
        "dev.yaml",
        _set(["services", "inference", "replicaz"], 2),
        ["dev.yaml", "services.inference.replicaz", "unknown field", "replicas"],
    ),
    (
        "dev.yaml",
        _set(["services", "inference", "imageDigest"], "sha256:abc"),
        ["dev.yaml", "services.inference.imageDigest", "'sha256:abc'", "pattern"],
    ),
    (
        "dev.yaml",
        _set(["routing", "kind"], "Route"),
        ["dev.yaml", "routing", "'Route'", "'Ingress'", "'Gateway'"],
    ),
    (
        "dev.yaml",
        _set(["sync", "mode"], "auto"),
        ["dev.yaml", "sync.mode", "'auto'", "'automated'", "'manual'"],
    ),
    (
        "dev.yaml",
        _set(["services", "inference", "resources", "limits", "memory"], "lots"),
        ["services.inference.resources.limits.memory", "'lots'"],
    ),
    (
        "dev.yaml",
        _set(
            ["services", "inference", "autoscaling"],
            {"minReplicas": 5, "maxReplicas": 2, "targetCpuUtilization": 70},
        ),
        ["services.inference.autoscaling", "maxReplicas (2) must be >= minReplicas (5)"],
    ),
    (
        "dev.yaml",
        lambda d: d["services"].update(typo=dict(d["services"]["inference"], host="t.example.com")),
        ["dev.yaml", "services.typo", "not declared", "['inference']"],
    ),
    (
        "dev.yaml",
        _set(
            ["services", "inference", "canary"],
            {"imageDigest": "sha256:" + "a" * 64, "models": [{"name": "x", "version": "1"}], "weight": 5},
        ),
        ["services.inference.canary", "routing.kind 'Gateway'", "'Ingress'"],
    ),
    ("dev.yaml", _set(["redis", "storageSize"], "10 GB"), ["redis.storageSize", "'10 GB'"]),
    (
        "platform.yaml",
        _set(["connections"], [{"from": "inference", "to": "postgres"}]),
        ["platform.yaml", "connections[0].to", "'postgres'", "allowed", "redis"],
    ),
    (
        "platform.yaml",
        _set(["redis", "maxmemoryPolicy"], "lru"),
        ["platform.yaml", "redis.maxmemoryPolicy", "'lru'", "'allkeys-lru'"],
    ),
    (
        "platform.yaml",
        _set(["services", "inference", "models"], []),
        ["platform.yaml", "services.inference.models", "at least 1"],
    ),
]


@pytest.mark.parametrize(("file", "change", "fragments"), CASES)
def test_bad_spec_is_reported_and_dist_untouched(
    spec_copy: Path, edit_yaml: Any, file: str, change: Callable[[Any], None], fragments: list[str]
) -> None:
    out = spec_copy / "dist"
    (out / "dev").mkdir(parents=True)
    sentinel = out / "dev" / "sentinel.yaml"
    sentinel.write_text("kept: true\n")
    edit_yaml(spec_copy / "overlays" / file, change)
    with pytest.raises(SpecError) as info:
        synthesize(spec_copy, out=out)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"
    assert sorted(p.name for p in out.rglob("*")) == ["dev", "sentinel.yaml"]
    assert sentinel.read_text() == "kept: true\n"


def test_missing_service_entry_in_overlay(spec_copy: Path, edit_yaml: Any) -> None:
    def drop(data: Any) -> None:
        data["services"]["second"] = data["services"]["inference"]
        data["connections"].append({"from": "second", "to": "redis"})

    edit_yaml(spec_copy / "overlays" / "platform.yaml", drop)
    with pytest.raises(SpecError, match=r"dev\.yaml[\s\S]*services\.second: missing"):
        synthesize(spec_copy, out=spec_copy / "dist")


def test_not_yaml(spec_copy: Path) -> None:
    (spec_copy / "overlays" / "dev.yaml").write_text("namespace: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        synthesize(spec_copy, out=spec_copy / "dist")
