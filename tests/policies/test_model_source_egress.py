"""The fetch egress of model sources: declared from the catalog and overlays (policy_check.declared, not the
generator), rendered only where a version comes from an OCI artifact or an https:// URL, and checked both
ways by the network rules (real conftest): missing where declared, or present where not, is a violation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.synth import synthesize
from policy_check import declared

POLICY = "networkpolicy-allow-inference-to-model-sources.yaml"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fetching(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A spec whose prod canary serves breast-cancer 3 from an https:// URL (stage and dev: image only)."""
    repo = REPO
    root = tmp_path_factory.mktemp("fetching")
    shutil.copytree(repo / "overlays", root / "overlays")
    (root / Path(CATALOG_FILE).parent).mkdir(parents=True)
    catalog = json.loads((repo / CATALOG_FILE).read_text())
    source = {"kind": "https", "url": "https://models.example.com/bc-3.tar", "sha256": "cd" * 32}
    catalog["models"]["breast-cancer"]["3"] = {"sha256": "ab" * 32, "source": source}
    (root / CATALOG_FILE).write_text(json.dumps(catalog))
    prod = root / "overlays" / "prod.yaml"
    text = prod.read_text()
    canary = '        - name: breast-cancer\n          version: "2"'
    assert canary in text
    prod.write_text(text.replace(canary, canary.replace('"2"', '"3"')))
    out = root / "dist"
    synthesize(root, out=out)
    return root, out


def test_declared_only_where_a_version_is_fetched_over_the_network(fetching: tuple[Path, Path]) -> None:
    root, _ = fetching
    specs = declared.for_environments(root / "overlays", ["prod", "stage"])
    edges = {env: [(c["from"], c["to"]) for c in s["connections"]] for env, s in specs.items()}
    assert ("inference", "model-sources") in edges["prod"]
    assert ("inference", "model-sources") not in edges["stage"]


def test_rendered_only_where_declared_and_the_gate_passes(
    fetching: tuple[Path, Path], tools: Any, tmp_path: Path, check_env: Any
) -> None:
    root, out = fetching
    assert (out / "prod" / POLICY).is_file()
    assert not (out / "stage" / POLICY).exists()
    assert check_env(root, out, tools, "prod", tmp_path) == []


def test_a_missing_fetch_egress_is_a_violation(
    fetching: tuple[Path, Path], tools: Any, tmp_path: Path, check_env: Any
) -> None:
    root, out = fetching
    broken = tmp_path / "dist"
    shutil.copytree(out, broken)
    (broken / "prod" / POLICY).unlink()
    found = check_env(root, broken, tools, "prod", tmp_path)
    assert found and all("inference -> model-sources" in f and "is not allowed" in f for f in found), found


def test_an_undeclared_fetch_egress_is_a_violation(
    fetching: tuple[Path, Path], tools: Any, tmp_path: Path, check_env: Any
) -> None:
    root, out = fetching
    broken = tmp_path / "dist"
    shutil.copytree(out, broken)
    text = (out / "prod" / POLICY).read_text().replace("mlplatform-prod", "mlplatform-stage")
    (broken / "stage" / POLICY).write_text(text)
    found = check_env(root, broken, tools, "stage", tmp_path)
    assert any(f.startswith("network-isolation:") and "outside the cluster on TCP/443" in f for f in found)
    assert any(f.startswith("no-allow-all:") for f in found), found
