"""Issue 14's generator part: the jobs Redis, the job worker, its KEDA autoscaler and the API's jobs settings.

Expected values come from the overlay YAML as written (read here with PyYAML), from the service's own
settings contract (apps/inference: `INFERENCE_JOBS_*`, the worker's entry point) and from KEDA's scaler
semantics (streamLength without consumerGroup), never from the generator's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.schema import SpecError, load_all
from mlplatform.synth import render

Objects = dict[str, list[dict[str, Any]]]
NAME = "app.kubernetes.io/name"


def overlay(repo_root: Path, env: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((repo_root / "overlays" / f"{env}.yaml").read_text())
    return data


def jobs_envs(repo_root: Path) -> list[str]:
    envs = [
        p.stem
        for p in sorted((repo_root / "overlays").glob("*.yaml"))
        if p.name != "platform.yaml" and (overlay(repo_root, p.stem).get("jobs") or {}).get("enabled")
    ]
    assert envs, "no committed environment enables jobs"
    return envs


def expected_maxmemory(jobs: dict[str, Any]) -> str:
    """The overlay's maxmemory, else what a full queue at maxWorkers and its results take (issue 26): the
    queue KEDA scales to maxWorkers on is maxWorkers x streamLengthPerWorker jobs (KEDA's streamLength per
    replica); each keeps its request, then its result (1 MiB defaults), plus 4 KiB, plus 16 MiB."""
    if "maxmemory" in jobs["redis"]:
        return str(jobs["redis"]["maxmemory"])
    queue = jobs.get("maxWorkers", 1) * jobs.get("streamLengthPerWorker", 64)
    per_job = jobs.get("maxRequestBytes", 2**20) + jobs.get("maxResultBytes", 2**20) + 4096
    return f"{-(-(queue * per_job + 16 * 2**20) // 2**20)}mb"


def of_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_jobs_redis_never_evicts_and_persists_every_write(
    objects: Objects, find_object: Any, repo_root: Path
) -> None:
    for env in jobs_envs(repo_root):
        spec = overlay(repo_root, env)["jobs"]["redis"]
        objs = objects[env]
        conf = find_object(objs, "ConfigMap", "jobs-redis-config")["data"]["redis.conf"].splitlines()
        for line in ("maxmemory-policy noeviction", "appendonly yes", "appendfsync always", 'save ""'):
            assert line in conf, line
        assert f"maxmemory {expected_maxmemory(overlay(repo_root, env)['jobs'])}" in conf
        assert not [line for line in conf if line.startswith("save ") and line != 'save ""']
        sts = find_object(objs, "StatefulSet", "jobs-redis")
        assert sts["spec"]["replicas"] == 1
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
            "whenDeleted": "Retain",
            "whenScaled": "Retain",
        }
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        assert (
            claim["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
        )
        assert claim["spec"]["storageClassName"] == spec["storageClass"]
        assert claim["spec"]["resources"]["requests"]["storage"] == spec["storageSize"]
        (container,) = sts["spec"]["template"]["spec"]["containers"]
        assert container["image"].endswith("@" + spec["imageDigest"])
        assert container["resources"]["limits"]["memory"] == spec["resources"]["limits"]["memory"]
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
        pod_labels = sts["spec"]["template"]["metadata"]["labels"]
        # the cache's pods are not the jobs Redis's: neither's Services select the other's pods
        assert pod_labels[NAME] == "jobs-redis"
        client = find_object(objs, "Service", "jobs-redis")["spec"]
        assert client["selector"] == {
            NAME: "jobs-redis",
            "statefulset.kubernetes.io/pod-name": "jobs-redis-0",
        }
        assert client["ports"][0]["port"] == 6379
        assert find_object(objs, "Service", "jobs-redis-headless")["spec"]["clusterIP"] == "None"
        assert "jobs-redis" not in of_kind(objs, "PodDisruptionBudget")  # one pod: a PDB would block drains
        secret = find_object(objs, "ExternalSecret", "jobs-redis-auth")["spec"]
        platform = yaml.safe_load((repo_root / "overlays" / "platform.yaml").read_text())
        assert secret["data"][0]["remoteRef"]["key"] == platform["jobs"]["password"]["remoteKey"]
        assert "requirepass" in secret["target"]["template"]["data"]["auth.conf"]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def test_worker_runs_the_service_image_with_the_worker_entry_point(
    objects: Objects, find_object: Any, repo_root: Path
) -> None:
    for env in jobs_envs(repo_root):
        objs = objects[env]
        api, worker = (
            find_object(objs, "Deployment", "inference"),
            find_object(objs, "Deployment", "inference-worker"),
        )
        api_c, worker_c = _container(api), _container(worker)
        assert worker_c["image"] == api_c["image"]
        assert worker_c["command"] == ["python", "-m", "inference_service.jobs.worker"]
        assert "replicas" not in worker["spec"]  # KEDA owns the count
        for probe, path in (("startupProbe", "/v2/health/ready"), ("readinessProbe", "/v2/health/ready")):
            assert worker_c[probe]["httpGet"] == {"path": path, "port": "http", "scheme": "HTTP"}
        assert worker_c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert {"containerPort": 8080, "name": "http", "protocol": "TCP"} in worker_c["ports"]
        assert worker_c["securityContext"] == api_c["securityContext"]
        api_pod, worker_pod = api["spec"]["template"]["spec"], worker["spec"]["template"]["spec"]
        assert worker_pod["securityContext"] == api_pod["securityContext"]
        labels = worker["spec"]["template"]["metadata"]["labels"]
        assert labels[NAME] == "inference-worker" and "track" not in labels
        # the API's Service must never send callers to a worker
        api_selector = find_object(objs, "Service", "inference")["spec"]["selector"]
        assert not api_selector.items() <= labels.items()
        (config_ref,) = worker_c["envFrom"]
        config = find_object(objs, "ConfigMap", config_ref["configMapRef"]["name"])["data"]
        api_config = find_object(objs, "ConfigMap", "inference-config")["data"]
        assert config["INFERENCE_JOBS_REDIS_URL"] == "redis://jobs-redis:6379/0"
        for key in ("INFERENCE_MODELS", "INFERENCE_MODEL_REPOSITORY", "INFERENCE_ORT_INTRA_OP_THREADS"):
            assert config[key] == api_config[key], key
        assert "INFERENCE_API_KEYS_FILE" not in config  # callers never reach a worker
        assert not [k for k in config if k.startswith("INFERENCE_QUOTA_")]
        mounts = {m["mountPath"]: m["name"] for m in worker_c["volumeMounts"]}
        password_file = config["INFERENCE_JOBS_REDIS_PASSWORD_FILE"]
        volume = mounts[str(Path(password_file).parent)]
        (secret_volume,) = [v for v in worker_pod["volumes"] if v["name"] == volume]
        assert secret_volume["secret"]["secretName"] == "jobs-redis-auth"
        assert "/var/run/secrets/inference" not in mounts
        budget = find_object(objs, "PodDisruptionBudget", "inference-worker")["spec"]
        assert budget["maxUnavailable"] == 1 and budget["selector"]["matchLabels"] == {
            NAME: "inference-worker"
        }
        if (overlay(repo_root, env).get("features") or {}).get("serviceMonitor"):
            monitor = find_object(objs, "ServiceMonitor", "inference-worker")["spec"]
            service = find_object(objs, "Service", "inference-worker")
            assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
            assert service["spec"]["selector"] == {NAME: "inference-worker"}


def test_keda_scales_workers_on_the_stream_length_from_the_overlay_minimum(
    objects: Objects, find_object: Any, repo_root: Path
) -> None:
    for env in jobs_envs(repo_root):
        jobs, objs = overlay(repo_root, env)["jobs"], objects[env]
        scaled = find_object(objs, "ScaledObject", "inference-worker")["spec"]
        assert scaled["scaleTargetRef"]["name"] == "inference-worker"
        assert scaled["minReplicaCount"] == jobs["minWorkers"]
        assert scaled["maxReplicaCount"] == jobs["maxWorkers"]
        (trigger,) = scaled["triggers"]
        assert trigger["type"] == "redis-streams"
        meta = trigger["metadata"]
        prefix = find_object(objs, "ConfigMap", "inference-worker-config")["data"]["INFERENCE_JOBS_PREFIX"]
        assert meta["stream"] == f"{prefix}:stream"  # the service's JobStore: `<prefix>:stream`
        assert meta["streamLength"] == str(jobs.get("streamLengthPerWorker", 64))
        # with a consumer group KEDA 2.21 counts pending entries, which stay 0 while no worker runs
        assert "consumerGroup" not in meta
        host, port = meta["address"].rsplit(":", 1)
        namespace = overlay(repo_root, env)["namespace"]
        assert port == "6379" and host in (
            f"jobs-redis.{namespace}.svc",
            f"jobs-redis.{namespace}.svc.cluster.local",
        )
        auth = find_object(objs, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
        (ref,) = auth["secretTargetRef"]
        assert ref == {"parameter": "password", "name": "jobs-redis-auth", "key": "password"}
        app = find_object(objects["argocd"], "Application", f"mlplatform-{env}")["spec"]
        ignored = {d["name"]: d["jsonPointers"] for d in app["ignoreDifferences"]}
        assert ignored["inference-worker"] == ["/spec/replicas"]


def test_api_gets_the_jobs_redis_and_the_overlay_quotas(
    objects: Objects, find_object: Any, repo_root: Path
) -> None:
    for env in jobs_envs(repo_root):
        quotas = overlay(repo_root, env).get("quotas") or {}
        config = find_object(objects[env], "ConfigMap", "inference-config")["data"]
        assert config["INFERENCE_JOBS_REDIS_URL"] == "redis://jobs-redis:6379/0"
        assert config["INFERENCE_QUOTA_REQUESTS_PER_MINUTE"] == str(quotas.get("requestsPerMinute", 0))
        assert config["INFERENCE_QUOTA_ROWS_PER_DAY"] == str(quotas.get("rowsPerDay", 0))
        assert config["INFERENCE_QUOTA_FAIL_OPEN"] == str(quotas.get("failOpen", False)).lower()
        container = _container(find_object(objects[env], "Deployment", "inference"))
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(Path(config["INFERENCE_JOBS_REDIS_PASSWORD_FILE"]).parent) in mounts


def test_environments_without_jobs_render_nothing_of_them(objects: Objects, repo_root: Path) -> None:
    off = [e for e in ("dev", "prod") if not (overlay(repo_root, e).get("jobs") or {}).get("enabled")]
    assert off
    for env in off:
        names = {o["metadata"]["name"] for o in objects[env]}
        assert not {n for n in names if "jobs-redis" in n or "worker" in n}, env
        config = [
            o
            for o in objects[env]
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "inference-config"
        ]
        assert not [k for k in config[0]["data"] if k.startswith(("INFERENCE_JOBS_", "INFERENCE_QUOTA_"))]


def test_min_workers_zero_and_overlay_bounds_flow_through(spec_copy: Path, edit_yaml: Any) -> None:
    def change(data: dict[str, Any]) -> None:
        data["jobs"]["minWorkers"], data["jobs"]["maxWorkers"] = 2, 7
        data["jobs"]["streamLengthPerWorker"] = 16
        data["quota"]["limitsCpu"] = "64"
        data["quota"]["pods"] = 60

    edit_yaml(spec_copy / "overlays" / "stage.yaml", change)
    rendered = render(spec_copy)
    objs = [yaml.safe_load(c) for n, c in rendered.folders["stage"].items() if n.endswith(".yaml")]
    scaled = of_kind(objs, "ScaledObject")["inference-worker"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 7)
    assert scaled["triggers"][0]["metadata"]["streamLength"] == "16"


def _problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_all(root)
    lines: list[str] = info.value.lines
    return lines


def _problems_without(root: Path, block: str) -> list[str]:
    """The spec's problems once `block` is cut out of its platform.yaml."""
    platform = root / "overlays" / "platform.yaml"
    text = platform.read_text()
    assert block in text
    platform.write_text(text.replace(block, "", 1))
    return _problems(root)


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "needle", "field", "fragments"),
    [
        (
            "  minWorkers: 0\n",
            "  minWorkers: 5\n",
            "maxWorkers: 3",
            "jobs.maxWorkers",
            ("3 is below minWorkers (5)", "allowed: maxWorkers >= minWorkers"),
        ),
        (
            "  minWorkers: 0\n",
            "  minWorkers: -1\n",
            "minWorkers: -1",
            "jobs.minWorkers",
            ("got -1", "greater than or equal to 0"),
        ),
        (
            "  enabled: true\n",
            "  enabled: false\n",
            "quotas:",
            "quotas",
            ("jobs.enabled is false", "allowed: jobs.enabled: true, or limits of 0"),
        ),
    ],
    ids=["max-below-min", "negative-min", "quotas-without-jobs"],
)
def test_bad_jobs_spec_is_one_line(
    spec_copy: Path, old: str, new: str, needle: str, field: str, fragments: tuple[str, ...]
) -> None:
    path = spec_copy / "overlays" / "stage.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    lines = _problems(spec_copy)
    (line,) = [x for x in lines if x.startswith("overlays/stage.yaml:") and f": {field}: " in x]
    assert len(line) <= 200
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert int(line.split(":")[1]) == _line_of(path, needle)


def test_a_service_monitor_without_the_scrapers_token_is_one_line(spec_copy: Path) -> None:
    """/metrics names the models, so a ServiceMonitor needs the scraper's token: without it, one line."""
    lines = _problems_without(
        spec_copy, "    metricsToken:\n      remoteKey: mlplatform/inference\n      property: metrics-token\n"
    )
    for env in ("stage", "prod"):  # the overlays with serviceMonitor: true
        path = spec_copy / "overlays" / f"{env}.yaml"
        (line,) = [x for x in lines if x.startswith(f"overlays/{env}.yaml:") and "metricsToken" in x]
        assert line.startswith(
            f"overlays/{env}.yaml:{_line_of(path, 'serviceMonitor: true')}: features.serviceMonitor: "
        )
        assert (
            "allowed: add services.inference.metricsToken to platform.yaml, or serviceMonitor: false" in line
        )
    assert not [x for x in lines if x.startswith("overlays/dev.yaml:")]


def test_jobs_without_the_platform_password_is_one_line(spec_copy: Path) -> None:
    lines = _problems_without(
        spec_copy, "jobs:\n  password:\n    remoteKey: mlplatform/jobs-redis\n    property: password\n"
    )
    (line,) = [x for x in lines if "jobs.enabled" in x]
    stage = spec_copy / "overlays" / "stage.yaml"
    assert line.startswith(f"overlays/stage.yaml:{_line_of(stage, '  enabled: true')}: jobs.enabled: ")
    assert "allowed: add jobs.password to platform.yaml, or enabled: false" in line


def test_jobs_with_a_canary_of_other_models_is_one_line(spec_copy: Path) -> None:
    """Workers run the stable models: a job sent to a canary of another model version would fail later."""
    prod = spec_copy / "overlays" / "prod.yaml"
    stage = (spec_copy / "overlays" / "stage.yaml").read_text()
    jobs_block = stage[stage.index("jobs:\n") : stage.index("quotas:\n")]
    text = prod.read_text()
    prod.write_text(text + jobs_block)
    lines = _problems(spec_copy)
    models_line = _line_of(prod, "    canary:") + 2  # canary:, imageDigest:, models:
    assert prod.read_text().splitlines()[models_line - 1].strip() == "models:"
    (line,) = [x for x in lines if "job worker" in x]
    assert line.startswith(f"overlays/prod.yaml:{models_line}: services.inference.canary.models: ")
    assert "breast-cancer 2 is not a stable model" in line
    assert "allowed: canary models among the stable ones, or no jobs" in line


def test_the_diagram_draws_the_worker_and_the_jobs_redis_in_the_namespace(repo_root: Path) -> None:
    for env in jobs_envs(repo_root):
        text = (repo_root / "dist" / env / "ARCHITECTURE.md").read_text()
        inside = text.split("  subgraph ", 1)[1].split("\n  end\n", 1)[0]
        declared = {line.split("[", 1)[0].strip() for line in inside.splitlines()[1:]}
        assert {"inference_worker", "jobs_redis"} <= declared
        # every arrow's ends are nodes drawn somewhere (mermaid would invent a bare node otherwise)
        nodes = {line.split("[", 1)[0].split("((", 1)[0].strip() for line in text.splitlines() if "[" in line}
        for line in text.splitlines():
            if "-->|" in line:
                source, rest = line.strip().split(" -->|", 1)
                target = rest.split("| ", 1)[1]
                assert {source, target} <= nodes | {"users"}, line


def test_two_services_with_jobs_each_get_their_own_stream_and_flows(
    spec_copy: Path, add_service: Any, find_object: Any
) -> None:
    """Each service's API and worker share one key prefix (so one stream and consumer group), no other
    service uses it, its ScaledObject measures that stream, and every flow the settings imply is allowed."""
    add_service(spec_copy, "fraud")
    objs = render(spec_copy).folders["stage"]
    parsed = [yaml.safe_load(text) for name, text in objs.items() if name.endswith(".yaml")]
    prefixes = {}
    for service in ("inference", "fraud"):
        api = find_object(parsed, "ConfigMap", f"{service}-config")["data"]
        worker = find_object(parsed, "ConfigMap", f"{service}-worker-config")["data"]
        assert api["INFERENCE_JOBS_PREFIX"] == worker["INFERENCE_JOBS_PREFIX"], service
        prefixes[service] = api["INFERENCE_JOBS_PREFIX"]
        scaled = find_object(parsed, "ScaledObject", f"{service}-worker")["spec"]
        assert scaled["triggers"][0]["metadata"]["stream"] == f"{prefixes[service]}:stream"
        policies = {o["metadata"]["name"] for o in parsed if o["kind"] == "NetworkPolicy"}
        for name in (
            f"allow-{service}-to-jobs-redis", f"allow-jobs-redis-from-{service}",
            f"allow-{service}-worker-to-jobs-redis", f"allow-jobs-redis-from-{service}-worker",
            f"allow-{service}-worker-to-redis", f"allow-redis-from-{service}-worker",
        ):  # fmt: skip
            assert name in policies, name
    assert prefixes["inference"] != prefixes["fraud"]


@pytest.mark.parametrize(
    ("edge", "fragment"),
    [
        ("fraud -> jobs-redis", "(jobs and quotas)"),
        ("fraud-worker -> jobs-redis", "(its jobs)"),
        ("fraud-worker -> redis", "(useCache)"),
    ],
)
def test_a_flow_the_jobs_settings_imply_must_be_a_connection(
    spec_copy: Path, add_service: Any, edge: str, fragment: str
) -> None:
    add_service(spec_copy, "fraud")
    platform = spec_copy / "overlays" / "platform.yaml"
    data = yaml.safe_load(platform.read_text())
    source, target = edge.split(" -> ")
    data["connections"] = [c for c in data["connections"] if (c["from"], c["to"]) != (source, target)]
    platform.write_text(yaml.safe_dump(data, sort_keys=False))
    lines = _problems(spec_copy)
    stage = spec_copy / "overlays" / "stage.yaml"
    (line,) = [x for x in lines if edge in x]
    assert line.startswith(f"overlays/stage.yaml:{_line_of(stage, '  enabled: true')}: jobs.enabled: true, ")
    assert (
        fragment in line and f"allowed: add `- {{from: {source}, to: {target}}}`, or enabled: false" in line
    )
    assert len(line) <= 200 and len(lines) == 1, lines
