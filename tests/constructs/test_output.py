"""Splitting cdk8s's YAML into one file per object (output.py), on objects made by typed constructs."""

from __future__ import annotations

from collections.abc import Callable

import cdk8s
import cdk8s_plus_33 as kplus
import pytest
import yaml
from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform.components.base import PlatformChart
from mlplatform.output import manifest_files
from mlplatform.synth import Rendered

from .conftest import is_chart


def _synth(build: Callable[[Construct], None]) -> dict[str, str]:
    app = cdk8s.App()
    build(PlatformChart(app, "test"))
    return manifest_files(app.synth_yaml())


def _config_map(scope: Construct, name: str, namespace: str = "team-a", **data: str) -> None:
    metadata = cdk8s.ApiObjectMetadata(name=name, namespace=namespace, labels={"app": name})
    kplus.ConfigMap(scope, f"{namespace}-{name}", metadata=metadata, data=data)


def test_every_file_holds_exactly_the_object_its_name_says(rendered: Rendered) -> None:
    for folder, files in rendered.folders.items():
        if folder == "cluster-policies" or is_chart(folder):  # policy copies named by policy; Helm templates
            continue
        for name, content in files.items():
            if not name.endswith(".yaml"):
                continue
            docs = list(yaml.safe_load_all(content))
            assert len(docs) == 1, f"{folder}/{name}"
            assert name == f"{docs[0]['kind'].lower()}-{docs[0]['metadata']['name']}.yaml", f"{folder}/{name}"


def test_objects_come_out_with_keys_sorted() -> None:
    files = _synth(lambda chart: _config_map(chart, "settings", zeta="1", alpha="two\nlines\n"))
    assert list(files) == ["configmap-settings.yaml"]
    text = files["configmap-settings.yaml"]
    assert yaml.safe_load(text)["data"] == {"zeta": "1", "alpha": "two\nlines\n"}
    assert text.index("alpha:") < text.index("zeta:")
    assert text.startswith("apiVersion: v1\nkind: ConfigMap\nmetadata:\n")


@pytest.mark.parametrize("name", ["yes", "123", "null", "0x1f"])
def test_names_that_yaml_must_quote_give_the_right_file(name: str) -> None:
    files = _synth(lambda chart: _config_map(chart, name))
    assert list(files) == [f"configmap-{name}.yaml"]
    assert yaml.safe_load(files[f"configmap-{name}.yaml"])["metadata"]["name"] == name


def test_two_objects_for_one_file_are_refused() -> None:
    def build(chart: Construct) -> None:
        _config_map(chart, "settings", namespace="team-a")
        _config_map(chart, "settings", namespace="team-b")

    with pytest.raises(ValueError, match=r"two objects would be written to configmap-settings\.yaml"):
        _synth(build)


def test_l1_l2_and_nested_objects_all_get_their_file() -> None:
    def build(chart: Construct) -> None:
        outer = Construct(chart, "outer")
        _config_map(outer, "from-l2")
        inner = Construct(outer, "inner")
        k8s.KubeConfigMap(inner, "l1", metadata=k8s.ObjectMeta(name="from-l1", namespace="team-a"))

    assert sorted(_synth(build)) == ["configmap-from-l1.yaml", "configmap-from-l2.yaml"]
