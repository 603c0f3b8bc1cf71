"""The cache of unchanged folders: any change to what decides the findings is a new key."""

from __future__ import annotations

import shutil
from pathlib import Path

from policy_check.cache import CODE, Cache
from policy_check.findings import Finding

REPO = Path(__file__).resolve().parents[2]


def repo_copy(tmp_path: Path) -> Path:
    """The parts of the repository a key reads, and two stand-in binaries."""
    root = tmp_path / "repo"
    for part in CODE:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / part)
    for tool in ("kyverno", "conftest"):
        (root / "bin").mkdir(exist_ok=True)
        (root / "bin" / tool).write_bytes(b"v1 " + tool.encode())
    folder = tmp_path / "dist" / "dev"
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text("kind: ConfigMap\n")
    return root


def key(tmp_path: Path, root: Path, extra: object = "data") -> str:
    cache = Cache(tmp_path / "cache", root, [root / "bin" / "kyverno", root / "bin" / "conftest"])
    return cache.key(tmp_path / "dist" / "dev", ["a.yaml"], extra)


def test_same_inputs_same_key_and_entries_round_trip(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    k = key(tmp_path, root)
    assert key(tmp_path, root) == k
    cache = Cache(tmp_path / "cache", root, [root / "bin" / "kyverno"])
    found = [Finding("dev", "rule", "a.yaml", "ConfigMap", "ns", "a", "conftest", "msg", "w1", 3, 9, ("x",))]
    labels = {"ConfigMap/ns/a": {"app.kubernetes.io/name": "a"}}
    assert cache.get(k) is None
    cache.put(k, found, labels)
    assert cache.get(k) == (found, labels)
    (tmp_path / "cache" / "findings" / f"{k}.json").write_text("{not json")
    assert cache.get(k) is None


def test_any_change_is_a_new_key(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    seen = {key(tmp_path, root)}

    def changed() -> None:
        k = key(tmp_path, root)
        assert k not in seen
        seen.add(k)

    (tmp_path / "dist" / "dev" / "a.yaml").write_text("kind: Secret\n")  # a file of the folder
    changed()
    seen.add(key(tmp_path, root, extra="other data"))  # the data the engines get
    assert len(seen) == 3
    rego = next((root / "policies" / "conftest" / "environment").glob("network_isolation.rego"))
    rego.write_text(rego.read_text() + "\n# changed\n")  # a policy
    changed()
    (root / "policies" / "policy_check" / "runner.py").write_text("# changed\n")  # the gate's code
    changed()
    (root / "tools" / "versions.env").write_text("KSERVE_VERSION=v0\n")  # the pinned CRDs
    changed()
    binary = root / "bin" / "conftest"
    binary.unlink()
    binary.write_bytes(b"v2 conftest")  # a new build of a tool (a new file: new inode, size, mtime)
    changed()
