"""tools/setup/*.sh: version checks that cannot fail at random, and setups of one tool that can run at once.

Each test runs the real scripts from a copy of tools/ (so links land in a temporary clone, not this one) with
stand-ins for the tools and for `go`: nothing is built, and the checks and the locking are the scripts' own.
"""

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A stand-in tool: prints the line its check looks for, then far more than a pipe holds (64 KiB), as a
# verbose CLI would. `CMD | grep -q` under pipefail fails on it whenever grep exits before CMD's last write.
STAND_IN = """#!/bin/sh
printf '%s\\n' "{line}"
yes 'more output from the tool, as a verbose CLI prints after its version' | head -c 300000
"""

# A stand-in `go`: `go build ... -o OUT PKG` waits a little (a build takes time, so two setups overlap),
# records that it ran, and writes a stand-in tool that reports $STAND_IN_VERSION_LINE.
FAKE_GO = """#!/bin/bash
out=""
while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
[ -n "$out" ] || exit 2
echo "$$" >> "$BUILD_LOG"
sleep 2
cat > "$out" <<'TOOL'
{stand_in}
TOOL
"""

# What each pinned tool's check looks for, from tools/versions.env.
VERSIONS = dict(
    line.split("=", 1)
    for line in (ROOT / "tools/versions.env").read_text().splitlines()
    if line and not line.startswith("#")
)

# ghz's version is the one tools/ghz/go.mod requires (not in tools/versions.env, as for cosign and syft).
GHZ_VERSION = next(
    line.split()[1]
    for line in (ROOT / "tools/ghz/go.mod").read_text().splitlines()
    if line.split()[:1] == ["github.com/bojand/ghz"]
)


def version_line(tool: str) -> str:
    v = VERSIONS
    return {
        "kyverno": f"Version: {v['KYVERNO_VERSION']}",
        "conftest": f"Conftest: {v['CONFTEST_VERSION'].removeprefix('v')}",
        "etcd": f"etcd Version: {v['ETCD_VERSION'].removeprefix('v')}",
        "kube-apiserver": f"Kubernetes {v['KUBERNETES_PATCH_VERSION']}",
        "kube-controller-manager": f"Kubernetes {v['KUBERNETES_PATCH_VERSION']}",
        "kube-scheduler": f"Kubernetes {v['KUBERNETES_PATCH_VERSION']}",
        "argocd": f"argocd: {v['ARGOCD_VERSION']}+0000000",
        "kwok": f"kwok version {v['KWOK_VERSION']} (go1.26 linux/amd64)",
        "registry": f"registry {v['REGISTRY_MODULE']} {v['REGISTRY_VERSION']}",
        "oha": f"oha {v['OHA_VERSION'].removeprefix('v')}",
        "ghz": GHZ_VERSION.removeprefix("v"),
    }[tool]


# The Kyverno CLI is built with tools/kyverno/patches/ applied: its cache folder is named by their hash
# (the patches, then the Go files, each in name order), so a changed patch is a new build.
_PATCHES = ROOT / "tools/kyverno/patches"
KYVERNO_PATCHES = hashlib.sha256(
    b"".join(p.read_bytes() for pattern in ("*.patch", "*.go") for p in sorted(_PATCHES.glob(pattern)))
).hexdigest()[:12]

# tool -> (script, folder of its cached binary inside the tools cache)
CACHED = {
    "kyverno": ("go-tool.sh kyverno", f"kyverno-{VERSIONS['KYVERNO_VERSION']}-patched-{KYVERNO_PATCHES}"),
    "conftest": ("go-tool.sh conftest", f"conftest-{VERSIONS['CONFTEST_VERSION']}"),
    "registry": ("registry-tool.sh", f"registry-{VERSIONS['REGISTRY_VERSION']}"),
    "oha": ("oha.sh", f"oha-{VERSIONS['OHA_VERSION']}"),
    "ghz": ("ghz.sh", f"ghz-{GHZ_VERSION}"),
    "argocd": ("argocd-tools.sh", f"argocd-{VERSIONS['ARGOCD_VERSION']}"),
    "kwok": ("argocd-tools.sh", f"kwok-{VERSIONS['KWOK_VERSION']}"),
    **{
        b: ("k8s-tools.sh", f"k8s-{VERSIONS['KUBERNETES_PATCH_VERSION']}-etcd-{VERSIONS['ETCD_VERSION']}")
        for b in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    },
}


def clone_tools(dest: Path) -> Path:
    """A stand-in clone holding what the setup scripts read: tools/ (scripts, versions, go.mod files)."""
    shutil.copytree(
        ROOT / "tools", dest / "tools", ignore=shutil.ignore_patterns("__pycache__", "testcluster")
    )
    return dest


def stand_in(path: Path, tool: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STAND_IN.format(line=version_line(tool)))
    path.chmod(0o755)


def env_with(tmp_path: Path, cache: Path, **extra: str) -> dict[str, str]:
    """No `go` or `cargo` on PATH unless a test puts one there: a check that wrongly fails cannot fall back
    to a real build, it fails the setup."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = f"{bin_dir}:/usr/bin:/bin"
    return {"PATH": path, "HOME": str(tmp_path), "MLPLATFORM_TOOLS_CACHE": str(cache), **extra}


def run_setup(clone: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = script.split()
    return subprocess.run(
        ["bash", str(clone / "tools/setup" / argv[0]), *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("tool", sorted(CACHED))
def test_version_check_accepts_a_tool_that_prints_more_after_its_version(tmp_path: Path, tool: str) -> None:
    script, folder = CACHED[tool]
    clone = clone_tools(tmp_path / "clone")
    cache = tmp_path / "cache"
    # Every binary the script wants, cached as stand-ins: each check must accept them, every time.
    for other, (other_script, other_folder) in CACHED.items():
        if other_script == script:
            stand_in(cache / other_folder / other, other)
    env = env_with(tmp_path, cache)
    for attempt in range(3):
        result = run_setup(clone, script, env)
        assert result.returncode == 0, f"attempt {attempt}: {result.stderr}"
        assert f"Using cached {tool} at {cache / folder / tool}." in result.stderr
    assert (clone / ".tools/bin" / tool).resolve() == cache / folder / tool


def test_version_check_refuses_another_version(tmp_path: Path) -> None:
    clone = clone_tools(tmp_path / "clone")
    cache = tmp_path / "cache"
    _, folder = CACHED["registry"]
    (cache / folder).mkdir(parents=True)
    (cache / folder / "registry").write_text(
        STAND_IN.format(line="registry github.com/distribution/distribution/v3 v0.0.1")
    )
    (cache / folder / "registry").chmod(0o755)
    result = run_setup(clone, "registry-tool.sh", env_with(tmp_path, cache))
    # Not accepted: it goes on to build, and there is no go on PATH here.
    assert result.returncode != 0
    assert "Using cached registry" not in result.stderr
    assert "Building the registry" in result.stderr


def fake_go(tmp_path: Path, tool: str) -> Path:
    go = tmp_path / "bin/go"
    go.parent.mkdir(parents=True, exist_ok=True)
    go.write_text(FAKE_GO.format(stand_in=STAND_IN.format(line=version_line(tool))))
    go.chmod(0o755)
    return tmp_path / "builds.log"


@pytest.mark.parametrize(
    # registry-tool.sh: the lock is lib.sh's cached_tool, shared by every setup script (go-tool.sh's Kyverno
    # build patches a real module copy and its conftest build runs go install: the stand-in go gives neither)
    ("tool", "script"),
    [("registry", "registry-tool.sh")],
)
def test_two_clones_setting_up_one_tool_at_once_both_succeed_and_build_once(
    tmp_path: Path, tool: str, script: str
) -> None:
    cache = tmp_path / "empty-cache"
    build_log = fake_go(tmp_path, tool)
    env = env_with(tmp_path, cache, BUILD_LOG=str(build_log))
    clones = [clone_tools(tmp_path / f"clone{i}") for i in range(2)]
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [threading.Thread(target=lambda c=c: results.append(run_setup(c, script, env))) for c in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    # The lock lets one build; the other setup waits, then takes the binary the first one put in place.
    assert len(build_log.read_text().split()) == 1
    stderr = "".join(r.stderr for r in results)
    assert "Waiting for another setup on this machine that is building" in stderr
    assert f"Using cached {tool}" in stderr
    _, folder = CACHED[tool]
    final = cache / folder / tool
    for clone in clones:
        assert (clone / ".tools/bin" / tool).resolve() == final
    # Nothing half-built is left beside it.
    assert sorted(p.name for p in final.parent.iterdir()) == sorted([tool, f".{tool}.lock"])


def test_a_failed_build_leaves_no_partial_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    go = tmp_path / "bin/go"
    go.parent.mkdir(parents=True)
    go.write_text(
        '#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && echo partial > "$2"; shift; done\nexit 1\n'
    )
    go.chmod(0o755)
    clone = clone_tools(tmp_path / "clone")
    result = run_setup(clone, "registry-tool.sh", env_with(tmp_path, cache))
    assert result.returncode != 0
    _, folder = CACHED["registry"]
    assert [p.name for p in (cache / folder).iterdir()] == [".registry.lock"]
    assert not os.path.exists(clone / ".tools/bin/registry")
