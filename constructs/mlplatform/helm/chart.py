"""The platform as one Helm chart, dist/helm/<platform>/, from what the constructs rendered for each
environment.

- `templates/<object>.yaml`: one per object any environment has (mlplatform.helm.plan, .templates);
- `values-<env>.yaml`: `environment: <env>` and, under the key `<env>`, `spec` (the environment's overlay as
  validated, defaults included) and `objects` (per object the environment has: what the synth computed that
  no spec field holds as is). Each environment's values sit under their own key because Helm merges a values
  file into values.yaml map by map: keys of the default's maps would otherwise leak into another environment;
- `values.yaml`: the first environment's values, Helm's default;
- `values.schema.json`: the overlay's JSON Schema as pydantic generates it from the spec's models;
- `Chart.yaml`: version 1.0.0 with the chart's content digest as build metadata (`make helm` packages it with
  the commit added: mlplatform.helm's callers in tools/helmchart/).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from mlplatform.helm.plan import Computed, Spec, plan_object
from mlplatform.helm.templates import template
from mlplatform.schema import Environment
from mlplatform.schema.overlay import Overlay

HELM_DIR = "helm"
CHART_VERSION = "1.0.0"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    envs: list[Environment], folders: dict[str, dict[str, str | bytes]]
) -> dict[str, dict[str, str | bytes]]:
    """dist/helm/<platform>/ and its templates/ folder: folder -> file name -> content."""
    platform = envs[0].platform.name
    rendered = {env.folder: _objects(folders[env.folder]) for env in envs}
    specs = {env.folder: Spec.of(spec_values(env)) for env in envs}
    objects: dict[str, dict[str, Any]] = {env.folder: {} for env in envs}
    templates: dict[str, str] = {}
    for name in sorted({n for found in rendered.values() for n in found}):
        having = {folder: found[name] for folder, found in rendered.items() if name in found}
        computed = Computed()
        templates[f"{name}.yaml"] = template(name, plan_object(name, having, specs, computed))
        for folder in having:
            objects[folder][name] = computed.by_environment.get(folder, {})
    files: dict[str, str] = {
        "values.schema.json": json.dumps(
            values_schema([values_key(e) for e in envs]), indent=2, sort_keys=True
        )
        + "\n"
    }
    for env in envs:
        own = {
            "environment": values_key(env),
            values_key(env): {"spec": spec_values(env), "objects": objects[env.folder]},
        }
        files[values_name(env)] = _values_file(own, f"the {env.folder} environment", platform)
        if env is envs[0]:
            files["values.yaml"] = _values_file(
                own, f"Helm's default, the {env.folder} environment", platform
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
        "required": ["spec", "objects"],
        "properties": {
            "spec": {"$ref": "#/$defs/Overlay"},
            "objects": {
                "description": "Per object the environment has: JSON pointer -> the value the synth computed",
                "type": "object",
                "additionalProperties": {"type": "object"},
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


def _objects(files: dict[str, str | bytes]) -> dict[str, dict[str, Any]]:
    """Object name (file name without .yaml) -> the object, for every manifest of an environment's folder."""
    found = {}
    for name, content in files.items():
        if name.endswith(".yaml"):
            found[name.removesuffix(".yaml")] = yaml.load(content, Loader=_LOADER)  # noqa: S506 (a safe loader)
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


def _values_file(values: dict[str, Any], what: str, platform: str) -> str:
    header = (
        f"# Values of the {platform} chart: {what}.\n"
        "# Generated by `make synth` from the overlay: edit the overlay, not this file.\n"
        "# <env>.spec: the overlay as validated (values.schema.json holds its field rules).\n"
        "# <env>.objects: per object the environment has, what the synth computed that no spec field holds\n"
        "#   as is (JSON pointer -> value), and `true` marks for the keys only some environments have.\n"
    )
    return header + _dump(values)


class _Dumper(yaml.SafeDumper):
    """Quotes the strings YAML 1.1 readers (Helm's) take for booleans that PyYAML writes plain; writes a
    string of several lines as a literal block."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if value in {"y", "Y", "n", "N"} else "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(value: Any) -> str:
    return yaml.dump(
        value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=False
    )
