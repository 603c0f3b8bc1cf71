"""The platform as one Helm chart, dist/helm/<platform>/, from what the constructs rendered for each
environment.

- `templates/<object>.yaml`: one per object any environment has (mlplatform.helm.plan, .templates);
- `templates/_helpers.tpl`: which combination of the feature switches (SWITCHES) the values set;
- `values-<env>.yaml`: `environment: <env>` and, under the key `<env>`, `spec` (the environment's overlay as
  validated, defaults included), `objects` (per combination of the feature switches, per object the
  environment then has: what the synth computed that no spec field holds as is) and `refused` (the
  combinations the synth refuses, with its reason). Every combination is rendered by the synth itself (the
  caller passes them in as Variants), so a switch flipped in the values adds or removes exactly the objects
  the synth would. Each environment's values sit under their own key because Helm merges a values file into
  values.yaml map by map: keys of the default's maps would otherwise leak into another environment;
- `values.yaml`: the first environment's values, Helm's default;
- `values.schema.json`: the overlay's JSON Schema as pydantic generates it from the spec's models;
- `Chart.yaml`: version 1.0.0 with the chart's content digest as build metadata (`make helm` packages it with
  the commit added: mlplatform.helm's callers in tools/helmchart/).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml

from mlplatform.helm.plan import Computed, Spec, plan_object
from mlplatform.helm.templates import helpers, template
from mlplatform.schema import Environment
from mlplatform.schema.errors import FieldPath
from mlplatform.schema.overlay import Features, Overlay

HELM_DIR = "helm"
CHART_VERSION = "1.0.0"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: The overlay's feature switches (field paths, YAML names): the values hold every combination of them.
SWITCHES: tuple[FieldPath, ...] = (
    *(("features", str(f.alias)) for f in Features.model_fields.values()),
    ("jobs", "enabled"),
)


@dataclass(frozen=True)
class Variant:
    """One environment as the synth renders it with the switches set to `switches` (SWITCHES' order):
    its manifests and its spec, or the synth's refusal of that combination."""

    switches: tuple[bool, ...]
    spec: dict[str, Any] | None = None
    files: dict[str, str | bytes] | None = None
    refused: str | None = None


def switches_of(env: Environment) -> tuple[bool, ...]:
    """The environment's switches as its overlay sets them."""
    return tuple(bool(_dig(spec_values(env), path)) for path in SWITCHES)


def switch_key(switches: tuple[bool, ...]) -> str:
    """The values' key of one combination: `features.serviceMonitor=false,...` (what _helpers.tpl prints)."""
    return ",".join(
        f"{'.'.join(map(str, p))}={str(on).lower()}" for p, on in zip(SWITCHES, switches, strict=True)
    )


def chart_folder(envs: list[Environment]) -> str:
    """dist/<this>: helm/<platform name>."""
    return f"{HELM_DIR}/{envs[0].platform.name}"


def values_key(env: Environment) -> str:
    """The environment's key in the values: <env>, or <env>-<cluster> for one of several clusters."""
    return env.folder.replace("/", "-")


def values_name(env: Environment) -> str:
    """The environment's values file: values-<env>.yaml (values-<env>-<cluster>.yaml for one of several)."""
    return f"values-{values_key(env)}.yaml"


def spec_values(env: Environment) -> dict[str, Any]:
    """The environment's overlay as the chart's `spec` value: validated, defaults included, by YAML name."""
    dumped: dict[str, Any] = env.overlay.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def render_chart(
    envs: list[Environment],
    folders: dict[str, dict[str, str | bytes]],
    variants: dict[str, list[Variant]],
) -> dict[str, dict[str, str | bytes]]:
    """dist/helm/<platform>/ and its templates/ folder: folder -> file name -> content. `variants`: per
    environment folder, every other combination of the switches as the synth renders it."""
    platform = envs[0].platform.name
    every = {  # each environment's renderings, its own switches first, then by switches
        env.folder: [
            Variant(switches=switches_of(env), spec=spec_values(env), files=folders[env.folder]),
            *sorted(variants.get(env.folder, []), key=lambda v: v.switches),
        ]
        for env in envs
    }
    # one rendering per environment and combination the synth accepts: "<folder> <switch key>"
    parsed: dict[str | bytes, Any] = {}  # the combinations share most files: each text is parsed once
    rendered = {
        _rendering(f, v): _objects(v.files, parsed)
        for f, vs in every.items()
        for v in vs
        if v.files is not None
    }
    # A spec without its switches (booleans are never references): one Spec for all of an environment's
    # combinations, so the planner plans an object no switch changes once per environment.
    specs: dict[str, Spec] = {}
    distinct: dict[str, Spec] = {}
    for folder, vs in every.items():
        for v in vs:
            if v.spec is not None:
                unswitched = _without(v.spec, SWITCHES)
                key = json.dumps(unswitched, sort_keys=True)
                specs[_rendering(folder, v)] = distinct.setdefault(key, Spec.of(unswitched))
    objects: dict[str, dict[str, Any]] = {key: {} for key in rendered}
    templates: dict[str, str] = {"_helpers.tpl": helpers(platform, SWITCHES)}
    for name in sorted({n for found in rendered.values() for n in found}):
        having = {key: found[name] for key, found in rendered.items() if name in found}
        computed = Computed()
        templates[f"{name}.yaml"] = template(name, plan_object(name, having, specs, computed), platform)
        for key in having:
            objects[key][name] = computed.by_environment.get(key, {})
    files: dict[str, str] = {
        "values.schema.json": json.dumps(
            values_schema([values_key(e) for e in envs]), indent=2, sort_keys=True
        )
        + "\n"
    }
    for env in envs:
        shared: dict[str, Any] = {}  # the same entry in several combinations: written once, then aliased
        by_switches = sorted(every[env.folder], key=lambda v: v.switches)
        own = {
            "environment": values_key(env),
            values_key(env): {
                "spec": spec_values(env),
                "objects": {
                    switch_key(v.switches): {
                        name: shared.setdefault(_entry_key(name, entry), entry)
                        for name, entry in objects[_rendering(env.folder, v)].items()
                    }
                    for v in by_switches
                    if v.files is not None
                },
                "refused": {switch_key(v.switches): v.refused for v in by_switches if v.refused is not None},
            },
        }
        body = _dump(own)
        files[values_name(env)] = _values_header(f"the {env.folder} environment", platform) + body
        if env is envs[0]:
            files["values.yaml"] = (
                _values_header(f"Helm's default, the {env.folder} environment", platform) + body
            )
    digest = hashlib.sha256()
    for name, content in sorted([*files.items(), *(("templates/" + n, c) for n, c in templates.items())]):
        digest.update(f"{name}\0{content}\0".encode())
    files["Chart.yaml"] = _chart_yaml(platform, [values_key(e) for e in envs], digest.hexdigest()[:12])
    folder = chart_folder(envs)
    chart: dict[str, dict[str, str | bytes]] = {
        folder: dict(sorted(files.items())),
        f"{folder}/templates": dict(templates.items()),
    }
    return chart


def _rendering(folder: str, variant: Variant) -> str:
    return f"{folder} {switch_key(variant.switches)}"


def _entry_key(name: str, entry: Any) -> str:
    return name + json.dumps(entry, sort_keys=True)


def _without(values: dict[str, Any], paths: tuple[FieldPath, ...]) -> dict[str, Any]:
    """A copy of `values` without the fields at `paths`."""
    copied: dict[str, Any] = json.loads(json.dumps(values))
    for path in paths:
        node = _dig(copied, path[:-1])
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return copied


def _dig(values: dict[str, Any], path: FieldPath) -> Any:
    node: Any = values
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def values_schema(environments: list[str]) -> dict[str, Any]:
    """The values' JSON Schema. Each environment's `spec` is the overlay's schema as pydantic generates it
    from the spec's models (the field rules the synth applies; its checks across fields and files stay the
    synth's); `objects` is what the synth computed; the chosen environment's values must be there."""
    overlay = Overlay.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    definitions = overlay.pop("$defs", {})
    definitions["Overlay"] = overlay
    definitions["EnvironmentValues"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["spec", "objects", "refused"],
        "properties": {
            "spec": {"$ref": "#/$defs/Overlay"},
            "objects": {
                "description": (
                    "Per combination of the feature switches, per object the environment then has: "
                    "JSON pointer -> the value the synth computed"
                ),
                "type": "object",
                "additionalProperties": {"type": "object", "additionalProperties": {"type": "object"}},
            },
            "refused": {
                "description": "The combinations of the feature switches the synth refuses, with its reason",
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
        },
    }
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "Values of the platform's chart",
        "type": "object",
        "additionalProperties": False,
        "required": ["environment"],
        "properties": {
            "environment": {"description": "Which environment to render", "enum": environments},
            **{env: {"$ref": "#/$defs/EnvironmentValues"} for env in environments},
        },
        "allOf": [
            {"if": {"properties": {"environment": {"const": env}}}, "then": {"required": [env]}}
            for env in environments
        ],
        "$defs": definitions,
    }


def _objects(files: dict[str, str | bytes], parsed: dict[str | bytes, Any]) -> dict[str, dict[str, Any]]:
    """Object name (file name without .yaml) -> the object, for every manifest of an environment's folder
    (`parsed`: text -> object, shared between calls; nothing changes the objects)."""
    found = {}
    for name, content in files.items():
        if name.endswith(".yaml"):
            if content not in parsed:
                parsed[content] = yaml.load(content, Loader=_LOADER)  # noqa: S506 (a safe loader)
            found[name.removesuffix(".yaml")] = parsed[content]
    return found


def _chart_yaml(platform: str, environments: list[str], digest: str) -> str:
    chart = {
        "apiVersion": "v2",
        "name": platform,
        "description": (
            f"The {platform} platform, one environment per values file ({', '.join(environments)}): "
            "`helm template -f values-<env>.yaml` gives dist/<env>/"
        ),
        "type": "application",
        "version": f"{CHART_VERSION}+{digest}",
        "appVersion": digest,
    }
    return "# Generated by `make synth` (constructs/mlplatform/helm/); do not edit.\n" + _dump(chart)


def _values_header(what: str, platform: str) -> str:
    return (
        f"# Values of the {platform} chart: {what}.\n"
        "# Generated by `make synth` from the overlay: edit the overlay, not this file.\n"
        "# <env>.spec: the overlay as validated (values.schema.json holds its field rules).\n"
        "# <env>.objects: per combination of the feature switches (features.*, jobs.enabled), per object\n"
        "#   the environment then has, what the synth computed that no spec field holds as is (JSON\n"
        "#   pointer -> value), and `true` marks for the keys only some renderings have; an entry the same\n"
        "#   in several combinations is written once and aliased (&id / *id).\n"
        "# <env>.refused: the combinations of the switches the synth refuses, with its reason.\n"
    )


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Quotes the strings YAML 1.1 readers (Helm's) take for booleans that PyYAML writes plain; writes a
    string of several lines as a literal block."""


def _represent_str(dumper: yaml.BaseDumper, value: str) -> yaml.Node:
    style = '"' if value in {"y", "Y", "n", "N"} else "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(value: Any) -> str:
    return yaml.dump(
        value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=False
    )
