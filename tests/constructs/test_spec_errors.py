"""Bad specs stop the synth with one line per problem: `file:line: field.path: bad value; allowed: ...`.

Each case breaks a temporary copy of overlays/ the way a user would (as text, so duplicate keys and syntax
errors are possible), and the expected line is found in the edited text, not taken from the loader.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlplatform.schema import SpecError, load_all, load_environment
from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.schema.errors import choices, did_you_mean, unknown
from mlplatform.synth import synthesize

MAX_LINE = 200
DIGEST = "sha256:" + "ab" * 32
#: The catalog these tests use: what exists is part of the test, not whatever the model build makes today.
CATALOG = {"breast-cancer": ["1", "2"], "minilm-embedding": ["1"]}


def write_catalog(root: Path, models: dict[str, list[str]]) -> None:
    doc = {
        "models": {
            name: {v: {"sha256": "0" * 64, "source": {"kind": "image"}} for v in versions}
            for name, versions in models.items()
        }
    }
    path = root / CATALOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def root(spec_copy: Path) -> Path:
    write_catalog(spec_copy, CATALOG)
    return spec_copy


def replace(root: Path, file: str, old: str, new: str) -> None:
    path = root / "overlays" / file
    text = path.read_text()
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new, 1))


def copy_overlay(root: Path, source: str, target: str, *changes: tuple[str, str]) -> None:
    shutil.copy(root / "overlays" / source, root / "overlays" / target)
    for old, new in changes:
        replace(root, target, old, new)


def line_of(root: Path, file: str, needle: str) -> int:
    lines = (root / "overlays" / file).read_text().splitlines()
    found = [i for i, line in enumerate(lines, 1) if needle in line]
    assert found, f"{needle!r} not in {file}"
    return found[0]


def problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_all(root)
    lines = info.value.lines
    assert str(info.value).splitlines()[1:] == [f"  {line}" for line in lines]
    for line in lines:
        assert len(line) <= MAX_LINE, f"{len(line)} characters: {line}"
    return lines


def the_line(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, f"{prefix!r}: {len(found)} lines in:\n" + "\n".join(lines)
    return found[0]


@dataclass(frozen=True)
class Case:
    id: str
    edit: Callable[[Path], None]
    file: str  # under overlays/
    needle: str  # text on the line that must be reported (in the edited file)
    field: str
    fragments: tuple[str | Callable[[Path], str], ...]  # the bad value and what is allowed


def first_at(file: str, needle: str) -> Callable[[Path], str]:
    return lambda root: f"(first at line {line_of(root, file, needle)})"


def _r(file: str, old: str, new: str) -> Callable[[Path], None]:
    return lambda root: replace(root, file, old, new)


def _rs(file: str, *changes: tuple[str, str]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        for old, new in changes:
            replace(root, file, old, new)

    return edit


#: prod with KServe's Gateway API integration making its routes (`routing.madeBy: kserve`).
KSERVE_ROUTES = (
    "    sectionName: https\n",
    "    sectionName: https\n  madeBy: kserve\n  ingressDomain: models.example.com\n",
)
KSERVE_RUNTIME = ("namespace: mlplatform-prod\n", "namespace: mlplatform-prod\nruntime: kserve\n")
KSERVE_HOST = ("host: inference.mlplatform.example.com", "host: inference-mlplatform-prod.models.example.com")
DEV_LIMITS = 'limits: {cpu: "1", memory: 768Mi, ephemeral-storage: 512Mi}'
CASES = [
    # duplicate keys
    Case(
        "duplicate-key-platform",
        _r("platform.yaml", "name: mlplatform\n", "name: mlplatform\nname: other\n"),
        "platform.yaml",
        "name: other",
        "name",
        ("duplicate key 'name'", first_at("platform.yaml", "name: mlplatform"), "each key may appear once"),
    ),
    Case(
        "duplicate-key-overlay",
        _r("dev.yaml", "    replicas: 1\n", "    replicas: 1\n    replicas: 3\n"),
        "dev.yaml",
        "replicas: 3",
        "services.inference.replicas",
        ("duplicate key 'replicas'", first_at("dev.yaml", "    replicas: 1")),
    ),
    # images in platform.yaml carry no tag and no digest
    *(
        Case(
            f"image-{kind}",
            _r("platform.yaml", "mlplatform-inference\n", f"mlplatform-inference{suffix}\n"),
            "platform.yaml",
            "image: ghcr.io/example/mlplatform-inference",
            "services.inference.image",
            (
                f"got 'ghcr.io/example/mlplatform-inference{suffix}"[:55],
                "allowed: a repository without tag or digest",
            ),
        )
        for kind, suffix in (("latest", ":latest"), ("tag", ":1.4.2"), ("digest", f"@{DIGEST}"))
    ),
    Case(
        "redis-image-tag",
        _r("platform.yaml", "mlplatform-redis  #", "mlplatform-redis:7.4  #"),
        "platform.yaml",
        "ghcr.io/example/mlplatform-redis",
        "redis.image",
        ("'ghcr.io/example/mlplatform-redis:7.4'", "without tag or digest"),
    ),
    # replicas and autoscaling together
    Case(
        "replicas-and-autoscaling",
        _r("stage.yaml", "    autoscaling:\n", "    replicas: 2\n    autoscaling:\n"),
        "stage.yaml",
        "replicas: 2",
        "services.inference.replicas",
        ("2 is set together with autoscaling", "allowed: one of replicas or autoscaling"),
    ),
    # limits below requests, per resource
    *(
        Case(
            f"limit-below-request-{resource}",
            _r("dev.yaml", DEV_LIMITS, DEV_LIMITS.replace(old, new)),
            "dev.yaml",
            DEV_LIMITS.replace(old, new),
            f"services.inference.resources.limits.{resource}",
            (f"limit '{new.split(': ')[1]}'", f"request '{request}'", "allowed: a limit >= its request"),
        )
        for resource, old, new, request in (
            ("cpu", 'cpu: "1"', "cpu: 100m", "1"),
            ("memory", "memory: 768Mi", "memory: 256Mi", "768Mi"),
            ("ephemeral-storage", "ephemeral-storage: 512Mi", "ephemeral-storage: 128Mi", "256Mi"),
        )
    ),
    Case(
        "redis-limit-below-request",
        _r("prod.yaml", 'limits: {cpu: "1", memory: 1280Mi', 'limits: {cpu: "1", memory: 1Gi'),
        "prod.yaml",
        'limits: {cpu: "1", memory: 1Gi',
        "redis.resources.limits.memory",
        ("limit '1Gi'", "request '1280Mi'"),
    ),
    # environment namespaces
    Case(
        "namespace-kube-system",
        _r("dev.yaml", "namespace: mlplatform-dev", "namespace: kube-system"),
        "dev.yaml",
        "namespace: kube-system",
        "namespace",
        ("'kube-system' is a system namespace", "allowed: a namespace of its own"),
    ),
    Case(
        "namespace-of-a-peer",
        _r("dev.yaml", "namespace: mlplatform-dev", "namespace: ingress-nginx"),
        "dev.yaml",
        "namespace: ingress-nginx",
        "namespace",
        ("'ingress-nginx'", "peer 'ingress-controller'", "allowed"),
    ),
    # a mesh the platform does not render, and a mesh whose peers have no identity on it
    Case(
        "mesh-unknown",
        _r("stage.yaml", "namespace: mlplatform-stage\n", "namespace: mlplatform-stage\nmesh: linkerd\n"),
        "stage.yaml",
        "mesh: linkerd",
        "mesh",
        ("'linkerd'", "istio"),
    ),
    Case(
        "mesh-peers-without-identity",
        _r("stage.yaml", "namespace: mlplatform-stage\n", "namespace: mlplatform-stage\nmesh: istio\n"),
        "stage.yaml",
        "mesh: istio",
        "mesh",
        ("peers ingress-controller, keda-operator, metrics-scraper", "serviceAccount", "or none"),
    ),
    # Knative's runtime: its own route and autoscaler, and scale to zero only there
    Case(
        "serverless-without-kserve-route",
        _r(
            "stage.yaml",
            "namespace: mlplatform-stage\n",
            "namespace: mlplatform-stage\nruntime: kserve-serverless\n",
        ),
        "stage.yaml",
        "routing:",
        "routing",
        ("runtime kserve-serverless", "allowed: routing kind Gateway with madeBy kserve"),
    ),
    Case(
        "knative-engine-without-serverless",
        _r("stage.yaml", "engine: hpa", "engine: knative\n      signal: inFlight"),
        "stage.yaml",
        "engine: knative",
        "services.inference.autoscaling.engine",
        ("knative with runtime 'deployment'", "allowed: hpa or keda"),
    ),
    Case(
        "scale-to-zero-without-knative",
        _r("stage.yaml", "minReplicas: 2", "minReplicas: 0"),
        "stage.yaml",
        "minReplicas: 0",
        "services.inference.autoscaling.minReplicas",
        ("0, but engine 'hpa' cannot scale to zero", "allowed: minReplicas >= 1, or engine knative"),
    ),
    # two environments may not share (cluster, namespace) or a host
    Case(
        "same-cluster-and-namespace",
        lambda root: copy_overlay(root, "dev.yaml", "qa.yaml", ("inference.dev.", "inference.qa.")),
        "qa.yaml",
        "namespace: mlplatform-dev",
        "namespace",
        (
            "'mlplatform-dev'",
            "https://kubernetes.default.svc",
            "overlays/dev.yaml",
            "allowed: one environment",
        ),
    ),
    Case(
        "same-cluster-spelt-with-its-port",
        lambda root: copy_overlay(
            root,
            "dev.yaml",
            "qa.yaml",
            ("inference.dev.", "inference.qa."),
            ("kubernetes.default.svc", "kubernetes.default.svc:443"),
        ),
        "qa.yaml",
        "namespace: mlplatform-dev",
        "namespace",
        ("'mlplatform-dev' on https://kubernetes.default.svc:443", "overlays/dev.yaml"),
    ),
    Case(
        "same-host",
        lambda root: copy_overlay(root, "dev.yaml", "qa.yaml", ("mlplatform-dev", "mlplatform-qa")),
        "qa.yaml",
        "host: inference.dev",
        "services.inference.host",
        ("'inference.dev.mlplatform.example.com'", "overlays/dev.yaml", "allowed: a host no other"),
    ),
    # syntax errors name the file and line
    Case(
        "yaml-syntax",
        _r("dev.yaml", "  mode: automated\n", "  mode: automated: yes\n"),
        "dev.yaml",
        "mode: automated: yes",
        "",
        ("not valid YAML", "mapping values are not allowed"),
    ),
    # model versions must be in the catalog
    Case(
        "canary-version-not-built",
        _r("prod.yaml", 'version: "2"', 'version: "7"'),
        "prod.yaml",
        'version: "7"',
        "services.inference.canary.models[0].version",
        ("breast-cancer version '7'", CATALOG_FILE, "versions that exist): 1, 2"),
    ),
    Case(
        "platform-version-not-built",
        _r("platform.yaml", 'version: "1"\n    useCache', 'version: "4"\n    useCache'),
        "platform.yaml",
        'version: "4"',
        "services.inference.models[1].version",
        ("minilm-embedding version '4'", "versions that exist): 1"),
    ),
    Case(
        "canary-model-unknown",
        _r("prod.yaml", "        - name: breast-cancer", "        - name: resnet"),
        "prod.yaml",
        "name: resnet",
        "services.inference.canary.models[0].name",
        ("model 'resnet'", "allowed: breast-cancer, minilm-embedding"),
    ),
    # field errors (what there was before, now with lines)
    Case(
        "unknown-field",
        _r("dev.yaml", "  replicas: 1\n  storageClass", "  replicaz: 1\n  storageClass"),
        "dev.yaml",
        "replicaz",
        "redis.replicaz",
        (
            "unknown field (did you mean replicas?)",
            "allowed: imageDigest, maxmemory, replicas, resources, storageClass, storageSize",
        ),
    ),
    Case(
        "unknown-field-of-a-long-list",
        _r("dev.yaml", "  pods: 20", "  podz: 20"),
        "dev.yaml",
        "podz",
        "quota.podz",
        ("unknown field; allowed: pods or 9 other fields",),
    ),
    Case(
        "digest-pattern",
        _r("dev.yaml", "    imageDigest: sha256:", "    imageDigest: sha256:abc #"),  # services.inference
        "dev.yaml",
        "sha256:abc",
        "services.inference.imageDigest",
        ("got 'sha256:abc'", "allowed: sha256:<64 lowercase hex digits>"),
    ),
    Case(
        "routing-kind",
        _r("dev.yaml", "kind: Ingress", "kind: Route"),
        "dev.yaml",
        "kind: Route",
        "routing.kind",
        ("got 'Route'", "allowed: 'Ingress', 'Gateway'"),
    ),
    Case(
        "sync-mode",
        _r("dev.yaml", "mode: automated", "mode: auto"),
        "dev.yaml",
        "mode: auto",
        "sync.mode",
        ("got 'auto'", "allowed: 'automated' or 'manual'"),
    ),
    Case(
        "cluster-server",
        _r("dev.yaml", "server: https://kubernetes.default.svc", "server: kubernetes.default.svc"),
        "dev.yaml",
        "server: kubernetes",
        "cluster.server",
        ("got 'kubernetes.default.svc'", "allowed: the API server's https:// URL"),
    ),
    Case(
        "redis-maxmemory",
        _r("dev.yaml", "maxmemory: 128mb", "maxmemory: 128MiB"),
        "dev.yaml",
        "maxmemory: 128MiB",
        "redis.maxmemory",
        ("got '128MiB'", "allowed: a Redis size such as 128mb"),
    ),
    Case(
        "jobs-redis-short-of-full-queue",
        _r("stage.yaml", "    # maxmemory left out: the default", "    maxmemory: 300mb\n    # the default"),
        "stage.yaml",
        "maxmemory: 300mb",
        "jobs.redis.maxmemory",
        ("300mb is short of a full queue at maxWorkers", "3 x 64 jobs", "= 401mb", "allowed: >= 401mb"),
    ),
    Case(
        "quantity-pattern",
        _r("dev.yaml", "storageSize: 1Gi", "storageSize: 10 GB"),
        "dev.yaml",
        "storageSize",
        "redis.storageSize",
        ("got '10 GB'", "allowed: a Kubernetes quantity"),
    ),
    Case(
        "missing-field",
        _r("dev.yaml", "  tlsIssuer: letsencrypt-staging\n", ""),
        "dev.yaml",
        "routing:",
        "routing.tlsIssuer",
        ("required field is missing",),
    ),
    Case(
        "autoscaling-bounds",
        _r("stage.yaml", "maxReplicas: 4", "maxReplicas: 1"),
        "stage.yaml",
        "maxReplicas: 1",
        "services.inference.autoscaling.maxReplicas",
        ("1 is below minReplicas (2)", "allowed: maxReplicas >= minReplicas"),
    ),
    # the autoscaling signal (issue 29)
    Case(
        "load-signal-with-hpa",
        _r("stage.yaml", "      engine: hpa\n", "      engine: hpa\n      signal: inFlight\n"),
        "stage.yaml",
        "signal: inFlight",
        "services.inference.autoscaling.signal",
        ("'inFlight' needs engine keda", "allowed: engine keda, or signal cpu"),
    ),
    Case(
        "signal-unknown",
        _r("prod.yaml", "signal: inFlight", "signal: latency"),
        "prod.yaml",
        "signal: latency",
        "services.inference.autoscaling.signal",
        ("got 'latency'", "allowed: 'cpu', 'inFlight' or 'requestRate'"),
    ),
    Case(
        "target-of-another-signal",
        _r("prod.yaml", "      signal: inFlight\n", "      signal: inFlight\n      targetRequestRate: 900\n"),
        "prod.yaml",
        "targetRequestRate: 900",
        "services.inference.autoscaling.targetRequestRate",
        ("set, but signal is 'inFlight'", "allowed: targetRequestRate with signal 'requestRate'"),
    ),
    Case(
        "target-in-flight-zero",
        _r("prod.yaml", "      signal: inFlight\n", "      signal: inFlight\n      targetInFlight: 0\n"),
        "prod.yaml",
        "targetInFlight: 0",
        "services.inference.autoscaling.targetInFlight",
        ("0", "greater than 0"),
    ),
    Case(
        "prometheus-address-with-cpu",
        _r(
            "stage.yaml", "      engine: hpa\n", "      engine: hpa\n      prometheusAddress: http://p:9090\n"
        ),
        "stage.yaml",
        "prometheusAddress: http://p:9090",
        "services.inference.autoscaling.prometheusAddress",
        ("set, but signal cpu reads no Prometheus", "allowed: signal inFlight or requestRate"),
    ),
    Case(
        "prometheus-address-not-a-url",
        _r(
            "prod.yaml",
            "      signal: inFlight\n",
            "      signal: inFlight\n      prometheusAddress: prom:9090\n",
        ),
        "prod.yaml",
        "prometheusAddress: prom:9090",
        "services.inference.autoscaling.prometheusAddress",
        ("'prom:9090'", "allowed: Prometheus's http(s):// URL"),
    ),
    Case(
        "load-signal-unscraped",
        _r("prod.yaml", "  serviceMonitor: true\n", "  serviceMonitor: false\n"),
        "prod.yaml",
        "signal: inFlight",
        "services.inference.autoscaling.signal",
        ("'inFlight' needs the service scraped", "allowed: features.serviceMonitor: true, or signal cpu"),
    ),
    Case(
        "load-signal-with-kserve",
        _r("prod.yaml", "namespace: mlplatform-prod\n", "namespace: mlplatform-prod\nruntime: kserve\n"),
        "prod.yaml",
        "signal: inFlight",
        "services.inference.autoscaling.signal",
        ("'inFlight' with runtime 'kserve'", "allowed: signal cpu, or runtime deployment"),
    ),
    Case(
        "service-not-declared",
        _r("dev.yaml", "  inference:\n", "  inferense:\n"),
        "dev.yaml",
        "inferense:",
        "services.inferense",
        ("not a service of platform.yaml", "allowed: inference"),
    ),
    Case(
        "service-missing",
        _r("dev.yaml", "  inference:\n", "  inferense:\n"),
        "dev.yaml",
        "services:",
        "services",
        ("inference: missing", "every service of platform.yaml needs an entry"),
    ),
    Case(
        "canary-needs-gateway",
        _r(
            "dev.yaml",
            "    tuning:\n",
            f"    canary:\n      imageDigest: {DIGEST}\n      weight: 5\n"
            "      models: [{name: breast-cancer, version: '1'}]\n    tuning:\n",
        ),
        "dev.yaml",
        "canary:",
        "services.inference.canary",
        ("routing.kind 'Gateway'", "got 'Ingress'"),
    ),
    Case(
        "kserve-ingress-has-no-tls",
        _r(
            "stage.yaml",
            "  tlsIssuer: letsencrypt-prod\n",
            "  tlsIssuer: letsencrypt-prod\n  madeBy: kserve\n",
        ),
        "stage.yaml",
        "madeBy: kserve",
        "routing.madeBy",
        ("KServe v0.15.2 makes its Ingress without TLS", "allowed: madeBy platform"),
    ),
    Case(
        "kserve-routes-need-kserve-runtime",
        _rs("prod.yaml", KSERVE_ROUTES, KSERVE_HOST),
        "prod.yaml",
        "madeBy: kserve",
        "routing.madeBy",
        ("needs runtime: kserve", "allowed: madeBy platform"),
    ),
    Case(
        "kserve-routes-need-ingress-domain",
        _r("prod.yaml", "    sectionName: https\n", "    sectionName: https\n  madeBy: kserve\n"),
        "prod.yaml",
        "routing:",
        "routing.ingressDomain",
        ("missing", "KServe's ingressDomain"),
    ),
    Case(
        "ingress-domain-without-kserve-routes",
        _r(
            "prod.yaml",
            "    sectionName: https\n",
            "    sectionName: https\n  ingressDomain: models.example.com\n",
        ),
        "prod.yaml",
        "ingressDomain:",
        "routing.ingressDomain",
        ("madeBy is platform", "allowed: madeBy kserve"),
    ),
    Case(
        "kserve-routes-split-no-canary",
        _rs("prod.yaml", KSERVE_ROUTES, KSERVE_RUNTIME, KSERVE_HOST),
        "prod.yaml",
        "canary:",
        "services.inference.canary",
        ("do not split traffic", "allowed: no canary, or routing.madeBy platform"),
    ),
    Case(
        "kserve-routes-name-the-host",
        _rs("prod.yaml", KSERVE_ROUTES, KSERVE_RUNTIME),
        "prod.yaml",
        "host: inference.mlplatform.example.com",
        "services.inference.host",
        ("'inference.mlplatform.example.com'", "'inference-mlplatform-prod.models.example.com'"),
    ),
    Case(
        "connection-unknown",
        _r("platform.yaml", "  - from: inference\n    to: redis", "  - from: inference\n    to: postgres"),
        "platform.yaml",
        "to: postgres",
        "connections[2].to",
        (
            "unknown component 'postgres'",
            "allowed: inference, inference-worker, ingress-controller, jobs-redis, keda-operator, "
            "metrics-scraper, redis",
        ),
    ),
    Case(
        "connection-near-miss",
        _r(
            "platform.yaml",
            "  - from: metrics-scraper\n    to: inference\n",
            "  - from: metrics-scrapper\n    to: inference\n",
        ),
        "platform.yaml",
        "from: metrics-scrapper",
        "connections[1].from",
        (
            "unknown component 'metrics-scrapper' (did you mean 'metrics-scraper'?)",
            "allowed: metrics-scraper or 6 other components",
        ),
    ),
    Case(
        "use-cache-without-edge",
        _r("platform.yaml", "  - from: inference\n    to: redis\n", ""),
        "platform.yaml",
        "useCache: true",
        "services.inference.useCache",
        ("no edge from 'inference' to 'redis'", "allowed: add"),
    ),
    Case(
        "grpc-connection-to-redis",
        _r(
            "platform.yaml",
            "  - from: inference\n    to: redis\n",
            "  - from: inference\n    to: redis\n    grpc: yes\n",
        ),
        "platform.yaml",
        "grpc: yes",
        "connections[2].grpc",
        ("'redis' serves no gRPC", "allowed: a service whose `grpc` is true"),
    ),
    Case(
        "grpc-host-is-the-http-host",
        _r(
            "prod.yaml",
            "grpcHost: inference-grpc.mlplatform.example.com",
            "grpcHost: inference.mlplatform.example.com",
        ),
        "prod.yaml",
        "grpcHost:",
        "services.inference.grpcHost",
        ("'inference.mlplatform.example.com' is `host` too", "allowed: a host of its own"),
    ),
    Case(
        "grpc-host-without-a-grpc-connection",
        _r("platform.yaml", "    to: inference\n    grpc: true\n", "    to: inference\n"),
        "dev.yaml",
        "grpcHost:",
        "services.inference.grpcHost",
        ("no peer's connection to 'inference' says grpc: true", "allowed: add `grpc: true`"),
    ),
    Case(
        "grpc-host-of-a-service-without-grpc",
        _rs(
            "platform.yaml",
            ("    useCache: true\n", "    useCache: true\n    grpc: false\n"),
            ("    to: inference\n    grpc: true\n", "    to: inference\n"),
        ),
        "dev.yaml",
        "grpcHost:",
        "services.inference.grpcHost",
        ("services.inference.grpc is false", "allowed: no grpcHost, or grpc: true"),
    ),
    Case(
        "maxmemory-policy",
        _r("platform.yaml", "maxmemoryPolicy: allkeys-lru", "maxmemoryPolicy: lru"),
        "platform.yaml",
        "maxmemoryPolicy",
        "redis.maxmemoryPolicy",
        ("got 'lru'", "'allkeys-lru'"),
    ),
    # the image signing key: the public half of a key pair, in a file under overlays/
    Case(
        "signing-key-missing",
        _r("platform.yaml", "publicKey: signing/cosign.pub", "publicKey: signing/nope.pub"),
        "platform.yaml",
        "publicKey: signing/nope.pub",
        "imageSigning.publicKey",
        ("got 'signing/nope.pub'", "cannot read overlays/signing/nope.pub"),
    ),
    Case(
        "signing-key-outside-overlays",
        _r("platform.yaml", "publicKey: signing/cosign.pub", "publicKey: signing/../../x.pub"),
        "platform.yaml",
        "publicKey: signing/../../x.pub",
        "imageSigning.publicKey",
        ("allowed: a path inside overlays/",),
    ),
    Case(
        "signing-key-private",
        lambda root: (root / "overlays" / "signing" / "cosign.pub").write_text(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n"
            "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        ),
        "platform.yaml",
        "publicKey: signing/cosign.pub",
        "imageSigning.publicKey",
        ("holds a private key", "allowed: the public half only"),
    ),
    Case(
        "signing-key-not-pem",
        lambda root: (root / "overlays" / "signing" / "cosign.pub").write_text("not a key\n"),
        "platform.yaml",
        "publicKey: signing/cosign.pub",
        "imageSigning.publicKey",
        ("is not a PEM public key", "allowed: cosign public-key's output"),
    ),
    # Argo CD: sync windows (prod) and retry (platform)
    Case(
        "sync-window-schedule-fields",
        _r("prod.yaml", '"0 8 * * 1-5"', '"0 8 * *"'),
        "prod.yaml",
        '- schedule: "0 8 * *"',
        "sync.windows[0].schedule",
        ("has 4 fields", "allowed: 5 (minute hour day-of-month month weekday)"),
    ),
    Case(
        "sync-window-schedule-range",
        _r("prod.yaml", '"0 8 * * 1-5"', '"0 25 * * 1-5"'),
        "prod.yaml",
        '- schedule: "0 25',
        "sync.windows[0].schedule",
        ("hour '25'", "allowed: 0-23"),
    ),
    Case(
        "sync-window-duration",
        _r("prod.yaml", "duration: 9h", "duration: 9 hours"),
        "prod.yaml",
        "duration: 9 hours",
        "sync.windows[0].duration",
        ("got '9 hours'", "allowed: a duration of whole h, m and s such as 5s, 3m or 1h30m"),
    ),
    Case(
        "sync-window-time-zone",
        _r("prod.yaml", "timeZone: UTC", "timeZone: Mars/Olympus"),
        "prod.yaml",
        "timeZone: Mars/Olympus",
        "sync.windows[0].timeZone",
        ("'Mars/Olympus'", "allowed: UTC or an IANA zone like Europe/Berlin"),
    ),
    Case(
        "sync-window-kind",
        _r("prod.yaml", '- schedule: "0 8 * * 1-5"', '- kind: block\n      schedule: "0 8 * * 1-5"'),
        "prod.yaml",
        "kind: block",
        "sync.windows[0].kind",
        ("got 'block'", "allowed: 'allow' or 'deny'"),
    ),
    Case(
        "retry-backoff-max-below-first",
        _r(
            "platform.yaml",
            "  project: mlplatform\n",
            "  project: mlplatform\n  retry:\n    backoff:\n      duration: 5m\n      maxDuration: 1m\n",
        ),
        "platform.yaml",
        "maxDuration: 1m",
        "argocd.retry.backoff.maxDuration",
        ("'1m' is shorter than duration '5m'", "allowed: at least the first wait"),
    ),
    Case(
        "retry-limit",
        _r("platform.yaml", "  project: mlplatform\n", "  project: mlplatform\n  retry:\n    limit: 0\n"),
        "platform.yaml",
        "limit: 0",
        "argocd.retry.limit",
        ("got 0",),
    ),
    Case(
        "promotion lists an environment twice",
        _r("platform.yaml", "promotion: [dev, stage, prod]", "promotion: [dev, stage, dev]"),
        "platform.yaml",
        "promotion:",
        "promotion[2]",
        ("'dev' is listed twice", "each environment once"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_spec_names_file_line_field_value_and_allowed(root: Path, case: Case) -> None:
    case.edit(root)
    lines = problems(root)
    line = line_of(root, case.file, case.needle)
    where = f"overlays/{case.file}:{line}: "
    found = the_line(lines, where + (f"{case.field}: " if case.field else ""))
    assert "<unicode string>" not in found
    for fragment in case.fragments:
        fragment = fragment if isinstance(fragment, str) else fragment(root)
        assert fragment in found, f"{fragment!r} missing from: {found}"


def test_reserved_and_invalid_environment_names(root: Path) -> None:
    reserved = (
        "argocd",
        "cluster-policies",
        "root",
        "cluster-policies-in-cluster",
        "infrastructure",
        "addon-x",
    )
    for name in (*reserved, "QA_env"):
        copy_overlay(
            root,
            "dev.yaml",
            f"{name}.yaml",
            ("mlplatform-dev", f"ns-{name.lower()}"),
            ("inference.dev", name),
        )
    lines = problems(root)
    for name in reserved:
        line = the_line(lines, f"overlays/{name}.yaml:1: environment name {name!r} is reserved")
        assert "allowed: any name but argocd, root, cluster-policies[-*], infrastructure[-*], addon-*" in line
    line = the_line(lines, "overlays/QA_env.yaml:1: environment name 'QA_env'")
    assert "not a DNS-1123 label" in line and "allowed: lowercase letters" in line


def test_environment_name_too_long_for_its_application(root: Path) -> None:
    name = "e" * 53
    copy_overlay(
        root, "dev.yaml", f"{name}.yaml", ("mlplatform-dev", "mlplatform-long"), ("inference.dev", "x")
    )
    line = the_line(problems(root), f"overlays/{name}.yaml:1: environment name")
    assert "allowed: at most 52 characters" in line  # 63 - len("mlplatform-")


@pytest.mark.parametrize("name", ["qa.yml", "QA.YAML", "qa.Yaml"])
def test_other_spellings_of_yaml_are_refused(root: Path, name: str) -> None:
    """A `.yml` overlay is refused, not skipped: a skipped file is an environment that never deploys."""
    copy_overlay(
        root, "dev.yaml", name, ("mlplatform-dev", "mlplatform-qa"), ("inference.dev", "inference.qa")
    )
    line = the_line(problems(root), f"overlays/{name}:1: overlay files are named <env>.yaml")
    assert f"allowed: {Path(name).stem}.yaml" in line


def test_catalog_missing_is_one_line(root: Path) -> None:
    (root / CATALOG_FILE).unlink()
    line = the_line(problems(root), f"{CATALOG_FILE}:1: ")
    assert "missing" in line and "make models" in line


def test_catalog_of_the_wrong_shape(root: Path) -> None:
    (root / CATALOG_FILE).write_text(
        '{\n  "models": {\n    "breast-cancer": {"1": {"sha256": "nope"}}\n  }\n}\n'
    )
    lines = problems(root)
    assert the_line(lines, f"{CATALOG_FILE}:3: models.breast-cancer.1.sha256: got 'nope'")
    assert the_line(lines, f"{CATALOG_FILE}:3: models.breast-cancer.1.source: required field is missing")


def test_numbers_are_accepted_where_kubernetes_accepts_quantities(root: Path) -> None:
    replace(root, "dev.yaml", DEV_LIMITS, "limits: {cpu: 1, memory: 768Mi, ephemeral-storage: 512Mi}")
    replace(root, "dev.yaml", 'requests: {cpu: "1", memory: 768Mi', "requests: {cpu: 0.25, memory: 768Mi")
    replace(root, "dev.yaml", 'requestsCpu: "4"', "requestsCpu: 4")
    replace(root, "platform.yaml", 'version: "1"', "version: 1")
    env = load_environment("dev", repo_root=root)
    resources = env.overlay.services["inference"].resources
    assert (resources.limits.cpu, resources.requests.cpu) == ("1", "0.25")
    assert env.overlay.quota.requests_cpu == "4"
    assert env.platform.services["inference"].models[0].version == "1"


def test_limit_equal_to_request_and_other_units_are_fine(root: Path) -> None:
    replace(
        root, "dev.yaml", DEV_LIMITS, "limits: {cpu: 1000m, memory: 0.75Gi, ephemeral-storage: 268435456}"
    )
    resources = load_environment("dev", repo_root=root).overlay.services["inference"].resources
    assert resources.limits.ephemeral_storage == "268435456"


def test_registry_port_is_not_a_tag(root: Path) -> None:
    replace(
        root,
        "platform.yaml",
        "ghcr.io/example/mlplatform-inference",
        "registry.example.com:5000/example/mlplatform-inference",
    )
    env = load_environment("dev", repo_root=root)
    assert (
        env.platform.services["inference"].image == "registry.example.com:5000/example/mlplatform-inference"
    )


def test_load_environment_reports_its_own_file(root: Path) -> None:
    replace(root, "stage.yaml", "    autoscaling:\n", "    replicas: 2\n    autoscaling:\n")
    load_environment("dev", repo_root=root)  # another environment is not affected
    with pytest.raises(SpecError) as info:
        load_environment("stage", repo_root=root)
    assert info.value.lines == [
        f"overlays/stage.yaml:{line_of(root, 'stage.yaml', 'replicas: 2')}: services.inference.replicas: "
        "2 is set together with autoscaling, which owns the replica count; "
        "allowed: one of replicas or autoscaling"
    ]


def test_switched_fields_are_validated_as_if_the_overlay_set_them(root: Path) -> None:
    """What the Helm chart's combinations of feature switches rest on (mlplatform.synth.render_switched)."""
    written = (root / "overlays" / "dev.yaml").read_text()
    envs = load_all(root, switched={"dev": {("features", "topologySpread"): True}})
    dev = next(e for e in envs if e.name == "dev")
    assert dev.overlay.features.topology_spread is True
    assert (
        next(e for e in envs if e.name == "stage").overlay.features
        == load_environment("stage", repo_root=root).overlay.features
    )
    assert (root / "overlays" / "dev.yaml").read_text() == written
    with pytest.raises(SpecError) as info:  # dev has no jobs Redis: a field it never wrote, at line 1
        load_all(root, switched={"dev": {("jobs", "enabled"): True}}, sources={})
    assert info.value.lines == [
        "overlays/dev.yaml:1: jobs.redis: missing, but enabled is true; allowed: the jobs Redis's settings"
    ]


def test_failed_synth_leaves_dist_untouched(root: Path) -> None:
    out = root / "dist"
    (out / "dev").mkdir(parents=True)
    sentinel = out / "dev" / "sentinel.yaml"
    sentinel.write_text("kept: true\n")
    replace(root, "dev.yaml", "mode: automated", "mode: auto")
    with pytest.raises(SpecError, match=r"overlays/dev\.yaml:7: sync\.mode: got 'auto'"):
        synthesize(root, out=out)
    assert sorted(p.name for p in out.rglob("*")) == ["dev", "sentinel.yaml"]
    assert sentinel.read_text() == "kept: true\n"


def test_main_reports_every_broken_file_in_one_run(root: Path, repo_root: Path) -> None:
    """`python main.py` on a copy: one line per problem, from every broken file, exit 2, nothing written."""
    shutil.copy(repo_root / "main.py", root / "main.py")
    shutil.copytree(
        repo_root / "constructs", root / "constructs", ignore=shutil.ignore_patterns("__pycache__")
    )
    replace(root, "dev.yaml", DEV_LIMITS, DEV_LIMITS.replace("memory: 768Mi", "memory: 256Mi"))
    replace(root, "stage.yaml", "    autoscaling:\n", "    replicas: 2\n    autoscaling:\n")
    replace(root, "prod.yaml", 'version: "2"', 'version: "7"')
    replace(root, "platform.yaml", "targetRevision: main\n", "targetRevision: main\ntargetRevision: dev\n")
    copy_overlay(
        root, "dev.yaml", "QA_env.yaml", ("mlplatform-dev", "mlplatform-qa"), ("inference.dev", "qa")
    )
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    done = subprocess.run(
        [sys.executable, "main.py", "--out", str(root / "dist")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    reported = re.findall(r"^  (overlays/[^:]+):\d+: ", done.stderr, flags=re.MULTILINE)
    assert sorted(set(reported)) == [
        "overlays/QA_env.yaml",
        "overlays/dev.yaml",
        "overlays/platform.yaml",
        "overlays/prod.yaml",
        "overlays/stage.yaml",
    ], done.stderr
    assert all(len(line) <= MAX_LINE for line in done.stderr.splitlines()), done.stderr
    assert not (root / "dist").exists()


def test_a_short_allowed_list_is_never_cut_and_a_near_miss_is_named() -> None:
    """The issue's case: nine components, where `(and 1 more)` hid 'redis', the likeliest target."""
    nine = ["fraud", "fraud-worker", "inference", "inference-worker", "ingress-controller", "jobs-redis",
            "keda-operator", "metrics-scraper", "redis"]  # fmt: skip
    assert choices(nine) == ", ".join(nine)
    assert choices([f"c{i:02}" for i in range(20)]).endswith("c15 (and 4 more)")
    assert did_you_mean("postgres", nine) == ""
    assert did_you_mean("redis-cache", nine) == " (did you mean 'redis'?)"
    assert (
        unknown("component", "postgres", nine) == f"unknown component 'postgres'; allowed: {', '.join(nine)}"
    )
