"""ManifestChart and Component (components/base.py) and splitting cdk8s's YAML into files (output.py)."""

from __future__ import annotations

from typing import Any

import cdk8s
import pytest
import yaml

from mlplatform.components.base import Component, ManifestChart
from mlplatform.output import manifest_files
from mlplatform.synth import Rendered


def _config_map(name: str, namespace: str = "team-a", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "data": data,
    }


class _Maps(Component):
    def __init__(self, scope: Any, id: str, *, manifests: list[dict[str, Any]]) -> None:
        super().__init__(scope, id)
        for manifest in manifests:
            self.emit(manifest)


def _synth(*manifests: dict[str, Any]) -> dict[str, str]:
    app = cdk8s.App()
    chart = ManifestChart(app, "test")
    _Maps(chart, "maps", manifests=list(manifests))
    chart.include_manifests()
    return manifest_files(app.synth_yaml())


def test_every_file_holds_exactly_the_object_its_name_says(rendered: Rendered) -> None:
    for folder, files in rendered.folders.items():
        if folder == "cluster-policies":  # copies of policies/kyverno/<name>/<name>.yaml, named by policy
            continue
        for name, content in files.items():
            if not name.endswith(".yaml"):
                continue
            docs = list(yaml.safe_load_all(content))
            assert len(docs) == 1, f"{folder}/{name}"
            assert name == f"{docs[0]['kind'].lower()}-{docs[0]['metadata']['name']}.yaml", f"{folder}/{name}"


def test_manifests_come_out_as_given_with_keys_sorted() -> None:
    files = _synth(_config_map("settings", zeta="1", alpha="two\nlines\n"))
    assert list(files) == ["configmap-settings.yaml"]
    text = files["configmap-settings.yaml"]
    assert yaml.safe_load(text) == _config_map("settings", zeta="1", alpha="two\nlines\n")
    assert text.index("alpha:") < text.index("zeta:")
    assert text.startswith("apiVersion: v1\nkind: ConfigMap\nmetadata:\n")


@pytest.mark.parametrize("name", ["yes", "123", "null", "0x1f"])
def test_names_that_yaml_must_quote_give_the_right_file(name: str) -> None:
    files = _synth(_config_map(name))
    assert list(files) == [f"configmap-{name}.yaml"]
    assert yaml.safe_load(files[f"configmap-{name}.yaml"])["metadata"]["name"] == name


def test_two_objects_for_one_file_are_refused() -> None:
    with pytest.raises(ValueError, match=r"two objects would be written to configmap-settings\.yaml"):
        _synth(_config_map("settings", namespace="team-a"), _config_map("settings", namespace="team-b"))


def test_other_cdk8s_constructs_synthesize_alongside() -> None:
    app = cdk8s.App()
    chart = ManifestChart(app, "test")
    _Maps(chart, "maps", manifests=[_config_map("from-component")])
    chart.include_manifests()
    cdk8s.ApiObject(chart, "plain", api_version="v1", kind="ConfigMap", metadata={"name": "plain"})
    files = manifest_files(app.synth_yaml())
    assert sorted(files) == ["configmap-from-component.yaml", "configmap-plain.yaml"]


def test_manifests_after_the_handover_are_refused() -> None:
    app = cdk8s.App()
    chart = ManifestChart(app, "late")
    chart.include_manifests()
    with pytest.raises(RuntimeError, match="chart late: its manifests were already handed to cdk8s"):
        chart.add_manifest(_config_map("too-late"))


def test_a_component_needs_a_manifest_chart() -> None:
    app = cdk8s.App()
    with pytest.raises(TypeError, match="_Maps 'maps' must be created inside a ManifestChart"):
        _Maps(cdk8s.Chart(app, "plain"), "maps", manifests=[])


def test_nested_components_reach_the_same_chart() -> None:
    app = cdk8s.App()
    chart = ManifestChart(app, "nested")
    outer = _Maps(chart, "outer", manifests=[_config_map("outer")])
    _Maps(outer, "inner", manifests=[_config_map("inner")])
    chart.include_manifests()
    assert sorted(manifest_files(app.synth_yaml())) == ["configmap-inner.yaml", "configmap-outer.yaml"]
