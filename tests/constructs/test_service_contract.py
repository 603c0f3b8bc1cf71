"""The manifests the generator wrote and the inference service agree (README "Runtime contract").

Read from the committed dist/ (what Argo CD applies), never from the generator's code, and checked against the
service's own code: its `Settings` class (instantiated with exactly the environment a container gets), the
routes of the FastAPI app it builds, and that app answering the probes without an API key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.routing import Match

from inference_service.app import create_app
from inference_service.settings import Settings
from model_build.__main__ import RECIPES, build_model
from tests.support.manifests import one

REPO_ROOT = Path(__file__).resolve().parents[2]
DIST = REPO_ROOT / "dist"
PREFIX = "INFERENCE_"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
#: The model the probe test serves (the smallest the build makes).
PROBE_MODEL = ("breast-cancer", "1")


def environments() -> list[str]:
    """The environments the spec declares (overlays/<env>.yaml), each of which must be in dist/."""
    overlays = REPO_ROOT / "overlays"
    return sorted(p.stem for p in overlays.glob("*.yaml") if p.name != "platform.yaml")


def service_images() -> dict[str, str]:
    """service name -> image repository, from platform.yaml: which containers run the inference service."""
    platform = yaml.safe_load((REPO_ROOT / "overlays" / "platform.yaml").read_text())
    return {name: svc["image"] for name, svc in platform["services"].items()}


def objects(env: str) -> list[dict[str, Any]]:
    folder = DIST / env
    assert folder.is_dir(), f"dist/{env} is missing; run `make synth`"
    return [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]


def service_containers(env: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container that runs a service image of platform.yaml."""
    images = set(service_images().values())
    found = []
    for obj in objects(env):
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            if container["image"].split("@")[0] in images:
                found.append((obj, container))
    return found


CONTAINERS = [
    pytest.param(
        env, workload["metadata"]["name"], container["name"], id=f"{env}-{workload['metadata']['name']}"
    )
    for env in environments()
    for workload, container in service_containers(env)
]


def container_env(env: str, container: dict[str, Any]) -> dict[str, str]:
    """The environment the container gets: envFrom ConfigMaps (resolved in dist/), then `env` entries."""
    objs = objects(env)
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"cannot resolve envFrom {source}"
        values.update(one(objs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        assert "value" in item, f"{item['name']}: only literal values can be checked here"
        values[item["name"]] = item["value"]
    return values


def find(env: str, workload_name: str, container_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for workload, container in service_containers(env):
        if workload["metadata"]["name"] == workload_name and container["name"] == container_name:
            return workload, container
    raise AssertionError(f"{workload_name}/{container_name} not in dist/{env}")


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> Any:
    """settings_of(variables): Settings() read from exactly these environment variables, as at start."""

    def read(variables: dict[str, str]) -> Settings:
        for key in [k for k in os.environ if k.upper().startswith(PREFIX)]:
            monkeypatch.delenv(key)
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        return Settings()

    return read


@pytest.fixture(scope="module")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """build/models when `make models` built it; else the probe model built here."""
    name, version = PROBE_MODEL
    shared = REPO_ROOT / "build" / "models"
    if (shared / name / version / "metadata.json").is_file():
        return shared
    out = tmp_path_factory.mktemp("models")
    recipe = next(r for r in RECIPES if (r.name, r.version) == PROBE_MODEL)
    build_model(recipe, out)
    return out


SCRAPER_TOKEN = "contract-scraper-token"


@pytest.fixture(scope="module")
def client(model_repository: Path) -> Iterator[TestClient]:
    """The service's own app, with authentication on, serving the probe model, once it reports ready."""
    settings = Settings(
        model_repository=model_repository,
        models=":".join(PROBE_MODEL),
        api_keys=SecretStr("contract-test-key"),
        metrics_token=SecretStr(SCRAPER_TOKEN),
        access_log=False,
    )
    with TestClient(create_app(settings)) as test_client:
        deadline = time.monotonic() + 60
        while test_client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.05)
        yield test_client


def is_get_route(client: TestClient, path: str) -> bool:
    """Whether one of the app's routes takes `GET path` (asked through each route's own matching)."""
    app: Any = client.app
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def test_every_environment_runs_every_service() -> None:
    """The contract tests below cannot pass by finding nothing."""
    for env in environments():
        running = {c["image"].split("@")[0] for _, c in service_containers(env)}
        assert set(service_images().values()) <= running, f"dist/{env} runs {running}"


@pytest.mark.parametrize(("env", "workload", "container"), CONTAINERS)
def test_every_inference_setting_is_a_field_the_service_accepts(
    env: str, workload: str, container: str, settings_of: Any
) -> None:
    _, spec = find(env, workload, container)
    variables = {k: v for k, v in container_env(env, spec).items() if k.startswith(PREFIX)}
    assert variables, f"{workload}: no {PREFIX}* settings at all"
    fields = set(Settings.model_fields)
    unknown = sorted(k for k in variables if k[len(PREFIX) :].lower() not in fields)
    assert not unknown, f"{workload} sets {unknown}, which Settings does not read (it would ignore them)"
    settings = settings_of(variables)  # raises ValidationError on a value the service would refuse at start
    for key, value in variables.items():
        field = key[len(PREFIX) :].lower()
        assert field in settings.model_fields_set, f"{key} was not read"
        if field == "models":
            assert ",".join(f"{n}:{v}" for n, v in settings.model_refs) == value
    assert not settings.public_docs, f"{workload}: /docs and /openapi.json would open without a key"
    worker = spec.get("command", [])[-1:] == ["inference_service.jobs.worker"]  # serves no callers
    if settings.auth_enabled and not worker:
        assert settings.api_keys_file is not None or settings.api_keys.get_secret_value(), (
            f"{workload}: authentication is on but no API key source is set; the service would not start"
        )


@pytest.mark.parametrize(("env", "workload", "container"), CONTAINERS)
def test_probes_and_port_match_the_service(
    env: str, workload: str, container: str, settings_of: Any, client: TestClient
) -> None:
    _, spec = find(env, workload, container)
    settings = settings_of({k: v for k, v in container_env(env, spec).items() if k.startswith(PREFIX)})
    ports = {p["name"]: p["containerPort"] for p in spec.get("ports", []) if "name" in p}
    for probe in PROBES:
        if probe not in spec:
            assert probe == "startupProbe", f"{workload}: no {probe}"
            continue
        action = spec[probe]["httpGet"]
        port = action["port"]
        number = ports.get(port) if isinstance(port, str) else port
        assert number == settings.port, (
            f"{workload} {probe}: port {port!r} is not the service's {settings.port}"
        )
        assert is_get_route(client, action["path"]), f"{workload} {probe}: {action['path']} is no route"
        answer = client.get(action["path"])  # no API key: a probe carries none
        assert answer.status_code == 200, (
            f"{workload} {probe}: {action['path']} answered {answer.status_code}"
        )
    ready = spec["readinessProbe"]["httpGet"]["path"]
    assert client.get(ready).json() == {"ready": True}, f"{ready} is not the readiness route"


@pytest.mark.parametrize("env", environments())
def test_services_and_scrapes_reach_the_named_port(env: str, client: TestClient) -> None:
    objs = objects(env)
    for workload, container in service_containers(env):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        names = {p["name"] for p in container["ports"]}
        selecting = [
            o
            for o in objs
            if o["kind"] == "Service" and o["spec"].get("selector", {}).items() <= labels.items()
        ]
        assert selecting, f"no Service selects {workload['metadata']['name']}"
        for svc in selecting:
            for port in svc["spec"]["ports"]:
                assert port["targetPort"] in names, f"Service {svc['metadata']['name']}: {port['targetPort']}"
    for monitor in (o for o in objs if o["kind"] == "ServiceMonitor"):
        worker = monitor["metadata"]["name"].endswith(
            "-worker"
        )  # a worker's is its own (no callers reach it)
        for endpoint in monitor["spec"]["endpoints"]:
            assert is_get_route(client, endpoint["path"]), endpoint
            if worker:
                continue
            # A service's /metrics names its models: the monitor sends the scraper's token from the Secret
            # that the pods mount too; no API key (nor nothing) reads it.
            auth = endpoint["authorization"]
            assert auth["type"] == "Bearer", monitor["metadata"]["name"]
            secret = auth["credentials"]["name"]
            assert any(o["kind"] == "ExternalSecret" and o["spec"]["target"]["name"] == secret for o in objs)
            assert client.get(endpoint["path"]).status_code == 401
            assert (
                client.get(
                    endpoint["path"], headers={"Authorization": "Bearer contract-test-key"}
                ).status_code
                == 401
            )
            token = client.get(endpoint["path"], headers={"Authorization": f"Bearer {SCRAPER_TOKEN}"})
            assert token.status_code == 200


@pytest.mark.parametrize(("env", "workload", "container"), CONTAINERS)
def test_mounted_secret_files_are_where_the_settings_read_them(
    env: str, workload: str, container: str, settings_of: Any
) -> None:
    """Each `*_file` setting names a file of a mounted secret volume, whose key the ExternalSecret fills."""
    pod_workload, spec = find(env, workload, container)
    pod = pod_workload["spec"]["template"]["spec"]
    settings = settings_of({k: v for k, v in container_env(env, spec).items() if k.startswith(PREFIX)})
    files = {f: getattr(settings, f) for f in Settings.model_fields if f.endswith("_file")}
    assert any(files.values()), f"{workload}: no secret file is read at all"
    volumes = {v["name"]: v for v in pod["volumes"]}
    objs = objects(env)
    for field, path in files.items():
        if path is None:
            continue
        file = PurePosixPath(str(path))
        mounts = [m for m in spec["volumeMounts"] if file.is_relative_to(m["mountPath"])]
        assert len(mounts) == 1, f"{workload}: {PREFIX}{field.upper()}={file} is not under one volumeMount"
        mount = mounts[0]
        if "projected" in volumes[mount["name"]]:  # the identity files (access policy, JWKS)
            _projected_file(volumes[mount["name"]]["projected"], mount, file, pod, objs)
            continue
        secret = volumes[mount["name"]].get("secret")
        assert secret is not None, f"{workload}: {file} is not on a secret volume"
        assert mount.get("readOnly") is True
        if mount.get("subPath"):
            assert str(file) == mount["mountPath"], (
                f"{workload}: {file} is inside a file mounted with subPath"
            )
            relative = mount["subPath"]
        else:
            relative = str(file.relative_to(mount["mountPath"]))
        items = {i["path"]: i["key"] for i in secret.get("items", [])}
        key = items.get(relative) if items else relative
        assert key is not None, (
            f"{workload}: {file}: no item of secret {secret['secretName']} is {relative!r}"
        )
        mode = secret.get("defaultMode", 0o644)
        group = pod["securityContext"].get("fsGroup")
        assert mode & 0o004 or (mode & 0o040 and group is not None), f"{file}: mode {mode:o} unreadable"
        makers = [
            o
            for o in objs
            if o["kind"] == "ExternalSecret"
            and o["spec"].get("target", {}).get("name", o["metadata"]["name"]) == secret["secretName"]
        ]
        assert len(makers) == 1, f"{secret['secretName']}: {len(makers)} ExternalSecrets make it"
        keys = {d["secretKey"] for d in makers[0]["spec"].get("data", [])}
        assert key in keys, (
            f"{file}: secret {secret['secretName']} has no key {key!r} (it has {sorted(keys)})"
        )


def _projected_file(
    projected: dict[str, Any], mount: dict[str, Any], file: PurePosixPath, pod: dict[str, Any], objs: Any
) -> None:
    """A file of a read-only projected volume: one source's item, readable, and that key exists in git
    (a ConfigMap) or is filled by the ExternalSecret of the Secret."""
    assert mount.get("readOnly") is True and not mount.get("subPath")
    relative = str(file.relative_to(mount["mountPath"]))
    found = [
        (kind, source[kind], item)
        for source in projected["sources"]
        for kind in ("configMap", "secret")
        if kind in source
        for item in source[kind].get("items", [])
        if item["path"] == relative
    ]
    assert len(found) == 1, f"{file}: {len(found)} projected items are {relative!r}"
    kind, ref, item = found[0]
    mode = item.get("mode", projected.get("defaultMode", 0o644))
    group = pod["securityContext"].get("fsGroup")
    assert mode & 0o004 or (mode & 0o040 and group is not None), f"{file}: mode {mode:o} unreadable"
    if kind == "configMap":
        maps = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == ref["name"]]
        assert len(maps) == 1 and item["key"] in maps[0].get("data", {}), f"{file}: ConfigMap {ref['name']}"
        return
    makers = [
        o
        for o in objs
        if o["kind"] == "ExternalSecret"
        and o["spec"].get("target", {}).get("name", o["metadata"]["name"]) == ref["name"]
    ]
    assert len(makers) == 1 and item["key"] in {d["secretKey"] for d in makers[0]["spec"].get("data", [])}


@pytest.mark.parametrize(("env", "workload", "container"), CONTAINERS)
def test_redis_url_names_a_service_port_of_the_environment(
    env: str, workload: str, container: str, settings_of: Any
) -> None:
    _, spec = find(env, workload, container)
    settings = settings_of({k: v for k, v in container_env(env, spec).items() if k.startswith(PREFIX)})
    for configured in (settings.redis_url, settings.jobs_redis_url):  # the cache, the jobs Redis
        if not configured:
            continue
        url = urlsplit(configured)
        host = (url.hostname or "").split(".")[0]
        svc = one(objects(env), "Service", host)
        assert url.port in {p["port"] for p in svc["spec"]["ports"]}, f"{configured}: no such port"


@pytest.mark.parametrize("env", environments())
def test_a_stopping_api_pod_keeps_serving_until_its_endpoint_is_gone_then_drains(
    env: str, settings_of: Any
) -> None:
    """uvicorn closes its listener the moment SIGTERM arrives, yet clients routed to the pod before its
    endpoint is removed still come: a preStop sleep of at least two readiness periods runs first, and the
    grace period covers it plus the service's own drain (its Settings, as the pod reads them) and a margin."""
    checked = 0
    for workload, container in service_containers(env):
        if container.get("command"):  # a job worker (its own entry point): no endpoint to wait for
            continue
        pod = workload["spec"]["template"]["spec"]
        readiness = container["readinessProbe"]
        sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert sleep >= 2 * readiness["periodSeconds"], (workload["metadata"]["name"], sleep)
        variables = {k: v for k, v in container_env(env, container).items() if k.startswith(PREFIX)}
        drain = settings_of(variables).shutdown_drain_seconds
        assert pod["terminationGracePeriodSeconds"] >= sleep + drain + 1, workload["metadata"]["name"]
        checked += 1
    assert checked, f"no API container in dist/{env}"


@pytest.mark.parametrize(("env", "workload", "container"), CONTAINERS)
def test_grpc_port_matches_the_service(env: str, workload: str, container: str, settings_of: Any) -> None:
    """A container that declares the `grpc` port runs the service with its gRPC server on that port, and the
    Services selecting it reach it as HTTP/2 (appProtocol); one without it runs no gRPC server."""
    pod_workload, spec = find(env, workload, container)
    settings = settings_of({k: v for k, v in container_env(env, spec).items() if k.startswith(PREFIX)})
    ports = {p["name"]: p["containerPort"] for p in spec.get("ports", []) if "name" in p}
    if spec.get("command", [])[-1:] == ["inference_service.jobs.worker"]:
        assert "grpc" not in ports, f"{workload}: a job worker serves no callers"
        return
    if "grpc" not in ports:
        assert settings.grpc_port == 0, f"{workload}: gRPC on {settings.grpc_port}, but no port declares it"
        return
    assert settings.grpc_port == ports["grpc"] != settings.port, f"{workload}: gRPC port {ports['grpc']}"
    labels = pod_workload["spec"]["template"]["metadata"]["labels"]
    selecting = [
        o for o in objects(env) if o["kind"] == "Service" and o["spec"]["selector"].items() <= labels.items()
    ]
    assert selecting
    for svc in selecting:
        grpc = [p for p in svc["spec"]["ports"] if p.get("targetPort") == "grpc"]
        assert len(grpc) == 1 and grpc[0]["appProtocol"] == "kubernetes.io/h2c", svc["metadata"]["name"]
