"""Synthesis: load the spec, build one cdk8s App per environment, write dist/."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path

import cdk8s

from mlplatform import cluster_policies, jsii_structs, signing_policy
from mlplatform.argocd import ARGOCD_DIR, POLICIES_DIR, ArgoCdChart, retry
from mlplatform.chart import EnvironmentChart
from mlplatform.diagram import architecture_markdown
from mlplatform.helm import SWITCHES, Variant, render_chart, spec_values, switches_of
from mlplatform.infrastructure import (
    INFRASTRUCTURE_DIR,
    InfrastructureChart,
    addons_of,
    clusters,
    load_versions,
)
from mlplatform.output import manifest_files, write_tree
from mlplatform.schema import Environment, SpecError
from mlplatform.schema import load_all as load_spec
from mlplatform.schema.signing import OVERLAYS_DIR, public_key_pem
from mlplatform.schema.source import Source

DIAGRAM_FILE = "ARCHITECTURE.md"


@dataclass(frozen=True)
class Rendered:
    """Folder -> file name -> content, for everything that goes under dist/."""

    folders: dict[str, dict[str, str | bytes]]


def load_all(repo_root: Path) -> list[Environment]:
    """Validate the platform spec and every overlay (before anything is written); every problem at once."""
    return load_spec(repo_root)


def render_environment(env: Environment) -> dict[str, str]:
    """Every object of one environment as cdk8s synthesizes it: file name -> YAML."""
    app = cdk8s.App()
    EnvironmentChart(app, env.name, env=env)
    return manifest_files(app.synth_yaml())


def render_switched(repo_root: Path, envs: list[Environment]) -> dict[str, list[Variant]]:
    """Per environment folder, every other combination of the feature switches (mlplatform.helm.SWITCHES)
    as the synth renders it, validated as if the overlay set them, or the synth's refusal: the chart's
    values hold them all, so flipping a switch in the values gives what the synth would."""
    found: dict[str, list[Variant]] = {env.folder: [] for env in envs}
    actual = {env.folder: switches_of(env) for env in envs}
    sources: dict[str, Source] = {}  # every combination reads the same files: each is parsed once
    for name in sorted({env.name for env in envs}):
        placed = [env for env in envs if env.name == name]
        for switches in itertools.product((False, True), repeat=len(SWITCHES)):
            wanted = [env for env in placed if actual[env.folder] != switches]
            if not wanted:
                continue
            try:
                switched = {name: dict(zip(SWITCHES, switches, strict=True))}
                loaded = load_spec(repo_root, switched=switched, sources=sources)
            except SpecError as err:
                for env in wanted:
                    found[env.folder].append(Variant(switches, refused="; ".join(err.lines)))
                continue
            by_folder = {env.folder: env for env in loaded}
            for env in wanted:
                variant = by_folder[env.folder]
                files: dict[str, str | bytes] = dict(render_environment(variant))
                found[env.folder].append(Variant(switches, spec=spec_values(variant), files=files))
    return found


def render_argocd(envs: list[Environment], versions: dict[str, str]) -> dict[str, str]:
    app = cdk8s.App()
    ArgoCdChart(app, ARGOCD_DIR, platform=envs[0].platform, envs=envs, versions=versions)
    return manifest_files(app.synth_yaml())


def render_infrastructure(
    envs: list[Environment], versions: dict[str, str]
) -> dict[str, dict[str, str | bytes]]:
    """infrastructure/<cluster> -> its files: the add-ons' Applications of each cluster that needs any."""
    platform = envs[0].platform
    folders: dict[str, dict[str, str | bytes]] = {}
    for cluster, on_cluster in clusters(envs).items():
        if not addons_of(platform, on_cluster):
            continue
        app = cdk8s.App()
        InfrastructureChart(
            app,
            cluster,
            platform=platform,
            server=on_cluster[0].server,
            envs=on_cluster,
            versions=versions,
            retry=retry(platform),
        )
        folders[f"{INFRASTRUCTURE_DIR}/{cluster}"] = dict(manifest_files(app.synth_yaml()))
    return folders


def protected_namespaces(envs: list[Environment]) -> set[str]:
    """Namespaces the cluster policies must never touch: the system's, Argo CD's and every peer's."""
    platform = envs[0].platform
    found = {"kube-system", platform.argocd.namespace, *(p.namespace for p in platform.peers.values())}
    return found | {p.namespace for e in envs for p in e.overlay.peers.values()}


def cluster_policy_files(repo_root: Path, envs: list[Environment]) -> dict[str, str | bytes]:
    """Copies of `policies/kyverno/<name>/<name>.yaml`, a PolicyException per live waiver, and the image
    signature policy rendered from the spec's signing key."""
    today = dt.datetime.now(dt.UTC).date()
    protected = protected_namespaces(envs)
    files = cluster_policies.render(repo_root, protected=protected, today=today)
    key = envs[0].platform.image_signing.public_key
    files[signing_policy.FILE] = signing_policy.render(
        public_key_pem=public_key_pem(repo_root, key), key_file=f"{OVERLAYS_DIR}/{key}", protected=protected
    )
    return files


def render(repo_root: Path, *, only: list[str] | None = None, lean_structs: bool = True) -> Rendered:
    """Every folder of dist/ in memory. `lean_structs=False` renders with jsii's own struct serializer (the
    same bytes, slower: a test compares the two, see mlplatform.jsii_structs)."""
    if lean_structs:
        jsii_structs.install()
    else:
        jsii_structs.uninstall()
    envs = load_all(repo_root)
    known = sorted({e.name for e in envs})
    for name in only or []:
        if name not in known:
            raise ValueError(f"--env {name!r}: no overlays/{name}.yaml; allowed: {known}")
    folders: dict[str, dict[str, str | bytes]] = {}
    for env in envs:
        if only and env.name not in only:
            continue
        files: dict[str, str | bytes] = dict(render_environment(env))
        files[DIAGRAM_FILE] = architecture_markdown(env)
        folders[env.folder] = files
    if not only:  # the chart holds every environment (a partial synth leaves dist/helm/ as it was)
        folders.update(render_chart(envs, folders, render_switched(repo_root, envs)))
    versions = load_versions()
    folders[ARGOCD_DIR] = dict(render_argocd(envs, versions))
    folders.update(render_infrastructure(envs, versions))
    folders[POLICIES_DIR] = cluster_policy_files(repo_root, envs)
    return Rendered(folders=folders)


def synthesize(repo_root: Path, *, out: Path, only: list[str] | None = None) -> Rendered:
    """Render (validating everything first), then write atomically. On any error `out` is untouched."""
    rendered = render(repo_root, only=only)
    write_tree(out, rendered.folders, replace_all=not only)
    return rendered
