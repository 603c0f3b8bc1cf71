"""`runtime: kserve-serverless` through the gate (`make check`'s engine, real Kyverno and conftest) and
against the session's real kube-apiserver, with KServe's and Knative Serving's CRDs from their pinned Go
modules.

No KServe or Knative controller runs here: the InferenceServices are admitted (validated against KServe's CRD
and stored), nothing makes their revisions. What this shows: a serverless render of stage (scale to zero on
requests in flight, a scale-down delay), of prod (its canary as canaryTrafficPercent, scaling on request
rate) and of prod on the Istio mesh (Knative's activator and autoscaler allowed by their identities) passes
the gate with no finding and is accepted as a whole, in Argo CD's order; its NetworkPolicies let
Knative's activator and autoscaler reach the pods' queue-proxy and nothing else in; the held-out mutants
(a canary percentage over 100, a maximum scale the quota cannot hold, no maximum at all) are each stopped
with the rule's name; and what the render assumes of Knative (its field masks and feature flags, its
annotations, its queue-proxy's ports) is read from Knative's own source at the pinned version.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.components import kserve
from mlplatform.network import KNATIVE_CALLERS
from mlplatform.synth import synthesize
from testcluster import knative
from testcluster.apply import expected_warnings, install_crds, kinds_in
from testcluster.kubeapi import Kube
from testcluster.run import check_environment
from testcluster.versions import module_dir, pinned

from .conftest import REPO, env_findings, spec_copy

#: Test environment -> the committed overlay it starts from; `smesh` is prod's serverless render on the mesh.
ENVS = {"sstage": "stage", "sprod": "prod", "smesh": "prod"}
#: The peers' identities on the mesh (as in test_mesh_environment.py), prod's Gateway pods' own.
IDENTITIES = {
    "ingress-controller": "ingress-nginx",
    "metrics-scraper": "prometheus",
    "keda-operator": "keda-operator",
}
GATEWAY_IDENTITY = "public-istio"
DOMAIN = "models.example.com"
#: stage's route comes in through Knative's Kourier gateway (its standard labels) instead of ingress-nginx.
KOURIER = {"namespace": "kourier-system", "podLabels": {"app": "3scale-kourier-gateway"}}
AUTOSCALING = {
    "sstage": {
        "engine": "knative",
        "minReplicas": 0,
        "maxReplicas": 4,
        "signal": "inFlight",
        "scaleDownDelay": "5m",
    },
    "sprod": {"engine": "knative", "minReplicas": 2, "maxReplicas": 6, "signal": "requestRate"},
    "smesh": {"engine": "knative", "minReplicas": 2, "maxReplicas": 6, "signal": "requestRate"},
}
#: Room for two revisions at the maximum scale, each pod with its queue-proxy (the quota rule's count).
QUOTA = {
    "sstage": {"requestsCpu": "16", "limitsCpu": "40", "requestsMemory": "24Gi", "limitsMemory": "40Gi"},
    "sprod": {"requestsCpu": "32", "limitsCpu": "64", "requestsMemory": "64Gi", "limitsMemory": "64Gi"},
    "smesh": {
        "requestsCpu": "40",
        "limitsCpu": "80",
        "requestsMemory": "72Gi",
        "limitsMemory": "72Gi",
        "requestsEphemeralStorage": "40Gi",
        "limitsEphemeralStorage": "80Gi",
    },
}
KNATIVE_KINDS = {("serving.knative.dev", k) for k in ("Service", "Configuration", "Revision", "Route")}


def _overlay(root: Path, env: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((root / "overlays" / f"{env}.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def serverless_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """overlays/ with stage and prod as `runtime: kserve-serverless` (sstage, sprod), each in its own
    namespace, routed by KServe on prod's Gateway."""
    root = tmp_path_factory.mktemp("serverless-spec")
    spec_copy(root)
    gateway = _overlay(root, "prod")["routing"]
    sources = {env: _overlay(root, env) for env in set(ENVS.values())}
    platform_path = root / "overlays" / "platform.yaml"
    platform = yaml.safe_load(platform_path.read_text())
    for peer, account in IDENTITIES.items():  # their identities, for the environment on the mesh
        platform["peers"][peer]["serviceAccount"] = account
    platform_path.write_text(yaml.safe_dump(platform, sort_keys=False))
    for name, env in ENVS.items():
        data = copy.deepcopy(sources[env])
        data.update(runtime="kserve-serverless", namespace=f"{data['namespace']}-{name}")
        if name == "smesh":
            data["mesh"] = "istio"
            data["peers"]["ingress-controller"]["serviceAccount"] = GATEWAY_IDENTITY  # prod's Gateway pods
        data["routing"] = gateway | {"madeBy": "kserve", "ingressDomain": DOMAIN}
        data["quota"] |= QUOTA[name]
        if env == "stage":
            data.setdefault("peers", {})["ingress-controller"] = KOURIER
        for service, svc in data["services"].items():
            svc["host"] = f"{service}-{data['namespace']}.{DOMAIN}"  # KServe's domain template
            svc.pop("grpcHost", None)  # KServe's runtimes serve HTTP only
            svc.pop("replicas", None)
            svc["autoscaling"] = AUTOSCALING[name]
            if svc.get("canary"):
                svc["canary"].pop("replicas", None)  # Knative scales each revision
        (root / "overlays" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for env in ("dev", *sources):
        (root / "overlays" / f"{env}.yaml").unlink()
    return root


@pytest.fixture(scope="module")
def serverless_dist(serverless_spec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serverless-dist") / "dist"
    synthesize(serverless_spec, out=out)
    return out


def _docs(dist: Path, env: str) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted((dist / env).glob("*.yaml"))]


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("env", ENVS)
def test_the_serverless_render_passes_the_gate(
    serverless_spec: Path, serverless_dist: Path, env: str, tmp_path: Path
) -> None:
    assert env_findings(serverless_spec, serverless_dist, env, tmp_path) == []


@pytest.mark.parametrize("env", ENVS)
def test_one_serverless_inference_service_per_service_scaled_as_the_spec_says(
    serverless_spec: Path, serverless_dist: Path, env: str
) -> None:
    overlay = _overlay(serverless_spec, env)["services"]["inference"]
    docs = _docs(serverless_dist, env)
    isvc = _named(docs, "InferenceService", "inference")
    predictor = isvc["spec"]["predictor"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert "networking.kserve.io/visibility" not in isvc["metadata"]["labels"]  # KServe makes the route
    scaling = overlay["autoscaling"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (
        scaling["minReplicas"],
        scaling["maxReplicas"],
    )
    assert predictor["scaleMetric"] == {"inFlight": "concurrency", "requestRate": "rps"}[scaling["signal"]]
    annotations = predictor["annotations"]
    assert annotations.get("autoscaling.knative.dev/scale-down-delay") == scaling.get("scaleDownDelay")
    assert {k for k in annotations if k.startswith("queue.sidecar.serving.knative.dev/")} == {
        f"queue.sidecar.serving.knative.dev/{what}-resource-{side}"
        for what in ("cpu", "memory", "ephemeral-storage")
        for side in ("request", "limit")
    }
    container = predictor["containers"][0]
    assert [p["name"] for p in container["ports"]] == ["http1"]
    assert {container[p]["httpGet"]["port"] for p in ("startupProbe", "readinessProbe", "livenessProbe")} == {
        "http1"
    }
    assert "terminationGracePeriodSeconds" not in predictor
    # no Deployment, route or autoscaler of ours for the API: Knative and KServe make them
    assert not [d for d in docs if d["kind"] in ("Ingress", "HTTPRoute", "GRPCRoute")]
    assert not [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("inference-c")
    ]
    assert not [
        d for d in docs if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject") and "worker" not in str(d)
    ]


def test_on_the_mesh_knative_reaches_the_queue_proxy_by_its_identity(serverless_dist: Path) -> None:
    """On the mesh, Knative's activator and autoscaler each get one ALLOW on the service's pods, naming the
    ServiceAccount their Deployments run as in knative-serving, on the queue-proxy port each uses; the
    connections of the spec reach the queue-proxy too."""
    docs = _docs(serverless_dist, "smesh")
    allows = {
        d["metadata"]["name"]: d["spec"]
        for d in docs
        if d["kind"] == "AuthorizationPolicy"
        and d["spec"].get("selector")
        and "inference" in d["metadata"]["name"]
    }
    principals = {
        name: (rule["from"][0]["source"]["principals"], rule["to"][0]["operation"]["ports"])
        for name, spec in allows.items()
        for rule in spec["rules"]
    }
    assert principals["allow-inference-from-knative-activator"] == (
        ["cluster.local/ns/knative-serving/sa/activator"],
        ["8012"],
    )
    assert principals["allow-inference-from-knative-autoscaler"] == (
        ["cluster.local/ns/knative-serving/sa/controller"],
        ["9090"],
    )
    assert principals["allow-inference-from-ingress-controller"][1] == ["8012"]


def test_the_job_worker_stays_a_deployment_of_ours(serverless_dist: Path) -> None:
    """stage's job worker is not served by Knative: it keeps the Deployment runtime's pod (its grace period,
    no queue-proxy annotations) and its KEDA autoscaler on the queue."""
    docs = _docs(serverless_dist, "sstage")
    worker = _named(docs, "Deployment", "inference-worker")["spec"]["template"]
    assert worker["spec"]["terminationGracePeriodSeconds"] > 0
    assert not any(k.startswith("queue.sidecar") for k in (worker["metadata"].get("annotations") or {}))
    assert (
        _named(docs, "ScaledObject", "inference-worker")["spec"]["scaleTargetRef"]["name"]
        == "inference-worker"
    )


def test_the_canary_is_the_latest_revision_with_its_weight(
    serverless_spec: Path, serverless_dist: Path
) -> None:
    canary = _overlay(serverless_spec, "sprod")["services"]["inference"]["canary"]
    docs = _docs(serverless_dist, "sprod")
    predictor = _named(docs, "InferenceService", "inference")["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == canary["weight"]
    container = predictor["containers"][0]
    assert container["image"].endswith(f"@{canary['imageDigest']}")
    assert container["envFrom"][0]["configMapRef"]["name"] == "inference-canary-config"
    # the revision that keeps the rest of the traffic still reads the stable version's settings
    assert _named(docs, "ConfigMap", "inference-config")
    assert not [d for d in docs if d["kind"] == "InferenceService" and d["metadata"]["name"] != "inference"]


@pytest.mark.parametrize("env", ENVS)
def test_knative_reaches_the_queue_proxy_and_nothing_else_comes_in(serverless_dist: Path, env: str) -> None:
    docs = _docs(serverless_dist, env)
    ingress = {}
    for d in docs:
        if d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] == {
            "matchLabels": {"app.kubernetes.io/name": "inference"}
        }:
            for rule in d["spec"].get("ingress", []):
                (peer,) = rule["from"]
                ns = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                ingress[(ns, tuple(sorted(peer["podSelector"]["matchLabels"].items())))] = [
                    p["port"] for p in rule["ports"]
                ]
    assert ingress[("knative-serving", (("app", "activator"),))] == [8012]
    assert ingress[("knative-serving", (("app", "autoscaler"),))] == [9090]
    assert set(map(tuple, ingress.values())) == {(8012,), (9090,)}  # the container's 8080 is not reachable


def _mutated(dist: Path, env: str, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    out = tmp_path / "dist"
    shutil.copytree(dist / env, out / env)
    path = out / env / "inferenceservice-inference.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _percent(doc: dict[str, Any]) -> None:
    doc["spec"]["predictor"]["canaryTrafficPercent"] = 150


def _beyond_quota(doc: dict[str, Any]) -> None:
    doc["spec"]["predictor"]["maxReplicas"] = 40


def _unbounded(doc: dict[str, Any]) -> None:
    del doc["spec"]["predictor"]["maxReplicas"]


@pytest.mark.parametrize(
    ("env", "change", "rule"),
    [
        ("sprod", _percent, "knative-canary-percent"),
        ("sstage", _beyond_quota, "quota-admits-max-scale"),
        ("sstage", _unbounded, "quota-admits-max-scale"),
    ],
    ids=["canary over 100", "maxScale beyond the quota", "no maxScale"],
)
def test_held_out_mutants_are_stopped_by_their_rule(
    serverless_spec: Path, serverless_dist: Path, tmp_path: Path, env: str, change: Any, rule: str
) -> None:
    found = env_findings(serverless_spec, _mutated(serverless_dist, env, tmp_path, change), env, tmp_path)
    assert found, "the mutant passed the gate"
    assert {f.split(": ", 1)[0] for f in found} == {rule}, found


def test_the_serverless_render_is_admitted(kube: Kube, serverless_dist: Path) -> None:
    install_crds(kube, kinds_in(serverless_dist) | KNATIVE_KINDS)
    for env in ENVS:
        result = check_environment(
            kube, serverless_dist / env, expected=expected_warnings(), boot_check=False
        )
        assert not result.folder.failures, "\n".join(result.folder.failures)
        applied = [m.obj for m in result.folder.applied]
        (isvc,) = [o for o in applied if o["kind"] == "InferenceService"]
        stored = kube.get(
            "serving.kserve.io/v1beta1", "InferenceService", isvc["metadata"]["namespace"], "inference"
        )
        assert stored is not None
        assert stored["spec"]["predictor"]["minReplicas"] == AUTOSCALING[env]["minReplicas"]
    for _, kind in sorted(KNATIVE_KINDS):  # Knative's CRDs, established beside KServe's
        crd = kube.get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            f"{kind.lower()}s.serving.knative.dev",
        )
        assert crd is not None, kind
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", kind


def _readme_features() -> dict[str, str]:
    """The config-features flags README's Knative row asks of the cluster."""
    readme = (REPO / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| Knative Serving"))
    return dict(re.findall(r"`([\w.-]+): (enabled)`", row))


@pytest.mark.parametrize("env", ENVS)
def test_knative_admits_what_kserve_makes_of_it_with_the_readmes_flags(
    serverless_dist: Path, env: str
) -> None:
    """Knative's own validation (its webhook's code, at the pinned version) of the Knative Service KServe
    makes of each InferenceService, with exactly the flags README's table asks for: no error."""
    isvc = _named(_docs(serverless_dist, env), "InferenceService", "inference")
    service = knative.knative_service(isvc)
    verdicts = knative.validate([service], _readme_features())
    assert verdicts == {f"{service['metadata']['namespace']}/inference-predictor": "ok"}, verdicts


def _without_flag(flag: str) -> Callable[[dict[str, Any]], dict[str, str]]:
    return lambda _: {k: v for k, v in _readme_features().items() if k != flag}


def _grace_period(service: dict[str, Any]) -> dict[str, str]:
    service["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 45
    return _readme_features()


def _port_named_http(service: dict[str, Any]) -> dict[str, str]:
    container = service["spec"]["template"]["spec"]["containers"][0]
    container["ports"][0]["name"] = "http"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["port"] = "http"
    return _readme_features()


def _pre_stop(service: dict[str, Any]) -> dict[str, str]:
    container = service["spec"]["template"]["spec"]["containers"][0]
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": 10}}}
    return _readme_features()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_without_flag("kubernetes.podspec-securitycontext"), "securityContext"),
        (_without_flag("kubernetes.podspec-init-containers"), "initContainers"),
        (_without_flag("kubernetes.podspec-persistent-volume-write"), "persistent volume"),
        (_grace_period, "terminationGracePeriodSeconds"),
        (_port_named_http, "name"),
        (_pre_stop, "lifecycle"),
    ],
    ids=[
        "no securitycontext flag",
        "no init-containers flag",
        "no volume-write flag",
        "a grace period",
        "port http",
        "a preStop hook",
    ],
)
def test_what_the_render_leaves_out_knative_would_refuse(
    serverless_dist: Path, change: Callable[[dict[str, Any]], dict[str, str]], field: str
) -> None:
    """The held-out versions of what the render does for Knative: each is refused by Knative's validation,
    naming the field (stage: it has the init container and the restricted security context)."""
    service = knative.knative_service(
        _named(_docs(serverless_dist, "sstage"), "InferenceService", "inference")
    )
    features = change(service)
    (verdict,) = knative.validate([service], features).values()
    assert verdict != "ok"
    assert field in verdict, verdict


def _knative() -> Path:
    return module_dir(pinned("KNATIVE_SERVING_MODULE"), pinned("KNATIVE_SERVING_VERSION"))


def test_what_the_render_assumes_of_knative_holds_in_the_pinned_module() -> None:
    """Annotations, ports and the callers' labels and identities, read from Knative Serving's own source at
    the pinned version (not from our code); what it admits is knative-validate's (above)."""
    root = _knative()
    register = (root / "pkg" / "apis" / "serving" / "register.go").read_text()
    for key in kserve.QUEUE_PROXY_RESOURCES:
        assert f'"queue.sidecar." + GroupName + "/{key}"' in register, key
    autoscaling = (root / "pkg" / "apis" / "autoscaling" / "register.go").read_text()
    for annotation in (kserve.KNATIVE_TARGET, kserve.KNATIVE_SCALE_DOWN_DELAY):
        assert f'GroupName + "/{annotation.split("/", 1)[1]}"' in autoscaling, annotation
    constants = (root / "pkg" / "networking" / "constants.go").read_text()
    assert re.search(r"BackendHTTPPort\s*=\s*8012\b", constants)
    assert re.search(r"AutoscalingQueueMetricsPort\s*=\s*9090\b", constants)
    validation = (root / "pkg" / "apis" / "serving" / "k8s_validation.go").read_text()
    assert '"http1",' in validation and "Probe port must match container port" in validation
    for caller in KNATIVE_CALLERS:  # the NetworkPolicies' and AuthorizationPolicies' view of them
        deployment = (
            root / "config" / "core" / "deployments" / f"{caller.peer.pod_labels['app']}.yaml"
        ).read_text()
        assert f"namespace: {caller.peer.namespace}" in deployment
        assert f"serviceAccountName: {caller.service_account}" in deployment
