"""Every add-on Application under dist/infrastructure/, rendered with the pinned tools and modules."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from addons.errors import AddonError
from addons.render import Rendered, Tools, render
from testcluster.apply import load_all
from testcluster.versions import REPO_ROOT, module_dir, pinned, versions

INFRASTRUCTURE = "infrastructure"
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"


def tools() -> Tools:
    helm, kustomize = TOOLS_BIN / "helm", TOOLS_BIN / "kustomize"
    for tool in (helm, kustomize):
        if not tool.exists():
            raise AddonError(f"{tool} is missing; run tools/setup/renderers.sh (make test-setup does)")
    return Tools(helm=helm, kustomize=kustomize, kube_version=pinned("KUBERNETES_PATCH_VERSION"))


@cache
def _module(module: str, version: str) -> Path:
    return module_dir(module, version)


def applications(dist: Path) -> dict[str, list[dict[str, Any]]]:
    """dist/infrastructure/<cluster>/ -> its Applications, by cluster folder."""
    found: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(p for p in (dist / INFRASTRUCTURE).glob("*") if p.is_dir()):
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(folder.name, []).extend(
                d for d in load_all(path.read_text(encoding="utf-8")) if d and d.get("kind") == "Application"
            )
    return found


def render_all(dist: Path) -> dict[str, list[Rendered]]:
    """Each cluster folder's add-ons, rendered (in file order)."""
    pins, found = versions(), tools()
    return {
        cluster: [render(app, versions=pins, tools=found, module=_module) for app in apps]
        for cluster, apps in applications(dist).items()
    }
