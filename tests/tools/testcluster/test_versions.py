"""The README's "What the cluster needs" table names the module and version each CRD really comes from."""

from __future__ import annotations

from pathlib import Path

from testcluster.versions import CRD_SOURCES, crd_files, gitops_engine_kind_order

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_table_matches_tools_versions_env() -> None:
    rows = [line for line in README.read_text().splitlines() if line.startswith("| ")]
    for source in CRD_SOURCES:
        row = next((r for r in rows if f"`{source.module}` {source.version}," in r), None)
        assert row is not None, f"README has no row for {source.module} {source.version}"
        for folder in source.folders:
            assert f"`{folder}`" in row


def test_every_source_has_crds_and_the_kind_order_is_argo_cds() -> None:
    for source in CRD_SOURCES:
        assert crd_files(source), source.project
    kinds = gitops_engine_kind_order()
    assert kinds.index("Namespace") < kinds.index("NetworkPolicy") < kinds.index("Deployment")
