"""The chart under dist/helm/ against dist/ itself, with the pinned helm (tools/helmchart).

`helm template` with each environment's values gives that environment's objects exactly; a value of the spec
set through Helm renders what the synth renders for the same overlay change; a feature switch flipped through
Helm adds and removes what the synth does for the same overlay change, in every combination, and a
combination the synth refuses Helm refuses with the synth's reason; and values the synth refuses, Helm
refuses too (values.schema.json).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from helmchart.check import chart_of, check, compare, expected, template
from mlplatform.schema import SpecError, load_all
from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.synth import synthesize

REPO = Path(__file__).resolve().parents[3]
DIST = REPO / "dist"
HELM = REPO / ".tools" / "bin" / "helm"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def helm() -> Path:
    if not HELM.is_file():
        pytest.fail(f"{HELM} is missing: run tools/setup/renderers.sh (make test-setup does)")
    return HELM


def test_helm_template_gives_every_environment_of_dist(helm: Path) -> None:
    results = check(helm, DIST)  # also lints --strict with every values file (raises if not clean)
    assert [r.environment for r in results] == ["dev", "prod", "stage"]
    for result in results:
        assert result.problems == ()
        assert result.objects == len(list((DIST / result.environment).glob("*.yaml")))


def test_an_object_the_chart_does_not_give_back_is_named(helm: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    shutil.copytree(DIST, dist)
    deployment = dist / "stage" / "deployment-inference.yaml"
    obj = yaml.safe_load(deployment.read_text())
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "3"
    deployment.write_text(yaml.safe_dump(obj))
    (dist / "prod" / "service-redis.yaml").unlink()
    problems = {r.environment: r.problems for r in check(helm, dist)}
    assert problems["dev"] == ()
    assert problems["stage"] == (
        "Deployment/mlplatform-stage/inference: differs at "
        "/spec/template/spec/containers/0/resources/limits/cpu ('3' != '2')",
    )
    assert problems["prod"] == ("extra Service/mlplatform-prod/redis",)


def _spec_copy(root: Path, change: Callable[[dict[str, Any]], None], env: str = "stage") -> Path:
    """overlays/ and the model catalog, with one environment's overlay changed."""
    shutil.copytree(REPO / "overlays", root / "overlays")
    (root / Path(CATALOG_FILE).parent).mkdir(parents=True)
    shutil.copy(REPO / CATALOG_FILE, root / CATALOG_FILE)
    path = root / "overlays" / f"{env}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def test_spec_values_set_through_helm_render_what_the_synth_renders(helm: Path, tmp_path: Path) -> None:
    changes = {
        "namespace": "mlplatform-stage2",
        "services.inference.host": "inference.stage2.example.org",
        "services.inference.imageDigest": DIGEST,
        "services.inference.autoscaling.maxReplicas": 3,
        "redis.storageSize": "3Gi",
        "redis.imageDigest": DIGEST,
    }

    def change(data: dict[str, Any]) -> None:
        for dotted, value in changes.items():
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node[key]
            assert node[last] != value
            node[last] = value

    spec = _spec_copy(tmp_path / "spec", change)
    synthesize(spec, out=tmp_path / "dist")
    want = expected(tmp_path / "dist" / "stage")
    assert want != expected(DIST / "stage")
    chart = chart_of(DIST)
    sets = [arg for dotted, value in changes.items() for arg in ("--set", f"stage.spec.{dotted}={value}")]
    assert compare(want, template(helm, chart, chart / "values-stage.yaml", *sets)) == []


#: The overlay's feature switches, as its README names them (the chart's values hold every combination).
SWITCHES = ("features.serviceMonitor", "features.topologySpread", "jobs.enabled")


def _switches(env: str) -> tuple[bool, ...]:
    data = yaml.safe_load((REPO / "overlays" / f"{env}.yaml").read_text())
    found = []
    for dotted in SWITCHES:
        node: Any = data
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        found.append(bool(node))
    return tuple(found)


FLIPPED = [
    (env, combo)
    for env in ("dev", "prod", "stage")
    for combo in itertools.product((False, True), repeat=len(SWITCHES))
    if combo != _switches(env)
]


@pytest.mark.parametrize(
    ("env", "combo"),
    FLIPPED,
    ids=[f"{e}-" + "".join("1" if on else "0" for on in c) for e, c in FLIPPED],
)
def test_feature_switches_set_through_helm_render_what_the_synth_renders(
    helm: Path, tmp_path: Path, env: str, combo: tuple[bool, ...]
) -> None:
    def change(data: dict[str, Any]) -> None:
        for dotted, on in zip(SWITCHES, combo, strict=True):
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = on

    spec = _spec_copy(tmp_path / "spec", change, env)
    chart = chart_of(DIST)
    sets = [
        a
        for d, on in zip(SWITCHES, combo, strict=True)
        for a in ("--set", f"{env}.spec.{d}={str(on).lower()}")
    ]
    try:
        synthesize(spec, out=tmp_path / "dist", only=[env])
    except SpecError as refused:
        with pytest.raises(Exception, match="the synth refuses these switches") as helm_refused:
            template(helm, chart, chart / f"values-{env}.yaml", *sets)
        file, _line, problem = refused.lines[0].split(":", 2)  # the line: where the test wrote the switch
        assert f"{file}:" in str(helm_refused.value)
        assert problem.strip() in str(helm_refused.value)
        return
    want = expected(tmp_path / "dist" / env)
    assert want != expected(DIST / env)
    assert compare(want, template(helm, chart, chart / f"values-{env}.yaml", *sets)) == []


REFUSED = {
    "a replica bound below 1": ("services.inference.autoscaling.minReplicas", -1, "minReplicas"),
    "a digest that is not sha256": ("services.inference.imageDigest", "sha256:xyz", "imageDigest"),
    "an unknown field": ("bogus", 1, "bogus"),
    "a quantity that is not one": ("redis.storageSize", "lots", "storageSize"),
    "a routing kind that does not exist": ("routing.kind", "Route", "routing"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_helm_refuses_values_the_synth_refuses(helm: Path, tmp_path: Path, case: str) -> None:
    dotted, value, field = REFUSED[case]

    def change(data: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value

    with pytest.raises(SpecError, match=field):
        load_all(_spec_copy(tmp_path / "spec", change))
    chart = chart_of(DIST)
    with pytest.raises(Exception, match=f"(?s)schema.*/stage/spec.*{field}") as refused:
        template(helm, chart, chart / "values-stage.yaml", "--set", f"stage.spec.{dotted}={value}")
    assert type(refused.value).__name__ == "ChartError"
