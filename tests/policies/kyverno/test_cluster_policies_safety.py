"""dist/cluster-policies/ is safe to install: the real Kyverno CLI denies nothing of other projects' installs.

The third-party manifests come from their projects' pinned Go modules (tools/versions.env), each in its own,
unlabelled namespace as it would be installed:
- Argo CD: `manifests/install.yaml` (namespace argocd).
- KEDA: every file the `config/default` kustomization lists through its folders' kustomizations (CRDs,
  namespace, RBAC, operator, metrics server, webhooks), without kustomize's label transformer (namespace
  keda).
- External Secrets: its module ships a Helm chart and no rendered manifests, so the chart's own rendered
  snapshots (`deploy/charts/external-secrets/tests/__snapshot__/*.snap`: controller, webhook, cert-controller,
  CRDs at default values) with `NAMESPACE` set to external-secrets.
- cert-manager: its module also ships only a Helm chart (templates cannot be read without Helm), so its
  Namespace (`deploy/manifests/01-namespace.yaml`), its CRDs (`deploy/crds/`) and the plain Deployment its
  end-to-end tests install (`make/config/bind/deployment.yaml`), in namespace cert-manager.
- The platform's add-ons (dist/infrastructure/<cluster>/), each rendered as Argo CD applies it from its pinned
  module (tools/addons/: helm template or kustomize build with the Application's values), hooks included.
The same workloads moved into a managed namespace are denied, so "zero failures" is not "nothing evaluated".
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from addons.collect import render_all
from mlplatform import cluster_policies
from policy_check import kyverno

REPO = Path(__file__).resolve().parents[3]

Objects = list[dict[str, Any]]
Fetch = Callable[[str], Path]  # versions.env key -> the pinned module's folder


def docs(path: Path) -> Objects:
    loaded = yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    return [d for d in loaded if isinstance(d, dict) and d.get("kind")]


def in_namespace(objects: Objects, ns: str) -> Objects:
    """Namespaced objects without a namespace get the one they are installed into (kubectl apply -n)."""
    out = []
    for obj in objects:
        obj = copy.deepcopy(obj)
        cluster_scoped = obj["kind"] in ("Namespace", "CustomResourceDefinition") or obj["kind"].startswith(
            "Cluster"
        )
        if not cluster_scoped:
            obj["metadata"].setdefault("namespace", ns)
        out.append(obj)
    return out


def argocd(module_dir: Fetch) -> Objects:
    return in_namespace(docs(module_dir("ARGOCD") / "manifests/install.yaml"), "argocd")


def keda(module_dir: Fetch) -> Objects:
    config = module_dir("KEDA") / "config"
    objects: Objects = []
    for folder in yaml.safe_load((config / "default/kustomization.yaml").read_text())["resources"]:
        base = (config / "default" / folder).resolve()
        for name in yaml.safe_load((base / "kustomization.yaml").read_text()).get("resources") or []:
            path = base / name
            for file in sorted(path.rglob("*.yaml")) if path.is_dir() else [path]:
                if file.name != "kustomization.yaml":
                    objects += docs(file)
    return in_namespace(objects, "keda")


def external_secrets(module_dir: Fetch) -> Objects:
    snaps = module_dir("EXTERNAL_SECRETS") / "deploy/charts/external-secrets/tests/__snapshot__"
    objects: Objects = []
    for snap in sorted(snaps.glob("*.snap")):
        for cases in yaml.safe_load(snap.read_text()).values():
            for text in cases.values():
                objects += [d for d in yaml.safe_load_all(text.replace("NAMESPACE", "external-secrets")) if d]
    return in_namespace(objects, "external-secrets")


def cert_manager(module_dir: Fetch) -> Objects:
    root = module_dir("CERT_MANAGER")
    objects = docs(root / "deploy/manifests/01-namespace.yaml")
    for crd in sorted((root / "deploy/crds").glob("*.yaml")):
        objects += docs(crd)
    objects += docs(root / "make/config/bind/deployment.yaml")
    return in_namespace(objects, "cert-manager")


PROJECTS = {
    "argocd": argocd,
    "keda": keda,
    "external-secrets": external_secrets,
    "cert-manager": cert_manager,
}
POD_KINDS = kyverno.POD_KINDS


def addons() -> dict[str, Objects]:
    """Each add-on Application of dist/infrastructure/ -> what Argo CD applies for it (hooks included)."""
    return {
        r.application: [*r.objects, *r.hooks]
        for renders in render_all(REPO / "dist").values()
        for r in renders
    }


@pytest.fixture(scope="module")
def installs(cli: Any) -> dict[str, Objects]:
    return {**{name: load(cli.pinned_module) for name, load in PROJECTS.items()}, **addons()}


def test_every_add_on_is_among_the_installs(installs: dict[str, Objects]) -> None:
    apps = {p.stem.removeprefix("application-") for p in (REPO / "dist" / "infrastructure").glob("*/*.yaml")}
    assert apps and apps <= set(installs)


def workloads(objects: Objects) -> Objects:
    return [o for o in objects if o["kind"] in POD_KINDS]


def test_every_install_has_workloads(installs: dict[str, Objects]) -> None:
    for name, objects in installs.items():
        assert workloads(objects), f"{name}: no workload read from its module; the test would prove nothing"


def test_shipped_policies_deny_nothing_in_other_projects_namespaces(
    installs: dict[str, Objects], tmp_path: Path, cli: Any
) -> None:
    # everything but the CRDs (inert, cluster-scoped and most of the bytes: the CLI compiles every policy
    # once per resource)
    objects = [o for objs in installs.values() for o in objs if o["kind"] != "CustomResourceDefinition"]
    # one of each: an add-on on two clusters renders the same objects twice (one cluster here)
    objects = list(
        {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}.values()
    )
    # as on a cluster: each project's namespace exists, without the managed label; kube-system too
    names = {o["metadata"].get("namespace") for o in objects} | {*PROJECTS, "kube-system"}
    names -= {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}  # (KEDA's own)
    spaces = [cli.namespace(n) for n in sorted(n for n in names if n)]
    results = cli.apply(tmp_path, cli.shipped_policies(), objects, spaces)
    assert not cli.by_result(results, "fail") and not cli.by_result(results, "error"), results
    assert not results  # not selected at all: no rule even ran on them


def test_protected_namespaces_are_never_selected_even_when_labelled(
    installs: dict[str, Objects], tmp_path: Path, cli: Any
) -> None:
    objects = workloads(installs["argocd"])
    results = cli.apply(tmp_path, cli.shipped_policies(), objects, [cli.managed("argocd")])
    assert not results, "a managed label on argocd must not bring Argo CD under the platform's policies"


def test_the_same_workloads_in_a_managed_namespace_are_denied(
    installs: dict[str, Objects], tmp_path: Path, cli: Any
) -> None:
    moved = []
    for name, objects in installs.items():
        for obj in workloads(objects):
            obj = copy.deepcopy(obj)
            obj["metadata"]["namespace"] = "mlplatform-dev"
            obj["metadata"]["name"] = f"{name}-{obj['metadata']['name']}"
            moved.append(obj)
    results = cli.apply(tmp_path, cli.shipped_policies(), moved, [cli.managed("mlplatform-dev")])
    denied = {n for _, _, n in cli.by_result(results, "fail")}
    assert denied == {o["metadata"]["name"] for o in moved}


def test_every_shipped_policy_is_scoped_to_managed_unprotected_namespaces(cli: Any) -> None:
    protected = {"kube-system", "argocd", "ingress-nginx", "gateway-system", "monitoring"}
    policies = cluster_policies.load(cli.shipped_policies())
    assert policies
    for policy in policies.values():
        assert not cluster_policies.scope_problems(policy, protected), policy.path


def test_a_policy_without_the_exclusion_fails_synth(tmp_path: Path) -> None:
    source = REPO / "policies/kyverno/require-probes/require-probes.yaml"
    doc = yaml.safe_load(source.read_text())
    doc["spec"]["matchConstraints"]["namespaceSelector"].pop("matchExpressions")
    (tmp_path / "policies/kyverno/require-probes").mkdir(parents=True)
    (tmp_path / "policies/kyverno/require-probes/require-probes.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "policies/exceptions.yaml").write_text("waivers: []\n")
    with pytest.raises(cluster_policies.ClusterPolicyError, match="does not exclude argocd, kube-system"):
        cluster_policies.render(tmp_path, protected={"argocd", "kube-system"}, today=dt.date.today())


def test_pod_security_may_fail_open_because_managed_namespaces_enforce_the_profile_too() -> None:
    """pod-security's webhook fails open (it is Kyverno's shared webhook); the built-in admission backs it."""
    doc = yaml.safe_load((REPO / "policies/kyverno/pod-security/pod-security.yaml").read_text())
    assert doc["spec"]["webhookConfiguration"]["failurePolicy"] == "Ignore"
    managed = 0
    for path in sorted((REPO / "dist").glob("*/namespace-*.yaml")):
        labels = yaml.safe_load(path.read_text())["metadata"]["labels"]
        if labels.get("mlplatform.io/managed") == "true":
            managed += 1
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted", path
            assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.33", path
    assert managed >= 3
