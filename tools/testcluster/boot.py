"""Boot check: every Deployment that runs the inference image starts, with exactly its manifest's environment,
arguments and files, and passes its own readiness probe on its declared port.

Redis (each StatefulSet's first pod) is booted first the same way, so the service finds its cache at the
Service name it is configured with. Secrets come from the ExternalSecrets: each remote value is a fresh random
token from a test store, rendered through the ExternalSecret's template, and written as files.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testcluster import images, sandbox
from testcluster.apply import Manifest
from testcluster.errors import ClusterTestError

PROBE_BUDGET_CAP_S = 180.0
INIT_TIMEOUT_S = 120.0
#: The gRPC port (named as the generator names it) and how long its health may lag the HTTP readiness.
GRPC_PORT = "grpc"
GRPC_READY_S = 10.0
_TEMPLATE = re.compile(r"\{\{\s*\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: The label the StatefulSet controller sets on each of its pods (a client Service may select one pod by it).
POD_NAME = "statefulset.kubernetes.io/pod-name"
_VAR = re.compile(r"\$\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)")


@dataclass
class Objects:
    """The environment's objects by kind and name, and its secrets as the test store resolves them."""

    by_kind: dict[str, dict[str, Manifest]] = field(default_factory=dict)
    store: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def of(cls, manifests: list[Manifest]) -> Objects:
        found = cls()
        for m in manifests:
            found.by_kind.setdefault(str(m.obj["kind"]), {})[str(m.obj["metadata"]["name"])] = m
        return found

    def configmap(self, name: str, label: str) -> dict[str, str]:
        cm = self.by_kind.get("ConfigMap", {}).get(name)
        if cm is None:
            raise ClusterTestError(f"{label}: ConfigMap {name} is not in this environment's dist/ folder")
        return {str(k): str(v) for k, v in (cm.obj.get("data") or {}).items()}

    def secret(self, name: str, label: str) -> dict[str, str]:
        """The Secret an ExternalSecret would create: remote values from the test store, then its template."""
        es = next(
            (
                m
                for m in self.by_kind.get("ExternalSecret", {}).values()
                if (m.obj["spec"].get("target") or {}).get("name", m.obj["metadata"]["name"]) == name
            ),
            None,
        )
        if es is None:
            raise ClusterTestError(f"{label}: Secret {name} comes from no ExternalSecret in this environment")
        spec = es.obj["spec"]
        if spec.get("dataFrom"):
            raise ClusterTestError(f"{es.label}: dataFrom is not supported by the boot check")
        values = {}
        for item in spec.get("data") or []:
            ref = item["remoteRef"]
            key = (str(ref["key"]), str(ref.get("property", "")))
            values[str(item["secretKey"])] = self.store.setdefault(key, secrets.token_urlsafe(24))
        template = ((spec.get("target") or {}).get("template") or {}).get("data")
        if not template:
            return values

        def render(text: str) -> str:
            if "{{" in _TEMPLATE.sub("", text):
                raise ClusterTestError(
                    f"{es.label}: template syntax beyond {{{{ .key }}}} is not supported here"
                )
            return _TEMPLATE.sub(lambda m: values[m.group("name")], text)

        return {str(k): render(str(v)) for k, v in template.items()}


@dataclass
class Pod:
    name: str
    namespace: str
    label: str  # the manifest it comes from, for messages
    spec: dict[str, Any]
    claims: dict[str, str] = field(default_factory=dict)  # volume name -> claim folder key (StatefulSet)


def _write_files(
    folder: Path, data: dict[str, str], items: list[dict[str, Any]] | None, mode: int, gid: int | None
) -> None:
    folder.mkdir(parents=True)
    chosen = (
        [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else [(k, k, mode) for k in data]
    )
    for key, path, file_mode in chosen:
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[key], encoding="utf-8")
        target.chmod(file_mode)
        if gid is not None:
            shutil.chown(target, group=gid)


def _volumes(pod: Pod, objects: Objects, work: Path) -> dict[str, Path]:
    fs_group = (pod.spec.get("securityContext") or {}).get("fsGroup")
    found = {}
    for vol in pod.spec.get("volumes") or []:
        name, folder = vol["name"], work / "volumes" / pod.name / vol["name"]
        if "emptyDir" in vol:
            folder.mkdir(parents=True)
            folder.chmod(0o777)
        elif "secret" in vol:
            src = vol["secret"]
            data = objects.secret(src["secretName"], pod.label)
            _write_files(folder, data, src.get("items"), src.get("defaultMode", 0o644), fs_group)
        elif "configMap" in vol:
            src = vol["configMap"]
            data = objects.configmap(src["name"], pod.label)
            _write_files(folder, data, src.get("items"), src.get("defaultMode", 0o644), fs_group)
        elif "projected" in vol:
            _projected(pod, vol["projected"], objects, folder, fs_group)
        elif "persistentVolumeClaim" in vol:
            folder = _claim(work, vol["persistentVolumeClaim"]["claimName"], fs_group)
        else:
            raise ClusterTestError(
                f"{pod.label}: volume {name}: type {sorted(vol)} is not supported by the boot check"
            )
        found[name] = folder
    for name, claim in pod.claims.items():
        found[name] = _claim(work, claim, fs_group)
    return found


def _projected(pod: Pod, src: dict[str, Any], objects: Objects, folder: Path, gid: int | None) -> None:
    """A projected volume of ConfigMaps and Secrets: each source's items written into one folder."""
    folder.mkdir(parents=True)
    mode = src.get("defaultMode", 0o644)
    for source in src.get("sources") or []:
        if "configMap" in source:
            ref, data = source["configMap"], objects.configmap(source["configMap"]["name"], pod.label)
        elif "secret" in source:
            ref, data = source["secret"], objects.secret(source["secret"]["name"], pod.label)
        else:
            raise ClusterTestError(f"{pod.label}: projected source {sorted(source)} is not supported here")
        items = ref.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            target = folder / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]], encoding="utf-8")
            target.chmod(item.get("mode", mode))
            if gid is not None:
                shutil.chown(target, group=gid)


def _claim(work: Path, claim: str, fs_group: int | None) -> Path:
    """A PersistentVolumeClaim's volume: one folder per claim, shared by every pod that mounts it."""
    folder = work / "claims" / claim
    if not folder.exists():
        folder.mkdir(parents=True)
        if fs_group is not None:
            shutil.chown(folder, group=fs_group)
        folder.chmod(0o2775)
    return folder


def _env(pod: Pod, container: dict[str, Any], image: images.Image, objects: Objects) -> dict[str, str]:
    env = dict(image.env)
    env["HOSTNAME"] = pod.name
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = objects.configmap(source["configMapRef"]["name"], pod.label)
        else:
            data = objects.secret(source["secretRef"]["name"], pod.label)
        env.update({prefix + k: v for k, v in data.items()})
    fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace, "status.podIP": "127.0.0.1"}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = _VAR.sub(lambda m: env.get(m.group("name"), m.group(0)), str(item["value"]))
            continue
        ref = item.get("valueFrom") or {}
        if "configMapKeyRef" in ref:
            env[item["name"]] = objects.configmap(ref["configMapKeyRef"]["name"], pod.label)[
                ref["configMapKeyRef"]["key"]
            ]
        elif "secretKeyRef" in ref:
            env[item["name"]] = objects.secret(ref["secretKeyRef"]["name"], pod.label)[
                ref["secretKeyRef"]["key"]
            ]
        elif "fieldRef" in ref and ref["fieldRef"]["fieldPath"] in fields:
            env[item["name"]] = fields[ref["fieldRef"]["fieldPath"]]
        else:
            raise ClusterTestError(
                f"{pod.label}: env {item['name']}: {sorted(ref)} is not supported by the boot check"
            )
    return env


def _argv(container: dict[str, Any], image: images.Image, env: dict[str, str]) -> list[str]:
    command, args = container.get("command"), container.get("args")
    argv = (
        [*command, *(args or [])] if command else [*image.entrypoint, *(image.cmd if args is None else args)]
    )
    return [_VAR.sub(lambda m: env.get(m.group("name"), m.group(0)), str(a)) for a in argv]


def container_spec(
    pod: Pod, container: dict[str, Any], objects: Objects, work: Path, volumes: dict[str, Path]
) -> sandbox.Spec:
    image = images.image_for(container["image"])
    pod_sc = pod.spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", image.user[0] if image.user else 0))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", image.user[1] if image.user else 0))
    groups = [g for g in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])] if g is not None]
    mounts: list[sandbox.Mount] = []
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in volumes:
            raise ClusterTestError(
                f"{pod.label}: container {container['name']} mounts unknown volume {vm['name']}"
            )
        source = volumes[vm["name"]] / vm["subPath"] if vm.get("subPath") else volumes[vm["name"]]
        mounts.append(sandbox.Mount(vm["mountPath"], source, read_only=bool(vm.get("readOnly"))))
    env = _env(pod, container, image, objects)
    return sandbox.Spec(
        name=f"{pod.name}-{container['name']}",
        argv=_argv(container, image, env),
        env=env,
        mounts=mounts,
        uid=int(uid),
        gid=int(gid),
        groups=[int(g) for g in groups],
        read_only_root=bool(sc.get("readOnlyRootFilesystem")),
        rootfs=image.rootfs,
        workdir=container.get("workingDir", image.workdir),
    )


def probe_once(
    probe: dict[str, Any], container: dict[str, Any], running: sandbox.Running, net: sandbox.Network
) -> bool:
    timeout = float(probe.get("timeoutSeconds", 1))
    if "exec" in probe:
        return running.exec(list(probe["exec"]["command"]), timeout=timeout + 5).returncode == 0
    if "grpc" in probe:  # kubelet's gRPC probe: grpc.health.v1 Check of `service` on a port number
        return _grpc_serving(net, int(probe["grpc"]["port"]), str(probe["grpc"].get("service", "")), timeout)
    check = probe.get("httpGet") or probe.get("tcpSocket")
    if check is None:
        raise ClusterTestError(f"container {container['name']}: probe type {sorted(probe)} is not supported")
    port = check["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
    if "path" in (probe.get("httpGet") or {}):
        code = (
            "import sys,urllib.request\n"
            f"r=urllib.request.urlopen('http://127.0.0.1:{port}{check['path']}',timeout={timeout})\n"
            "sys.exit(0 if 200<=r.status<400 else 1)"
        )
    else:
        code = f"import socket; socket.create_connection(('127.0.0.1',{port}),timeout={timeout})"
    return net.run([sys.executable, "-c", code], timeout=timeout + 5).returncode == 0


def _grpc_serving(net: sandbox.Network, port: int, service: str, timeout: float) -> bool:
    """grpc.health.v1 answers SERVING for `service` on the port, as kubelet's gRPC probe asks."""
    code = (
        "import sys,grpc\n"
        "from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g\n"
        f"with grpc.insecure_channel('127.0.0.1:{port}') as c:\n"
        f"    r=g.HealthStub(c).Check(h.HealthCheckRequest(service={service!r}),timeout={timeout})\n"
        "sys.exit(0 if r.status==h.HealthCheckResponse.SERVING else 1)"
    )
    return net.run([sys.executable, "-c", code], timeout=timeout + 5).returncode == 0


def grpc_ready(container: dict[str, Any], net: sandbox.Network, pod: Pod) -> str | None:
    """None where the container declares no `grpc` port or its gRPC health service answers SERVING there
    (the server shares the process and readiness of the HTTP probes, which have passed by now)."""
    port = next((p["containerPort"] for p in container.get("ports", []) if p.get("name") == GRPC_PORT), None)
    if port is None:
        return None
    deadline = time.monotonic() + GRPC_READY_S
    while time.monotonic() < deadline:
        if _grpc_serving(net, int(port), "inference.GRPCInferenceService", 2.0):
            return None
        time.sleep(0.5)
    return f"{pod.label}: container {container['name']}: gRPC health on port {port} is not SERVING"


def wait_ready(
    container: dict[str, Any],
    running: sandbox.Running,
    net: sandbox.Network,
    pod: Pod,
    *,
    poll_s: float = 0.5,
) -> str | None:
    """None once the readiness probe passes (tried every `poll_s`); otherwise why not."""
    probe = container.get("readinessProbe")
    if probe is None:
        return f"{pod.label}: container {container['name']} has no readinessProbe to pass"
    startup = container.get("startupProbe") or probe
    budget = min(
        PROBE_BUDGET_CAP_S,
        float(startup.get("failureThreshold", 3)) * float(startup.get("periodSeconds", 10))
        + float(startup.get("initialDelaySeconds", 0)),
    )
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if running.popen.poll() is not None:
            code = running.popen.returncode
            return f"{pod.label}: container {container['name']} exited with code {code}: {running.tail()}"
        if probe_once(probe, container, running, net):
            return None
        time.sleep(poll_s)
    return f"{pod.label}: container {container['name']} not ready after {budget:.0f} s: {running.tail()}"


def boot_pod(
    pod: Pod, objects: Objects, work: Path, net: sandbox.Network, *, poll_s: float = 0.5
) -> tuple[list[sandbox.Running], str | None]:
    volumes = _volumes(pod, objects, work)
    for init in pod.spec.get("initContainers") or []:
        running = sandbox.start(container_spec(pod, init, objects, work, volumes), net, work)
        try:
            code = running.popen.wait(timeout=INIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            running.stop()
            return [], f"{pod.label}: init container {init['name']} did not finish in {INIT_TIMEOUT_S:.0f} s"
        if code != 0:
            return [], f"{pod.label}: init container {init['name']} exited with code {code}: {running.tail()}"
    started = []
    for container in pod.spec["containers"]:
        running = sandbox.start(container_spec(pod, container, objects, work, volumes), net, work)
        started.append(running)
        problem = wait_ready(container, running, net, pod, poll_s=poll_s) or grpc_ready(container, net, pod)
        if problem:
            return started, problem
    return started, None


def hosts_file(objects: Objects, namespace: str, path: Path, pods: dict[str, str] | None = None) -> Path:
    """Every Service name of the namespace (and each StatefulSet pod's stable name) resolves to loopback, or
    to the address of the StatefulSet pod it selects (`pods`: StatefulSet name -> its first pod's address)."""
    pods = pods or {}
    by_address: dict[str, list[str]] = {"127.0.0.1": ["localhost"]}
    labels = {
        name: sts.obj["spec"]["template"]["metadata"].get("labels") or {}
        for name, sts in objects.by_kind.get("StatefulSet", {}).items()
    }
    for svc, manifest in objects.by_kind.get("Service", {}).items():
        selector = dict((manifest.obj.get("spec") or {}).get("selector") or {})
        pod_name = selector.pop(POD_NAME, None)
        selected = [
            n
            for n, pod_labels in labels.items()
            if selector and selector.items() <= pod_labels.items() and pod_name in (None, f"{n}-0")
        ]
        address = pods.get(selected[0], "127.0.0.1") if selected else "127.0.0.1"
        by_address.setdefault(address, []).extend(
            [svc, f"{svc}.{namespace}", f"{svc}.{namespace}.svc", f"{svc}.{namespace}.svc.cluster.local"]
        )
    for name, sts in objects.by_kind.get("StatefulSet", {}).items():
        service = sts.obj["spec"].get("serviceName")
        if service:
            by_address.setdefault(pods.get(name, "127.0.0.1"), []).extend(
                [f"{name}-0.{service}", f"{name}-0.{service}.{namespace}.svc.cluster.local"]
            )
    lines = [f"{address} {' '.join(names)}" for address, names in by_address.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o644)
    return path


def _runs_inference_image(m: Manifest) -> bool:
    containers = m.obj["spec"]["template"]["spec"]["containers"]
    return any(c["image"].split("@", 1)[0].endswith("/mlplatform-inference") for c in containers)


#: Called while a booted Deployment's pod is ready, before it is stopped: (the Deployment, the environment's
#: objects, the pod's network, in which `net.run` reaches it on 127.0.0.1) -> a problem, or None.
WhileReady = Callable[[Manifest, Objects, sandbox.Network], str | None]


@dataclass
class Environment:
    """An environment's sandbox network with each StatefulSet's first pod booted (Redis first: the service
    finds its cache at the Service name it is configured with)."""

    objects: Objects
    namespace: str
    work: Path
    net: sandbox.Network
    booted: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def boot(
        self, deployment: Manifest, *, poll_s: float = 0.5, pod_name: str = "boot"
    ) -> tuple[list[sandbox.Running], str | None]:
        """One pod of a Deployment, as its template says (readiness tried every `poll_s`), named
        `<deployment>-<pod_name>` (its volumes' folder: one name per pod booted); the caller stops what it
        returns."""
        name = str(deployment.obj["metadata"]["name"])
        template = deployment.obj["spec"]["template"]["spec"]
        pod = Pod(f"{name}-{pod_name}", self.namespace, deployment.label, template)
        return boot_pod(pod, self.objects, self.work, self.net, poll_s=poll_s)


def inference_deployments(objects: Objects) -> list[Manifest]:
    return [m for m in objects.by_kind.get("Deployment", {}).values() if _runs_inference_image(m)]


@contextlib.contextmanager
def environment(manifests: list[Manifest]) -> Iterator[Environment]:
    """The environment's network and StatefulSets, stopped and removed on exit."""
    if not images.built():
        raise ClusterTestError(f"no image is built in {images.IMAGES}; run `make image` first")
    objects = Objects.of(manifests)
    deployments = inference_deployments(objects)
    if not deployments:
        raise ClusterTestError("no Deployment runs the inference image in this environment")
    namespace = str(deployments[0].obj["metadata"]["namespace"])
    statefulsets = list(objects.by_kind.get("StatefulSet", {}).values())
    # every image first (found by digest and unpacked): a digest no build made stops here, before any boot
    for m in [*statefulsets, *deployments]:
        pod_spec = m.obj["spec"]["template"]["spec"]
        for container in [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]]:
            images.image_for(container["image"])
    work = Path(tempfile.mkdtemp(prefix="mlplatform-boot-"))
    work.chmod(0o755)
    running: list[sandbox.Running] = []
    linked: list[sandbox.Network] = []
    try:
        with sandbox.network(work / "hosts") as net:
            env = Environment(objects, namespace, work, net)
            # each StatefulSet's first pod in a network of its own (two Redis both listen on 6379)
            addresses: dict[str, str] = {}
            for index, sts in enumerate(statefulsets):
                pod_net, addresses[sts.obj["metadata"]["name"]] = net.linked(index)
                linked.append(pod_net)
            hosts_file(objects, namespace, work / "hosts", addresses)
            for sts, pod_net in zip(statefulsets, linked, strict=True):
                name = f"{sts.obj['metadata']['name']}-0"
                claims = {
                    t["metadata"]["name"]: f"{t['metadata']['name']}-{name}"
                    for t in sts.obj["spec"].get("volumeClaimTemplates") or []
                }
                pod = Pod(name, namespace, sts.label, sts.obj["spec"]["template"]["spec"], claims)
                started, problem = boot_pod(pod, objects, work, pod_net)
                running += started
                if problem:
                    env.failures.append(problem)
                else:
                    env.booted.append(f"StatefulSet {sts.obj['metadata']['name']}")
            yield env
    finally:
        for r in running:
            r.stop()
        for pod_net in linked:
            pod_net.close()
        _cleanup(work)


def boot_environment(
    manifests: list[Manifest], *, while_ready: WhileReady | None = None
) -> tuple[list[str], list[str]]:
    """Boot Redis, then each inference Deployment in turn; the names booted and every failure."""
    if not inference_deployments(Objects.of(manifests)):
        return [], []
    with environment(manifests) as env:
        for dep in inference_deployments(env.objects):
            started, problem = env.boot(dep)
            if problem is None and while_ready is not None:
                problem = while_ready(dep, env.objects, env.net)
            for r in started:
                r.stop()
            if problem:
                env.failures.append(problem)
            else:
                env.booted.append(f"Deployment {dep.obj['metadata']['name']}")
        return env.booted, env.failures


def _cleanup(work: Path) -> None:
    """The mounts lived in the sandboxes' own mount namespaces, gone with them; remove the files."""
    shutil.rmtree(work, ignore_errors=True)
