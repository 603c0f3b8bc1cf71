"""The Argo CD test's harness (make argocd-test runs tests/argocd/test_argocd_sync.py on it).

`boot()` starts fresh control planes with simulated nodes (one per destination cluster), a loopback git server
that serves this repository at HEAD, and the pinned Argo CD (repo server + application controller, out of
cluster) pointed at it; the scenarios (the test) then do the bootstrap a person does once (apply the root
Application) and read Argo CD's own status through `Apps` and `SyncRecorder` (Application sync/health,
operationState.syncResult). Expectations come from the spec (overlays/*.yaml: environments, their clusters
and sync modes, read by `spec_environments`) and from the manifests' own annotations, not from dist/argocd/.

The changes made to what is served: the repository URL in dist/argocd/ points at the loopback server
(Applications' repoURL and, so that the project check still applies, the AppProject's sourceRepos entry for
the same URL), and the add-ons of the cluster Argo CD runs in come from a mirror of their renders on the same
server (testcluster.addon_mirror; the other clusters' add-ons are not served, and the harness installs those
clusters' CRDs itself). Destinations are not rewritten: cluster Secrets keep their URLs (testcluster.argocd).

Where no operator runs here (External Secrets, KEDA, ingress and Gateway controllers, a volume provisioner),
testcluster.standins writes the status the operator would; Deployments, StatefulSets and Pods get theirs from
the real controllers, kube-scheduler and kwok.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from testcluster import argocd, processes, standins
from testcluster.addon_mirror import Mirror, mirror_addons, point_addons_at
from testcluster.apply import install_crds, kinds_in, load_folder
from testcluster.controlplane import ControlPlane, control_plane
from testcluster.errors import ClusterTestError
from testcluster.gitserver import GitServer, git, git_server
from testcluster.kubeapi import ApiError, Kube
from testcluster.nodes import start_nodes
from testcluster.proxy import cluster_proxy
from testcluster.versions import REPO_ROOT

APP = ("argoproj.io/v1alpha1", "Application")
#: The namespace an environment's Helm chart is deployed into by the chart scenario: `<namespace><suffix>`.
CHART_SUFFIX = "-chart"
PROJECT = ("argoproj.io/v1alpha1", "AppProject")
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
FINALIZER = "resources-finalizer.argocd.argoproj.io/foreground"
NON_ENVS = ("argocd", "cluster-policies")
EXTRA_SERVICE = "scorer"  # the service the test-only branch adds and then removes
#: The kind whose CRD arrives late in the cluster Argo CD runs in: dist/cluster-policies/ (the root's wave -1)
#: uses it.
LATE_KIND = ("kyverno.io", "ClusterPolicy")
ARGOCD_CM = "configmap-argocd-cm.yaml"
ROOT_APP = "application-mlplatform-root.yaml"  # in dist/argocd/: the one Application a person applies


class Failed(AssertionError):
    pass


@dataclass(frozen=True)
class Env:
    """An environment on one cluster (one of several, where its overlay lists `clusters`)."""

    name: str
    namespace: str
    server: str
    automated: bool
    windows: bool  # the spec gives it sync windows
    cluster: str | None = None

    @property
    def folder(self) -> str:
        """Its folder under dist/ (dist/<env>, or dist/<env>/<cluster>)."""
        return self.name if self.cluster is None else f"{self.name}/{self.cluster}"


def spec_environments(root: Path) -> list[Env]:
    """Environments on their clusters as the spec defines them (overlays/<env>.yaml), not as dist/argocd/
    says."""
    found = []
    for path in sorted((root / "overlays").glob("*.yaml")):
        if path.stem == "platform":
            continue
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        automated = spec.get("sync", {}).get("mode") == "automated"
        windows = bool(spec.get("sync", {}).get("windows"))
        placed = {None: spec["cluster"]} if "cluster" in spec else dict(spec["clusters"])
        for cluster, where in sorted(placed.items(), key=lambda item: item[0] or ""):
            found.append(Env(path.stem, spec["namespace"], where["server"], automated, windows, cluster))
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


def serve(served: GitServer, mirror: Mirror | None) -> None:
    """Synthesize the work clone's dist/ (the spec as it is now), keep a copy of it for the gate, and point
    it at the loopback servers: this repository's URL (point_at) and, given the mirror, the add-ons."""
    synth(served.work)
    shutil.rmtree(synthesized(served), ignore_errors=True)
    shutil.copytree(served.work / "dist", synthesized(served))
    point_at(served, platform_spec(served.work)["argocd"]["repoUrl"])
    if mirror is not None:
        point_addons_at(served.work, mirror)


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
        if env.windows:  # (an environment on several clusters: once per cluster, the same window)
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
    for env in {e.name: e for e in spec_environments(work)}.values():
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


# --- what the scenarios share ----------------------------------------------------------------------------


@dataclass
class Scenario:
    """The booted clusters, git server and Argo CD the scenarios run on, in order, each on the state the
    previous one left."""

    kube: Kube  # the cluster Argo CD runs in
    kubes: dict[str, Kube]  # destination server -> its cluster
    apps: Apps
    served: GitServer
    log: Log
    alive: Callable[[], None]
    envs: list[Env]
    mirror: Mirror
    timeout_s: float = 180.0
    scaled: dict[str, tuple[str, int]] = field(default_factory=dict)  # env -> (Deployment, replicas) set

    def app_of(self, path: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.kube.list(*APP, argocd.NAMESPACE)
            if a["spec"].get("source", {}).get("path") == path
        ]

    def env_app(self, env: Env) -> str:
        found = self.app_of(f"dist/{env.folder}")
        check(len(found) == 1, f"expected one Application for dist/{env.folder}, found {len(found)}")
        return str(found[0]["metadata"]["name"])


def autoscaled(work: Path, env: Env) -> tuple[str, int] | None:
    """(Deployment name, a replica count an autoscaler could set) from the env's HPA or ScaledObject."""
    for m in load_folder(work / "dist" / env.folder):
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


@contextmanager
def boot(keep: bool = False, spec_change: Callable[[Path], None] | None = None) -> Iterator[Scenario]:
    """Control planes with nodes and operator stand-ins, the git server serving HEAD (repository URL pointed
    at it, sync windows open), Argo CD started against them; everything stopped when the block ends.
    `keep`: keep the control planes' folders (logs). `spec_change(root)`: an edit of root/overlays/ that
    the served commit makes (dist/ synthesized from it), e.g. an environment on another cluster: the
    environments and their clusters are read after it."""
    log = Log()
    with tempfile.TemporaryDirectory(prefix="argocd-spec-") as spec:
        shutil.copytree(REPO_ROOT / "overlays", Path(spec) / "overlays")
        if spec_change is not None:
            spec_change(Path(spec))
        envs = spec_environments(Path(spec))
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
            # The cluster Argo CD runs in gets its CRDs from its add-ons (below); the harness stands in for
            # the other clusters' add-ons.
            crds = 0 if server == IN_CLUSTER else install_crds(kube, kinds)
            nodes = start_nodes(plane, kube)
            kubes[server], tokens[server], urls[server] = kube, plane.token, plane.url
            log(
                f"{cluster_name(server)}: control plane at {plane.url} ({plane.workdir}), {crds} CRDs, "
                f"{len(nodes)} nodes"
            )
            # each environment's namespace, the one its chart is deployed into (CHART_SUFFIX), and Kyverno's
            managed = {
                n for e in envs if e.server == server for n in (e.namespace, e.namespace + CHART_SUFFIX)
            }
            managed |= {"kyverno"}
            helper = Kube(stack.enter_context(plane.client()))
            loops.append(stack.enter_context(standins.StandInLoop(standins.StandIns(helper, managed))))
        # On the way out, signal every process of every plane at once; each plane's stop() then only waits.
        # Stopping them one plane after another doubles the apiservers' graceful shutdown.
        stack.callback(_terminate, planes)
        home = planes[0]
        served = stack.enter_context(git_server(REPO_ROOT, home.workdir / "git"))
        window = set_windows(served.work, envs, open_now=True)
        if spec_change is not None:
            spec_change(served.work)
        serve(served, None)
        # The add-ons of the cluster Argo CD runs in, from the mirror; one CRD that dist/cluster-policies/
        # uses is in none of them yet (the waves-gate scenario installs it late). Argo CD's own CRDs
        # (Application, AppProject) come with its install; the harness installs those.
        mirror = mirror_addons(served, cluster_name(IN_CLUSTER), withheld={LATE_KIND})
        point_addons_at(served.work, mirror)
        crds = install_crds(kubes[IN_CLUSTER], kinds - mirror.kinds - {LATE_KIND})
        changed = ", the spec changed" if spec_change is not None else ""
        head = served.push(
            served.commit(f"test: loopback git server, add-ons mirrored, windows open{changed}"),
            "main",
        )
        pinned = ", ".join(f"{a}@{t}" for a, t in sorted(mirror.applications.items()))
        log(
            f"add-on mirror {mirror.url}: {pinned} ({len(mirror.kinds)} CRDs, {mirror.left_out} objects left "
            f"out); {crds} other CRDs installed in {cluster_name(IN_CLUSTER)}"
        )
        windowed = sorted({e.name for e in envs if e.windows})
        log(
            f"git server {served.url} serves {git(REPO_ROOT, 'rev-parse', '--short', 'HEAD')} "
            f"(+ commit {head[:10]}: repository URL; windows of {windowed} open: {window}{changed})"
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
        yield Scenario(kubes[IN_CLUSTER], kubes, apps, served, log, alive, envs, mirror)


def operation(app: dict[str, Any] | None) -> dict[str, Any]:
    """An Application's status.operationState ({} when none)."""
    op: dict[str, Any] = (app or {}).get("status", {}).get("operationState", {})
    return op


def sync_options(obj: dict[str, Any]) -> list[str]:
    """A manifest's argocd.argoproj.io/sync-options, one option an item."""
    return str((obj["metadata"].get("annotations") or {}).get(SYNC_OPTIONS, "")).replace(" ", "").split(",")


def synthesized(served: GitServer) -> Path:
    """dist/ as the served commit's synth wrote it, before the harness pointed it at the loopback servers."""
    return served.work.parent / "dist-synthesized"


def gate(served: GitServer, env: str) -> subprocess.CompletedProcess[str]:
    """`make check`'s command (python -m policy_check) on the work clone's dist/, for one environment, as the
    real repository holds it: Argo CD's folders (dist/argocd/, dist/infrastructure/) as synthesized, before
    the harness pointed them at the loopback git server and the add-on mirror."""
    with tempfile.TemporaryDirectory() as reports, tempfile.TemporaryDirectory() as copy:
        dist = Path(copy) / "dist"
        shutil.copytree(served.work / "dist", dist)
        for folder in ("argocd", "infrastructure"):
            shutil.rmtree(dist / folder, ignore_errors=True)
            shutil.copytree(synthesized(served) / folder, dist / folder)
        command = [sys.executable, "-m", "policy_check", "--reports", reports, "--dist", str(dist)]
        return subprocess.run(
            [*command, "--env", env], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=300
        )
