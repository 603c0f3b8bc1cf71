"""The project's own tool links run the versions pinned in tools/versions.env."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pinned() -> dict[str, str]:
    values = {}
    for line in (ROOT / "tools/versions.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def test_kyverno_reports_pinned_version() -> None:
    out = run(str(ROOT / ".tools/bin/kyverno"), "version")
    assert f"Version: {pinned()['KYVERNO_VERSION']}" in out.splitlines()


def test_conftest_reports_pinned_version() -> None:
    out = run(str(ROOT / ".tools/bin/conftest"), "--version")
    assert f"Conftest: {pinned()['CONFTEST_VERSION'].removeprefix('v')}" in out.splitlines()


def test_kyverno_tools_module_requires_pinned_version() -> None:
    go_mod = (ROOT / "tools/kyverno/go.mod").read_text()
    assert f"github.com/kyverno/kyverno {pinned()['KYVERNO_VERSION']}" in go_mod
    # The replace Kyverno's own go.mod carries must be repeated, or the build resolves the upstream module.
    assert "replace k8s.io/pod-security-admission => github.com/kyverno/pod-security-admission" in go_mod


@pytest.mark.parametrize("tool", ["kyverno", "conftest"])
def test_tool_links_point_outside_the_clone(tool: str) -> None:
    target = (ROOT / ".tools/bin" / tool).resolve()
    assert ROOT not in target.parents, f"{tool} should be cached outside the clone, found {target}"
