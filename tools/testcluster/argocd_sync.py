"""`python -m testcluster.argocd_sync [--keep]` (make argocd-test): Argo CD itself syncs this repository.

On fresh control planes with simulated nodes (one per destination cluster), the pinned Argo CD (repo server +
application controller, out of cluster) is pointed at a loopback git server that serves this repository at
HEAD. Bootstrapping is what a person does once: apply the root Application. Everything after that is Argo CD's
doing, and the evidence is Argo CD's own status (Application sync/health, operationState.syncResult).
Expectations come from the spec (overlays/*.yaml: environments, their clusters and sync modes) and from the
manifests' own annotations, not from dist/argocd/.

The only change made to what is served: the repository URL in dist/argocd/ points at the loopback server
(Applications' repoURL and, so that the project check still applies, the AppProject's sourceRepos entry for
the same URL). Destinations are not rewritten: cluster Secrets keep their URLs (testcluster.argocd).

Where no operator runs here (External Secrets, KEDA, ingress and Gateway controllers, a volume provisioner),
testcluster.standins writes the status the operator would; Deployments, StatefulSets and Pods get theirs from
the real controllers, kube-scheduler and kwok.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import itertools
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from testcluster import argocd, processes, standins
from testcluster.apply import WAVE, install_crds, kinds_in, load_folder
from testcluster.controlplane import ControlPlane, control_plane
from testcluster.errors import ClusterTestError
from testcluster.gitserver import GitServer, git, git_server
from testcluster.kubeapi import ApiError, Kube
from testcluster.nodes import start_nodes
from testcluster.proxy import cluster_proxy
from testcluster.versions import REPO_ROOT

APP = ("argoproj.io/v1alpha1", "Application")
PROJECT = ("argoproj.io/v1alpha1", "AppProject")
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
FINALIZER = "resources-finalizer.argocd.argoproj.io/foreground"
NON_ENVS = ("argocd", "cluster-policies")
EXTRA_SERVICE = "scorer"  # the service the test-only branch adds and then removes
#: The kind whose CRD arrives late in the cluster Argo CD runs in: dist/cluster-policies/ (the root's wave -1)
#: uses it.
LATE_KIND = ("kyverno.io", "ClusterPolicy")
ARGOCD_CM = "configmap-argocd-cm.yaml"


class Failed(AssertionError):
    pass


@dataclass(frozen=True)
class Env:
    name: str
    namespace: str
    server: str
    automated: bool
    windows: bool  # the spec gives it sync windows


def spec_environments(root: Path) -> list[Env]:
    """Environments as the spec defines them (overlays/<env>.yaml), not as dist/argocd/ says."""
    found = []
    for path in sorted((root / "overlays").glob("*.yaml")):
        if path.stem == "platform":
            continue
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        found.append(
            Env(
                path.stem,
                spec["namespace"],
                spec["cluster"]["server"],
                spec.get("sync", {}).get("mode") == "automated",
                bool(spec.get("sync", {}).get("windows")),
            )
        )
    return found


def platform_spec(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((root / "overlays" / "platform.yaml").read_text(encoding="utf-8"))
    return data


@dataclass
class Log:
    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f}s] {text}"
        self.lines.append(line)
        print(line, flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


# --- the served repository -------------------------------------------------------------------------------


def point_at(server: GitServer, repo_url: str) -> None:
    """Replace the repository URL in the work clone's dist/argocd/ with the loopback server's."""
    for path in sorted((server.work / "dist" / "argocd").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if repo_url in text:
            path.write_text(text.replace(repo_url, server.url), encoding="utf-8")


def synth(work: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "main.py"], cwd=work, capture_output=True, text=True, check=False, timeout=300
    )
    if proc.returncode != 0:
        tail = [line for line in proc.stderr.splitlines() if not line.startswith("b'")][-3:]
        raise ClusterTestError(f"synth in the test clone failed: {' | '.join(tail)}")


def set_windows(work: Path, envs: list[Env], *, open_now: bool) -> str:
    """Replace the sync windows of each environment that has some in the spec by one computed from the test's
    clock, so the outcome does not depend on when the test runs: open (from the full hour before the last one,
    for three hours: at least an hour left) or closed (opening in one to two hours, for one hour, daily)."""
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(hours=1)) if open_now else (now + dt.timedelta(hours=2))
    window = {"schedule": f"0 {start.hour} * * *", "duration": "3h" if open_now else "1h", "timeZone": "UTC"}
    for env in envs:
        if env.windows:
            path = work / "overlays" / f"{env.name}.yaml"
            overlay = yaml.safe_load(path.read_text(encoding="utf-8"))
            overlay["sync"]["windows"] = [window]
            path.write_text(yaml.safe_dump(overlay, sort_keys=False), encoding="utf-8")
    return f"{window['schedule']} for {window['duration']} UTC (now {now:%H:%M} UTC)"


def add_service(work: Path, name: str) -> None:
    """The spec change of the test-only branch: a second service shaped like the first, in every overlay."""
    path = work / "overlays" / "platform.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    first = next(iter(spec["services"]))
    spec["services"][name] = copy.deepcopy(spec["services"][first])
    renamed = {first: name, f"{first}-worker": f"{name}-worker"}  # the service and its jobs worker
    spec["connections"] += [
        {k: renamed.get(v, v) for k, v in c.items()}
        for c in spec["connections"]
        if c["from"] in renamed or c["to"] in renamed
    ]
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    for env in spec_environments(work):
        path = work / "overlays" / f"{env.name}.yaml"
        overlay = yaml.safe_load(path.read_text(encoding="utf-8"))
        service = copy.deepcopy(overlay["services"][first])
        service.pop("canary", None)
        if "host" in service:
            service["host"] = f"{name}.{service['host']}"
        overlay["services"][name] = service
        path.write_text(yaml.safe_dump(overlay, sort_keys=False), encoding="utf-8")


# --- Argo CD's status ------------------------------------------------------------------------------------


class SyncRecorder:
    """Every version of every Application, watched from before the root exists: keeps each app as first seen
    with a finished sync that lists its objects.

    A later operation (self-heal of an autoscaled field, "successfully synced (no more tasks)") replaces
    operationState with an empty result, and can do so between two polls; a watch sees each version the
    apiserver stored, so the wave order is read from this snapshot whatever the timing.
    """

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.first_full_sync: dict[str, dict[str, Any]] = {}
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="argocd-sync-recorder", daemon=True)

    def __enter__(self) -> SyncRecorder:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=20)

    def record(self, app: dict[str, Any]) -> None:
        name = str(app["metadata"]["name"])
        with self._lock:
            if name not in self.first_full_sync and _has_sync_result(app):
                self.first_full_sync[name] = app

    def first(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.first_full_sync.get(name)

    def _run(self) -> None:
        since = ""
        while not self._stop.is_set():
            try:
                if not since:  # at the start, and after the apiserver says `since` has expired
                    items, since = self.kube.list_at(*APP, argocd.NAMESPACE)
                    for item in items:
                        self.record(item)
                for kind, obj in self.kube.watch(*APP, argocd.NAMESPACE, since=since, timeout_s=5):
                    if kind == "ERROR":
                        since = ""
                        break
                    since = str(obj["metadata"]["resourceVersion"])
                    if kind in ("ADDED", "MODIFIED"):
                        self.record(obj)
            except (httpx.HTTPError, ApiError) as exc:
                if self._stop.is_set():
                    return
                self.error = exc
                time.sleep(0.5)


@dataclass
class Apps:
    kube: Kube
    log: Log
    recorder: SyncRecorder

    def get(self, name: str) -> dict[str, Any] | None:
        app = self.kube.get(*APP, argocd.NAMESPACE, name)
        if app is not None:
            self.recorder.record(app)
        return app

    def names(self) -> set[str]:
        return {a["metadata"]["name"] for a in self.kube.list(*APP, argocd.NAMESPACE)}

    @staticmethod
    def state(app: dict[str, Any] | None) -> str:
        if app is None:
            return "absent"
        status = app.get("status", {})
        op = status.get("operationState", {})
        return (
            f"sync={status.get('sync', {}).get('status')} health={status.get('health', {}).get('status')} "
            f"revision={str(status.get('sync', {}).get('revision'))[:10]} operation={op.get('phase')}"
        )

    def describe(self, name: str) -> str:
        app = self.get(name)
        if app is None:
            return f"{name}: absent"
        status = app.get("status", {})
        resources = sorted(  # the unhealthy first: they hold a sync wave back
            status.get("resources", []), key=lambda r: r.get("health", {}).get("status") in (None, "Healthy")
        )
        bad = [
            f"{r.get('kind')} {r.get('namespace', '')}/{r.get('name')} "
            f"{r.get('status')}/{r.get('health', {}).get('status')}"
            f"{': ' + r['health']['message'] if r.get('health', {}).get('message') else ''}"
            for r in resources
            if r.get("status") != "Synced" or r.get("health", {}).get("status") not in (None, "Healthy")
        ]
        conditions = [f"{c.get('type')}: {c.get('message')}" for c in status.get("conditions", [])]
        op = status.get("operationState", {})
        return (
            f"{name}: {self.state(app)}; operation message: {op.get('message')}; conditions: {conditions}; "
            f"not synced/healthy: {bad[:12]}"
        )

    def refresh(self, *names: str) -> None:
        """What a git webhook does: ask Argo CD to look at the repository now."""
        for name in names:
            self.kube.patch(
                *APP,
                argocd.NAMESPACE,
                name,
                {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}},
            )

    def wait(
        self,
        names: list[str],
        ok: Callable[[dict[str, Any]], bool],
        what: str,
        timeout_s: float,
        alive: Callable[[], None],
        refresh_every_s: float = 0,
    ) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        last_refresh = time.monotonic()
        while True:
            alive()
            apps = {n: self.get(n) for n in names}
            if all(a is not None and ok(a) for a in apps.values()):
                self.log(f"{what}: " + "; ".join(f"{n} {self.state(a)}" for n, a in apps.items()))
                return {n: a for n, a in apps.items() if a is not None}
            if time.monotonic() > deadline:
                raise Failed(
                    f"{what} not reached in {timeout_s:.0f} s: "
                    + " || ".join(self.describe(n) for n in names)
                )
            if refresh_every_s and time.monotonic() - last_refresh > refresh_every_s:
                self.refresh(*[n for n, a in apps.items() if a is not None])
                last_refresh = time.monotonic()
            time.sleep(1.0)


def refreshed_since(before: str | None) -> Callable[[dict[str, Any]], bool]:
    """Argo CD has compared the app again (the refresh annotation is consumed, reconciledAt moved)."""

    def ok(app: dict[str, Any]) -> bool:
        annotations = app.get("metadata", {}).get("annotations") or {}
        return bool(
            app.get("status", {}).get("reconciledAt") != before
            and "argocd.argoproj.io/refresh" not in annotations
        )

    return ok


def synced_keeping(revision: str, kept: set[tuple[str, str]]) -> Callable[[dict[str, Any]], bool]:
    """Synced and Healthy at `revision`, while the objects Argo CD must not prune (Prune=false) are still
    listed as requiring pruning (how Argo CD shows what a person may delete): being kept does not hold the
    Application OutOfSync (their IgnoreExtraneous compare option)."""

    def ok(app: dict[str, Any]) -> bool:
        status = app.get("status", {})
        extraneous = {(r["kind"], r["name"]) for r in status.get("resources", []) if r.get("requiresPruning")}
        return bool(synced_healthy(revision)(app) and extraneous == kept)

    return ok


def _has_sync_result(app: dict[str, Any]) -> bool:
    op = app.get("status", {}).get("operationState", {})
    return op.get("phase") == "Succeeded" and bool(op.get("syncResult", {}).get("resources"))


def synced_healthy(revision: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def ok(app: dict[str, Any]) -> bool:
        status = app.get("status", {})
        return (
            status.get("sync", {}).get("status") == "Synced"
            and status.get("health", {}).get("status") == "Healthy"
            and status.get("operationState", {}).get("phase") in (None, "Succeeded")
            and (revision is None or status.get("sync", {}).get("revision") == revision)
            and app.get("operation") is None
        )

    return ok


# --- the scenario ----------------------------------------------------------------------------------------


@dataclass
class Scenario:
    kube: Kube  # the cluster Argo CD runs in
    kubes: dict[str, Kube]  # destination server -> its cluster
    apps: Apps
    served: GitServer
    log: Log
    alive: Callable[[], None]
    envs: list[Env]
    timeout_s: float = 180.0
    scaled: dict[str, tuple[str, int]] = field(default_factory=dict)  # env -> (Deployment, replicas) set

    def app_of(self, path: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.kube.list(*APP, argocd.NAMESPACE)
            if a["spec"].get("source", {}).get("path") == path
        ]

    def env_app(self, env: Env) -> str:
        found = self.app_of(f"dist/{env.name}")
        check(len(found) == 1, f"expected one Application for dist/{env.name}, found {len(found)}")
        return str(found[0]["metadata"]["name"])

    def root_creates_every_app(self, root: str) -> tuple[list[str], list[str]]:
        deadline = time.monotonic() + self.timeout_s
        servers = sorted({e.server for e in self.envs})
        while True:
            self.alive()
            envs_found = {e.name: self.app_of(f"dist/{e.name}") for e in self.envs}
            policies = self.app_of("dist/cluster-policies")
            policy_servers = sorted(a["spec"]["destination"]["server"] for a in policies)
            if all(len(v) == 1 for v in envs_found.values()) and policy_servers == servers:
                break
            if time.monotonic() > deadline:
                raise Failed(
                    f"the root app did not create every Application in {self.timeout_s:.0f} s: environments "
                    f"{ {k: len(v) for k, v in envs_found.items()} }, cluster-policies for {policy_servers} "
                    f"(want {servers}); {self.apps.describe(root)}"
                )
            time.sleep(1.0)
        for env in self.envs:
            app = envs_found[env.name][0]
            check(
                app["spec"]["destination"] == {"server": env.server, "namespace": env.namespace},
                f"Application for {env.name} has destination {app['spec']['destination']}, the spec says "
                f"{env.server} {env.namespace}",
            )
        env_apps = [str(v[0]["metadata"]["name"]) for v in envs_found.values()]
        policy_apps = sorted(str(a["metadata"]["name"]) for a in policies)
        self.log(f"root app created {', '.join(env_apps)} and cluster-policies {', '.join(policy_apps)}")
        return env_apps, policy_apps

    def sync_order(self, env: Env, app: dict[str, Any]) -> None:
        """Waves from the manifests' annotations; order from Argo CD's sync result and from creation times."""
        waves = {
            (m.obj["kind"], m.obj["metadata"]["name"]): int(
                (m.obj["metadata"].get("annotations") or {}).get(WAVE, "0")
            )
            for m in load_folder(self.served.work / "dist" / env.name)
        }
        results = app["status"]["operationState"]["syncResult"]["resources"]
        order = [(r["kind"], r["name"]) for r in results if (r["kind"], r["name"]) in waves]
        check(len(order) == len(waves), f"{env.name}: sync result lists {len(order)} of {len(waves)} objects")
        seen = [waves[k] for k in order]
        check(
            seen == sorted(seen),
            f"{env.name}: Argo CD synced out of wave order: {list(zip(order, seen, strict=True))}",
        )

        def position(pred: Callable[[tuple[str, str]], bool]) -> list[int]:
            return [i for i, k in enumerate(order) if pred(k)]

        first_tier = position(lambda k: k[0] in ("Namespace", "ResourceQuota", "NetworkPolicy"))
        middle = position(lambda k: k[0] == "ExternalSecret" or k == ("StatefulSet", "redis"))
        service = position(lambda k: k[0] in ("Deployment",) or k == ("Service", "inference"))
        check(
            bool(first_tier and middle and service)
            and max(first_tier) < min(middle)
            and max(middle) < min(service),
            f"{env.name}: expected namespace, quota and network policies before secrets and Redis before the "
            f"service; Argo CD's order was {order}",
        )
        # Independent of the sync result: the API server's creation times follow the waves too.
        created: dict[int, list[str]] = {}
        for (kind, name), wave in waves.items():
            api_version = next(
                m.obj["apiVersion"]
                for m in load_folder(self.served.work / "dist" / env.name)
                if (m.obj["kind"], m.obj["metadata"]["name"]) == (kind, name)
            )
            ns = None if kind == "Namespace" else env.namespace
            live = self.kubes[env.server].get(api_version, kind, ns, name)
            check(live is not None, f"{env.name}: {kind} {name} is not in the cluster after the sync")
            assert live is not None
            created.setdefault(wave, []).append(live["metadata"]["creationTimestamp"])
        ordered = sorted(created)
        for a, b in itertools.pairwise(ordered):
            check(
                max(created[a]) <= min(created[b]),
                f"{env.name}: an object of wave {a} was created after one of wave {b}",
            )
        summary = " -> ".join(
            f"wave {w}: " + ", ".join(sorted({k for (k, _n), v in waves.items() if v == w})) for w in ordered
        )
        self.log(f"{env.name} synced in wave order ({len(order)} objects): {summary}")


def _autoscaled(work: Path, env: Env) -> tuple[str, int] | None:
    """(Deployment name, a replica count an autoscaler could set) from the env's HPA or ScaledObject."""
    for m in load_folder(work / "dist" / env.name):
        spec = m.obj.get("spec", {})
        if m.obj["kind"] == "HorizontalPodAutoscaler":
            return str(spec["scaleTargetRef"]["name"]), int(spec["maxReplicas"])
        if m.obj["kind"] == "ScaledObject":
            return str(spec["scaleTargetRef"]["name"]), int(spec["maxReplicaCount"])
    return None


IN_CLUSTER = argocd.IN_CLUSTER


def cluster_name(server: str) -> str:
    return "in-cluster" if server == IN_CLUSTER else (urlsplit(server).hostname or server).split(".")[0]


def _terminate(planes: list[ControlPlane]) -> None:
    for plane in planes:
        for proc in plane.processes:
            processes.signal_group(proc.popen, signal.SIGTERM)


def run(keep: bool = False) -> list[str]:
    log = Log()
    envs = spec_environments(REPO_ROOT)
    repo_url = platform_spec(REPO_ROOT)["argocd"]["repoUrl"]
    root_file = REPO_ROOT / "dist" / "argocd" / "application-mlplatform-root.yaml"
    # One control plane per destination cluster: Argo CD runs against the in-cluster one. Clusters are kept
    # apart because dist/cluster-policies/ goes to every cluster: on one apiserver two Applications would own
    # the same ClusterPolicies and undo each other's sync.
    servers = sorted({e.server for e in envs} | {IN_CLUSTER}, key=lambda s: (s != IN_CLUSTER, s))
    with ExitStack() as stack:
        kubes: dict[str, Kube] = {}
        tokens: dict[str, str] = {}
        urls: dict[str, str] = {}
        planes = []
        kinds = kinds_in(REPO_ROOT / "dist")  # the CRDs dist/ uses, Application and AppProject among them
        loops: list[standins.StandInLoop] = []
        check(
            LATE_KIND
            in {
                (str(m.obj["apiVersion"]).rpartition("/")[0], str(m.obj["kind"]))
                for m in load_folder(REPO_ROOT / "dist" / "cluster-policies")
            },
            f"dist/cluster-policies/ has no {LATE_KIND[1]}: choose another kind to arrive late",
        )
        for server in servers:
            plane = stack.enter_context(control_plane(keep=keep))
            planes.append(plane)
            kube = Kube(stack.enter_context(plane.client()))
            # The cluster Argo CD runs in gets one CRD late (_waves_gate installs it).
            crds = install_crds(kube, kinds - {LATE_KIND} if server == IN_CLUSTER else kinds)
            nodes = start_nodes(plane, kube)
            kubes[server], tokens[server], urls[server] = kube, plane.token, plane.url
            log(
                f"{cluster_name(server)}: control plane at {plane.url} ({plane.workdir}), {crds} CRDs, "
                f"{len(nodes)} nodes"
            )
            managed = {e.namespace for e in envs if e.server == server} | {"kyverno"}
            helper = Kube(stack.enter_context(plane.client()))
            loops.append(stack.enter_context(standins.StandInLoop(standins.StandIns(helper, managed))))
        # On the way out, signal every process of every plane at once; each plane's stop() then only waits.
        # Stopping them one plane after another doubles the apiservers' graceful shutdown.
        stack.callback(_terminate, planes)
        home = planes[0]
        served = stack.enter_context(git_server(REPO_ROOT, home.workdir / "git"))
        window = set_windows(served.work, envs, open_now=True)
        if any(e.windows for e in envs):
            synth(served.work)
        point_at(served, repo_url)
        head = served.push(
            served.commit("test: serve from the loopback git server, sync windows open"), "main"
        )
        log(
            f"git server {served.url} serves {git(REPO_ROOT, 'rev-parse', '--short', 'HEAD')} "
            f"(+ commit {head[:10]}: repository URL; windows of {[e.name for e in envs if e.windows]} open: "
            f"{window})"
        )
        proxy = stack.enter_context(cluster_proxy(urls))
        clusters = {cluster_name(s): (s, tokens[s]) for s in servers}
        argocd.configure(kubes[IN_CLUSTER], clusters, proxy.url)
        argocd.start(home)
        log(
            f"Argo CD up (repo server, application controller, Redis); clusters {sorted(clusters)} "
            f"via {proxy.url}"
        )

        def alive() -> None:
            for plane in planes:
                plane.check_alive()
            for loop in loops:
                if loop.error is not None:
                    raise ClusterTestError(f"an operator stand-in failed: {loop.error}")

        watcher = Kube(stack.enter_context(home.client(timeout=60.0)))
        recorder = stack.enter_context(SyncRecorder(watcher))
        apps = Apps(kubes[IN_CLUSTER], log, recorder)
        scenario = Scenario(kubes[IN_CLUSTER], kubes, apps, served, log, alive, envs)
        return _assertions(scenario, served, root_file, log)
    raise AssertionError("unreachable")


def _assertions(s: Scenario, served: GitServer, root_file: Path, log: Log) -> list[str]:
    kube, apps = s.kube, s.apps
    # The bootstrap a person does once: the argocd-cm patch (`kubectl apply` merges its keys into the
    # install's argocd-cm), then the root Application.
    cm = yaml.safe_load((served.work / "dist" / "argocd" / ARGOCD_CM).read_text(encoding="utf-8"))
    kube.patch("v1", "ConfigMap", argocd.NAMESPACE, cm["metadata"]["name"], {"data": cm["data"]})
    root_doc = yaml.safe_load((served.work / "dist" / "argocd" / root_file.name).read_text(encoding="utf-8"))
    result = kube.apply(root_doc)
    check(result.ok, f"applying the root Application: {result.message}")
    root = str(root_doc["metadata"]["name"])
    log(f"applied the argocd-cm patch ({len(cm['data'])} health checks) and the root Application {root}")

    policies_done = _waves_gate(s, root)
    env_apps, policy_apps = s.root_creates_every_app(root)
    for name in env_apps:
        app = apps.get(name)
        assert app is not None
        created = app["metadata"]["creationTimestamp"]
        check(
            created >= policies_done,
            f"{name} was created at {created}, before the cluster policies were Healthy at {policies_done}",
        )
    log(
        f"the environments' Applications were created after the cluster policies became Healthy "
        f"({policies_done})"
    )
    auto = [e for e in s.envs if e.automated]
    manual = [e for e in s.envs if not e.automated]
    head = git(served.bare, "rev-parse", "refs/heads/main")
    done = apps.wait(
        [root, *policy_apps, *[s.env_app(e) for e in auto]],
        synced_healthy(head),
        "automated sync done",
        s.timeout_s,
        s.alive,
    )
    for env in auto:
        op = done[s.env_app(env)]["status"]["operationState"]
        check(
            op.get("operation", {}).get("initiatedBy", {}).get("automated") is True,
            f"{env.name} was synced, but not by Argo CD's automated policy: {op.get('operation')}",
        )
    for env in manual:
        app = apps.get(s.env_app(env))
        assert app is not None
        status = app.get("status", {})
        check(
            status.get("sync", {}).get("status") == "OutOfSync" and "operationState" not in status,
            f"{env.name} should wait for a person, but is {apps.state(app)}",
        )
        check(
            s.kubes[env.server].get("v1", "Namespace", None, env.namespace) is None,
            f"{env.name}'s namespace {env.namespace} exists before anyone synced it",
        )
        log(f"{env.name} waits for a person: {apps.state(app)}, namespace {env.namespace} not created")

    for env in manual:
        name = s.env_app(env)
        kube.patch(
            *APP,
            argocd.NAMESPACE,
            name,
            {"operation": {"initiatedBy": {"username": "argocd-test"}, "sync": {"revision": head}}},
        )
        log(f"triggered the sync of {name} (as `argocd app sync {name}` does)")
    apps.wait([s.env_app(e) for e in manual], synced_healthy(head), "manual sync done", s.timeout_s, s.alive)

    for env in s.envs:
        name = s.env_app(env)
        first = apps.recorder.first(name)
        check(
            first is not None,
            f"{name}: no finished sync listing its objects was seen (watch error: {apps.recorder.error})",
        )
        assert first is not None
        s.sync_order(env, first)

    # An autoscaler changes replicas: the app stays Synced.
    for env in s.envs:
        target = _autoscaled(served.work, env)
        if target is None:
            continue
        deployment, replicas = target
        s.scaled[env.name] = target
        s.kubes[env.server].patch(
            "apps/v1",
            "Deployment",
            env.namespace,
            deployment,
            {"spec": {"replicas": replicas}},
            subresource="scale",
        )
        name = s.env_app(env)
        before = (apps.get(name) or {}).get("status", {}).get("reconciledAt")
        apps.refresh(name)
        apps.wait(
            [name],
            refreshed_since(before),
            f"{env.name} refreshed after scaling",
            s.timeout_s,
            s.alive,
        )
        app = apps.get(name)
        assert app is not None
        live = s.kubes[env.server].get("apps/v1", "Deployment", env.namespace, deployment)
        assert live is not None
        check(
            app["status"]["sync"]["status"] == "Synced" and live["spec"]["replicas"] == replicas,
            f"{env.name}: after scaling {deployment} to {replicas}: {apps.state(app)}, live replicas "
            f"{live['spec']['replicas']}",
        )
        log(
            f"{env.name}: {deployment} scaled to {replicas} as its autoscaler would; "
            f"app still {apps.state(app)}"
        )

    _self_heal_control(s)
    removed = _remove_service(s, served, env_apps, log)
    _delete_child(s, root, removed)
    _sync_window(s, served, root)
    _policy_gate(served, log)
    took = time.monotonic() - log.started
    log(f"Argo CD test passed in {took:.0f} s")
    return log.lines


def _operation(app: dict[str, Any] | None) -> dict[str, Any]:
    op: dict[str, Any] = (app or {}).get("status", {}).get("operationState", {})
    return op


def _waves_gate(s: Scenario, root: str) -> str:
    """The root's waves gate for real, and a failed sync is retried.

    The cluster Argo CD runs in lacks one CRD that dist/cluster-policies/ (the root's wave -1) uses, so that
    Application's sync fails. Its retry policy tries again with backoff; meanwhile its health is not Healthy,
    and the root (through argocd-cm's Application health check) waits on it before creating the environments
    (wave 0): none exists while it fails. Then the CRD arrives: the retry succeeds, the root goes on.
    Returns when the cluster policies became Healthy (their sync's finishedAt)."""
    apps, kube = s.apps, s.kubes[IN_CLUSTER]
    envs = {f"dist/{e.name}" for e in s.envs}
    deadline = time.monotonic() + s.timeout_s
    while True:
        s.alive()
        early = [str(a["metadata"]["name"]) for a in s.kube.list(*APP, argocd.NAMESPACE)
                 if a["spec"].get("source", {}).get("path") in envs]  # fmt: skip
        check(not early, f"the root created {early} while the cluster policies could not sync")
        found = [
            a for a in s.app_of("dist/cluster-policies") if a["spec"]["destination"]["server"] == IN_CLUSTER
        ]
        policies = str(found[0]["metadata"]["name"]) if found else None
        op = _operation(apps.get(policies) if policies else None)
        root_op = _operation(apps.get(root))
        waiting = f"healthy state of argoproj.io/Application/{policies}" in str(root_op.get("message"))
        if policies and op.get("retryCount", 0) >= 1 and waiting:
            break
        if time.monotonic() > deadline:
            raise Failed(
                f"the cluster policies' sync did not fail and retry with the root waiting on it in "
                f"{s.timeout_s:.0f} s: {apps.describe(policies or '(none)')} || {apps.describe(root)}"
            )
        time.sleep(1.0)
    failed_at = (  # the failed attempt's revision, else the one commit served while it failed
        op.get("syncResult", {}).get("revision")
        or op.get("operation", {}).get("sync", {}).get("revision")
        or git(s.served.bare, "rev-parse", "refs/heads/main")
    )
    s.log(
        f"{policies} fails without its {LATE_KIND[1]} CRD and is retried (retryCount {op['retryCount']}: "
        f"{str(op.get('message'))[:160]}); the root waits: {root_op.get('message')}; no environment exists"
    )
    install_crds(kube, {LATE_KIND})
    s.log(f"the {LATE_KIND[1]} CRD arrived")

    assert policies is not None
    apps.wait([policies], synced_healthy(), f"{policies} synced", s.timeout_s, s.alive)
    # Its first successful sync, as the watch first saw it (the retried operation's retryCount is shown, not
    # required: the retry itself was seen above). Automated sync never starts a new sync of a revision whose
    # last attempt failed, so success at the failed revision, with no new commit, is the retry's doing.
    app = apps.recorder.first(policies)
    op = _operation(app)
    synced_at = (app or {}).get("status", {}).get("sync", {}).get("revision")
    check(
        synced_at == failed_at,
        f"{policies} synced {synced_at}, not the revision whose sync failed and was retried ({failed_at})",
    )
    s.log(f"{policies}: {op.get('message')} (retryCount {op.get('retryCount')}), finished {op['finishedAt']}")
    return str(op["finishedAt"])


def _delete_child(s: Scenario, root: str, revision: str) -> None:
    """Deleting an environment's Application deletes what it deployed (its resources finalizer), except what
    the manifests mark Delete=false: the namespace and the claims keep their uids, and the claims made by
    StatefulSets (which Argo CD does not track) stay too. The root then recreates the Application, which
    syncs again onto the kept claims."""
    apps = s.apps

    def kept_claims(env: Env) -> int:
        return sum(
            m.obj["kind"] == "PersistentVolumeClaim" and "Delete=false" in _options(m.obj)
            for m in load_folder(s.served.work / "dist" / env.name)
        )

    env = max((e for e in s.envs if e.automated), key=kept_claims)
    name, kube = s.env_app(env), s.kubes[env.server]
    app = apps.get(name)
    assert app is not None
    check(FINALIZER in (app["metadata"].get("finalizers") or []), f"{name} has no {FINALIZER}")
    objects = []
    for m in load_folder(s.served.work / "dist" / env.name):
        namespace = None if m.obj["kind"] == "Namespace" else env.namespace
        live = kube.get(m.obj["apiVersion"], m.obj["kind"], namespace, m.obj["metadata"]["name"])
        check(live is not None, f"{env.name}: {m.obj['kind']} {m.obj['metadata']['name']} missing before")
        assert live is not None
        keep = "Delete=false" in _options(m.obj)
        objects.append(
            (
                m.obj["apiVersion"],
                m.obj["kind"],
                namespace,
                live["metadata"]["name"],
                live["metadata"]["uid"],
                keep,
            )
        )

    def claims() -> dict[str, str]:
        return {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for p in kube.list("v1", "PersistentVolumeClaim", env.namespace)
            if not p["metadata"].get("deletionTimestamp")
        }

    before = claims()
    check(bool(before), f"{env.name}: no claims to keep")
    s.kube.delete(*APP, argocd.NAMESPACE, name)
    old_uid = app["metadata"]["uid"]
    deadline = time.monotonic() + s.timeout_s
    while (now := apps.get(name)) is not None and now["metadata"]["uid"] == old_uid:
        s.alive()
        check(
            time.monotonic() < deadline,
            f"{name} was not deleted in {s.timeout_s:.0f} s: {apps.describe(name)}",
        )
        time.sleep(0.5)
    # Its finalizer is gone: Argo CD has deleted what it had to. A uid that changed was deleted (and maybe
    # already recreated by the root's new Application).
    deleted: list[str] = []
    kept: list[str] = []
    for api_version, kind, namespace, obj_name, uid, keep in objects:
        live = kube.get(api_version, kind, namespace, obj_name)
        same = (
            live is not None
            and live["metadata"]["uid"] == uid
            and not live["metadata"].get("deletionTimestamp")
        )
        check(
            same == keep,
            f"{env.name}: {kind} {obj_name} {'deleted' if keep else 'kept'} with its Application",
        )
        (kept if keep else deleted).append(f"{kind} {obj_name}")
    check(claims() == before, f"{env.name}: claims changed by deleting {name}: {before} -> {claims()}")
    s.log(
        f"deleted {name}: Argo CD deleted its {len(deleted)} objects and kept {sorted(kept)} (Delete=false) "
        f"and every claim: {sorted(before)}"
    )
    apps.refresh(root)
    apps.wait([name], synced_healthy(revision), f"{name} recreated by the root", s.timeout_s, s.alive, 10)
    check(claims() == before, f"{env.name}: claims changed when {name} came back: {before} -> {claims()}")
    s.log(f"the root recreated {name}; it synced again onto the same claims")


def _options(obj: dict[str, Any]) -> list[str]:
    return str((obj["metadata"].get("annotations") or {}).get(SYNC_OPTIONS, "")).replace(" ", "").split(",")


def _sync_window(s: Scenario, served: GitServer, root: str) -> None:
    """A commit closes the windowed environments' sync window (computed from the test's clock); once Argo CD
    has the AppProject with it, a manual sync of such an environment is refused: the operation stays
    Running, blocked by the window, and no sync result for its revision appears. The control: the same
    manual sync ran while the window was open (the manual sync step)."""
    windowed = [e for e in s.envs if e.windows]
    if not windowed:
        s.log("no environment has sync windows in the spec: nothing to refuse")
        return
    apps = s.apps
    repo_url = platform_spec(served.work)["argocd"]["repoUrl"]
    window = set_windows(served.work, s.envs, open_now=False)
    synth(served.work)
    point_at(served, repo_url)
    head = served.push(served.commit("test: close the sync windows"), "main")
    apps.refresh(root)
    apps.wait([root], synced_healthy(head), "the closed window reached Argo CD", s.timeout_s, s.alive, 10)
    project = yaml.safe_load(
        (
            served.work
            / "dist"
            / "argocd"
            / f"appproject-{platform_spec(served.work)['argocd']['project']}.yaml"
        ).read_text(encoding="utf-8")
    )
    live = s.kube.get(*PROJECT, argocd.NAMESPACE, project["metadata"]["name"])
    assert live is not None
    check(
        live["spec"].get("syncWindows") == project["spec"].get("syncWindows"),
        f"the AppProject's windows are {live['spec'].get('syncWindows')}, "
        f"git has {project['spec'].get('syncWindows')}",
    )
    names = [s.env_app(e) for e in windowed]
    for name in names:
        s.kube.patch(
            *APP,
            argocd.NAMESPACE,
            name,
            {"operation": {"initiatedBy": {"username": "argocd-test"}, "sync": {"revision": head}}},
        )

    def refused(app: dict[str, Any]) -> bool:
        op = _operation(app)
        return bool(
            op.get("phase") == "Running"
            and "blocked by sync window" in str(op.get("message"))
            and op.get("operation", {}).get("sync", {}).get("revision") == head
            # nothing synced at head (the status keeps the last sync's result, of an earlier revision)
            and op.get("syncResult", {}).get("revision") != head
        )

    blocked = apps.wait(names, refused, "manual sync outside the window refused", s.timeout_s, s.alive)
    s.log(
        f"window {window}: manual sync of {', '.join(names)} refused by Argo CD: "
        + "; ".join(f"{n}: {_operation(a).get('message')}" for n, a in blocked.items())
    )


def _self_heal_control(s: Scenario) -> None:
    """The control for the autoscaling check: a Deployment whose replicas git does set, with no autoscaler, is
    put back by Argo CD's self-heal when scaled, so the diff does see replica changes where nothing says
    otherwise."""
    for env in s.envs:
        if not env.automated or _autoscaled(s.served.work, env) is not None:
            continue
        for m in load_folder(s.served.work / "dist" / env.name):
            want = m.obj.get("spec", {}).get("replicas")
            if m.obj["kind"] != "Deployment" or want is None:
                continue
            name, kube = m.obj["metadata"]["name"], s.kubes[env.server]
            kube.patch(
                "apps/v1",
                "Deployment",
                env.namespace,
                name,
                {"spec": {"replicas": want + 1}},
                subresource="scale",
            )
            s.apps.refresh(s.env_app(env))
            deadline = time.monotonic() + s.timeout_s
            while (live := kube.get("apps/v1", "Deployment", env.namespace, name)) and live["spec"][
                "replicas"
            ] != want:
                s.alive()
                check(
                    time.monotonic() < deadline,
                    f"{env.name}: self-heal did not put {name} back to {want} replicas",
                )
                time.sleep(1.0)
            s.log(
                f"control: {env.name}'s {name} (replicas {want} in git, no autoscaler) scaled to {want + 1} "
                f"was put back to {want} by Argo CD's self-heal"
            )
            return


def _remove_service(s: Scenario, served: GitServer, env_apps: list[str], log: Log) -> str:
    """Test-only branch: add a service (commit B), sync; remove it (commit C), sync: pruned, PVCs kept."""
    apps = s.apps
    repo_url = platform_spec(served.work)["argocd"]["repoUrl"]
    git(served.work, "checkout", "-q", "-b", "test/remove-service")
    add_service(served.work, EXTRA_SERVICE)
    synth(served.work)
    point_at(served, repo_url)
    added = served.commit(f"test: add a service {EXTRA_SERVICE}")
    before = git(served.work, "rev-parse", "HEAD~1")
    new_files = git(
        served.work, "diff", "--name-only", "--diff-filter=A", before, added, "--", "dist/"
    ).splitlines()
    auto = [e for e in s.envs if e.automated]
    served.push(added, "main")
    apps.refresh("mlplatform-root", *[s.env_app(e) for e in auto])
    apps.wait(
        [s.env_app(e) for e in auto],
        synced_healthy(added),
        f"{EXTRA_SERVICE} synced",
        s.timeout_s,
        s.alive,
        10,
    )
    claims = {
        e.name: {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for p in s.kubes[e.server].list("v1", "PersistentVolumeClaim", e.namespace)
            if p["metadata"]["name"].startswith("data-redis-")
        }
        for e in auto
    }
    check(all(claims.values()), f"no Redis PVCs found to watch: {claims}")
    objects = []
    for env in auto:
        for rel in [f for f in new_files if f.startswith(f"dist/{env.name}/")]:
            for doc in yaml.safe_load_all((served.work / rel).read_text(encoding="utf-8")):
                if isinstance(doc, dict) and doc:
                    options = (doc["metadata"].get("annotations") or {}).get(SYNC_OPTIONS, "")
                    keep = "Prune=false" in options.replace(" ", "").split(",")
                    objects.append((env, doc["apiVersion"], doc["kind"], doc["metadata"]["name"], keep))
    check(bool(objects), f"adding {EXTRA_SERVICE} added no objects under dist/")
    for env, api_version, kind, name, _keep in objects:
        check(
            s.kubes[env.server].get(api_version, kind, env.namespace, name) is not None,
            f"{env.name}: {kind} {name} not synced",
        )
    log(f"{EXTRA_SERVICE} added and synced: {len(objects)} objects in {', '.join(e.name for e in auto)}")
    for env in auto:
        if env.name in s.scaled:  # a later sync must not undo what the autoscaler set
            deployment, replicas = s.scaled[env.name]
            live = s.kubes[env.server].get("apps/v1", "Deployment", env.namespace, deployment)
            assert live is not None
            check(
                live["spec"]["replicas"] == replicas,
                f"{env.name}: syncing a new commit reset {deployment} from {replicas} to "
                f"{live['spec']['replicas']} replicas",
            )
            log(
                f"{env.name}: the new commit's sync left {deployment} at the autoscaler's {replicas} replicas"
            )

    git(served.work, "revert", "--no-edit", added)
    removed = git(served.work, "rev-parse", "HEAD")
    served.push(removed, "main")
    apps.refresh("mlplatform-root", *[s.env_app(e) for e in auto])
    kept = {(e.name, k, n) for e, _av, k, n, keep in objects if keep}
    for env in auto:  # each Synced again, the kept objects listed as extraneous
        apps.wait(
            [s.env_app(env)],
            synced_keeping(removed, {(k, n) for e, k, n in kept if e == env.name}),
            f"{EXTRA_SERVICE} removed from {env.name}",
            s.timeout_s,
            s.alive,
            10,
        )
    left = [(e.name, k, n) for e, av, k, n, _keep in objects if s.kubes[e.server].get(av, k, e.namespace, n)]
    check(
        set(left) == kept,
        f"after removing {EXTRA_SERVICE}: left in the cluster {sorted(left)}, expected only the objects "
        f"marked Prune=false {sorted(kept)}",
    )
    for env in auto:
        now = {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for p in s.kubes[env.server].list("v1", "PersistentVolumeClaim", env.namespace)
            if p["metadata"]["name"].startswith("data-redis-") and not p["metadata"].get("deletionTimestamp")
        }
        check(
            now == claims[env.name],
            f"{env.name}: Redis PVCs changed by the prune: {claims[env.name]} -> {now}",
        )
    log(
        f"removing {EXTRA_SERVICE} pruned {len(objects) - len(kept)} of its {len(objects)} objects; kept as "
        f"their Prune=false asks (Argo CD lists them as requiring pruning, the apps stay Synced): "
        f"{sorted(kept) or 'none'}; Redis PVCs kept: "
        + ", ".join(f"{k}: {sorted(v)}" for k, v in claims.items())
    )
    return removed


def gate(work: Path, env: str) -> subprocess.CompletedProcess[str]:
    """`make check`'s command (python -m policy_check) on a clone's dist/, for one environment."""
    with tempfile.TemporaryDirectory() as reports:
        command = [sys.executable, "-m", "policy_check", "--reports", reports, "--dist", str(work / "dist")]
        return subprocess.run(
            [*command, "--env", env], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=300
        )


def _policy_gate(served: GitServer, log: Log) -> None:
    """A policy-breaking commit on a test-only branch: the gate (`make check`'s command) stops it before
    merge, while the same gate passes the commit Argo CD synced."""
    git(served.work, "checkout", "-q", "main")
    control = gate(served.work, "dev")
    check(control.returncode == 0, f"the gate fails the synced commit itself: {control.stdout[-500:]}")
    git(served.work, "checkout", "-q", "-b", "test/break-policy", "main")
    path = served.work / "dist" / "dev" / "deployment-inference.yaml"
    text = path.read_text(encoding="utf-8")
    image = next(line.split("image:", 1)[1].strip() for line in text.splitlines() if "image:" in line)
    path.write_text(text.replace(image, image.split("@", 1)[0] + ":latest"), encoding="utf-8")
    served.commit("test: deploy a mutable image tag (breaks require-image-digest)")
    broken = gate(served.work, "dev")
    found = [
        line.strip()
        for line in (broken.stdout + broken.stderr).splitlines()
        if "deployment-inference.yaml" in line and "violates require-image-digest" in line
    ]
    check(
        broken.returncode != 0 and bool(found),
        f"the gate let a mutable image tag through (exit {broken.returncode}): {broken.stdout[-500:]}",
    )
    served_main = git(served.bare, "rev-parse", "refs/heads/main")
    check(served_main != git(served.work, "rev-parse", "HEAD"), "the policy-breaking commit reached main")
    log(
        f"the gate passes main and stops the policy-breaking branch (exit {broken.returncode}): "
        f"{found[0][:200]}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testcluster.argocd_sync", description=__doc__)
    parser.add_argument(
        "--keep", action="store_true", help="keep the control plane's folder (logs) afterwards"
    )
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) unwinds like an error, so every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(keep=args.keep)
    except ClusterTestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Failed as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
