"""How the chart's templates are planned (mlplatform.helm.plan): which values become references to the spec,
which stay computed per environment, and which keys render under a condition. The whole chart against
dist/ with the real helm is tests/tools/helmchart/."""

from __future__ import annotations

from typing import Any

from mlplatform.helm.plan import Computed, Entry, Literal, Mapping_, Reference, Spec, plan_object
from mlplatform.helm.templates import template

SPECS = {
    "dev": Spec.of({"namespace": "team-dev", "redis": {"replicas": 1, "size": "1Gi"}, "madeBy": "platform"}),
    "prod": Spec.of(
        {"namespace": "team-prod", "redis": {"replicas": 3, "size": "1Gi"}, "madeBy": "platform"}
    ),
}


def _entry(node: Any, *keys: str) -> Entry:
    for key in keys[:-1]:
        node = next(e for e in node.entries if e.key == key).node
    return next(e for e in node.entries if e.key == keys[-1])


def _plan(dev: dict[str, Any], prod: dict[str, Any]) -> tuple[Any, Computed]:
    computed = Computed()
    return plan_object("statefulset-redis", {"dev": dev, "prod": prod}, SPECS, computed), computed


def test_a_value_a_spec_field_holds_in_every_environment_reads_that_field() -> None:
    node, computed = _plan(
        {"metadata": {"namespace": "team-dev"}, "spec": {"replicas": 1, "host": "redis.team-dev.svc"}},
        {"metadata": {"namespace": "team-prod"}, "spec": {"replicas": 3, "host": "redis.team-prod.svc"}},
    )
    assert _entry(node, "metadata", "namespace").node == Reference("$v.spec.namespace")
    assert _entry(node, "spec", "replicas").node == Reference("$v.spec.redis.replicas")
    assert _entry(node, "spec", "host").node == Reference('printf "%s%s%s" "redis." $v.spec.namespace ".svc"')
    assert computed.by_environment == {}


def test_a_coincidence_is_not_a_reference() -> None:
    node, computed = _plan(
        # "platform" inside a word; one short string everywhere under another name; a number no field holds
        {"metadata": {"labels": {"part-of": "mlplatform"}}, "spec": {"storage": "1Gi", "weight": 1.5}},
        {"metadata": {"labels": {"part-of": "mlplatform"}}, "spec": {"storage": "1Gi", "weight": 7}},
    )
    assert _entry(node, "metadata") == Entry(
        key="metadata", node=Literal({"labels": {"part-of": "mlplatform"}})
    )
    assert _entry(node, "spec", "storage").node == Literal("1Gi")
    assert _entry(node, "spec", "weight").node == Reference('index $o "/spec/weight"')
    assert computed.by_environment == {"dev": {"/spec/weight": 1.5}, "prod": {"/spec/weight": 7}}


def test_the_same_value_everywhere_reads_a_field_of_its_name_only() -> None:
    node, _ = _plan({"spec": {"size": "1Gi"}}, {"spec": {"size": "1Gi"}})
    assert _entry(node, "spec", "size").node == Reference("$v.spec.redis.size")


def test_a_key_only_some_environments_have_renders_under_a_condition() -> None:
    node, computed = _plan(
        {"spec": {"replicas": 1}},
        {"spec": {"replicas": 3, "volumes": [{"name": "tmp"}]}},
    )
    entry = _entry(node, "spec", "volumes")
    assert entry.condition == "/spec/volumes"
    assert computed.by_environment == {"prod": {"/spec/volumes": True}}
    text = template("statefulset-redis", node, "mlplatform")
    assert '{{- if hasKey $o "/spec/volumes" }}' in text
    assert isinstance(node, Mapping_)


def test_a_string_that_looks_like_a_template_is_printed_by_the_template() -> None:
    node, _ = _plan({"data": {"t": "{{ .Values.x }}"}}, {"data": {"t": "{{ .Values.x }}"}})
    assert '"t": {{ "{{ .Values.x }}" | toJson }}' in template("configmap-t", node, "mlplatform")


def test_renderings_that_share_an_object_and_a_spec_each_get_its_computed_values() -> None:
    shared = {"spec": {"replicas": 1, "volumes": [{"name": "tmp"}]}}
    specs = {"dev": SPECS["dev"], "dev switched": SPECS["dev"], "prod": SPECS["prod"]}
    computed = Computed()
    rendered = {"dev": shared, "dev switched": shared, "prod": {"spec": {"replicas": 3}}}
    node = plan_object("statefulset-redis", rendered, specs, computed)
    assert _entry(node, "spec", "volumes").condition == "/spec/volumes"
    marked = {"/spec/volumes": True}
    assert computed.by_environment == {"dev": marked, "dev switched": marked}
