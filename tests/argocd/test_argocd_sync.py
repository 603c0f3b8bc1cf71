"""Argo CD itself syncs this repository (make argocd-test): the scenarios, in order, on one boot of the
harness (tools/testcluster/argocd_sync.py: control planes with simulated nodes, a loopback git server serving
HEAD, the pinned Argo CD). The served commit runs prod on two clusters (`prod_on_two_clusters`): one
Application and one control plane each, so every scenario also covers an environment on several clusters.

Bootstrapping is what a person does once: apply the argocd-cm patch and the root Application. Everything after
that is Argo CD's doing, and the evidence is Argo CD's own status (Application sync/health,
operationState.syncResult). Expectations come from the spec (overlays/*.yaml: environments, their clusters and
sync modes) and from the manifests' own annotations, not from dist/argocd/.

Each scenario builds on the state the previous one left; after a failure the later ones are skipped
(tests/argocd/conftest.py). ARGOCD_TEST_KEEP=1 keeps the control planes' folders (logs).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

from testcluster import argocd
from testcluster.apply import WAVE, install_crds, load_folder
from testcluster.argocd_sync import (
    APP,
    ARGOCD_CM,
    CHART_SUFFIX,
    EXTRA_SERVICE,
    FINALIZER,
    IN_CLUSTER,
    LATE_KIND,
    PROJECT,
    ROOT_APP,
    Env,
    Scenario,
    add_service,
    autoscaled,
    boot,
    gate,
    operation,
    platform_spec,
    refreshed_since,
    serve,
    set_windows,
    sync_options,
    synced_healthy,
    synced_keeping,
)
from testcluster.gitserver import git
from testcluster.kubeapi import FIELD_MANAGER, ApiError
from tests.support import clusters

pytestmark = pytest.mark.argocd

#: Five operators' installs (about 200 objects, 67 CRDs) synced on this 2-core machine took about 200 s alone.
ADDONS_TIMEOUT_S = 480.0
#: The field manager of Argo CD's server-side apply (the harness applies as testcluster.kubeapi's).
ARGOCD_MANAGER = "argocd-controller"


@dataclass
class Found:
    """What one scenario found that a later one needs."""

    root: str = ""  # the root Application's name
    policies: str = ""  # the in-cluster cluster-policies Application
    failed_at: str = ""  # the revision of its failed sync
    policies_done: str = ""  # when the in-cluster cluster policies became Healthy (their sync's finishedAt)
    env_apps: list[str] = field(default_factory=list)  # the environments' Applications
    policy_apps: list[str] = field(default_factory=list)  # the cluster-policies Applications
    head: str = ""  # the revision the first syncs synced
    removed: str = ""  # the commit that removed the extra service again


def prod_on_two_clusters(root: Path) -> None:
    """The served spec runs prod on two clusters (tests/support/clusters.py: its own cluster, and eu-west on
    a control plane of its own), so every scenario below covers an environment on several clusters: one
    Application per cluster, each synced and Healthy on its own destination."""
    path = root / "overlays" / "prod.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    clusters.two_clusters(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # pytest then tears the harness down: every process started is stopped


@pytest.fixture(scope="module")
def s() -> Iterator[Scenario]:
    """The harness, booted once for every scenario. SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        keep = os.environ.get("ARGOCD_TEST_KEEP") == "1"
        with boot(keep=keep, spec_change=prod_on_two_clusters) as scenario:
            prod = [e for e in scenario.envs if e.name == "prod"]
            assert len({e.server for e in prod}) == len(prod) == 2, prod  # two destinations, two planes
            yield scenario
            scenario.log(f"the Argo CD scenarios took {time.monotonic() - scenario.log.started:.0f} s")
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def found() -> Found:
    return Found()


def test_the_root_syncs_the_addons_first_and_they_install_what_the_environments_use(
    s: Scenario, found: Found
) -> None:
    """The bootstrap, then the root's first wave: the add-ons of the cluster Argo CD runs in.

    Each add-on Application syncs from the mirror of its pinned render at its own targetRevision and becomes
    Healthy (its operator's Deployments available) before the root creates anything of a later wave: no
    cluster-policies or environment Application exists until then. The custom kinds the cluster's folders use
    are then served by CRDs that Argo CD applied for an add-on (the harness installed none of them)."""
    kube, apps, served = s.kube, s.apps, s.served
    # The bootstrap a person does once: the argocd-cm patch (`kubectl apply` merges its keys into the
    # install's argocd-cm), then the root Application.
    cm = yaml.safe_load((served.work / "dist" / "argocd" / ARGOCD_CM).read_text(encoding="utf-8"))
    kube.patch("v1", "ConfigMap", argocd.NAMESPACE, cm["metadata"]["name"], {"data": cm["data"]})
    root_doc = yaml.safe_load((served.work / "dist" / "argocd" / ROOT_APP).read_text(encoding="utf-8"))
    result = kube.apply(root_doc)
    assert result.ok, f"applying the root Application: {result.message}"
    root = found.root = str(root_doc["metadata"]["name"])
    s.log(f"applied the argocd-cm patch ({len(cm['data'])} health checks) and the root Application {root}")

    addons = sorted(s.mirror.applications)
    later = {"dist/cluster-policies", *(f"dist/{e.folder}" for e in s.envs)}
    deadline = time.monotonic() + ADDONS_TIMEOUT_S
    while True:
        s.alive()
        # the later wave first, then the add-ons: a later-wave Application listed while an add-on, read after
        # it, is still not Healthy was created too early (both in one poll is the root's next step, in order)
        early = {str(a["metadata"]["name"]): str(a["metadata"]["creationTimestamp"])
                 for a in kube.list(*APP, argocd.NAMESPACE)
                 if a["spec"].get("source", {}).get("path") in later}  # fmt: skip
        current = {name: apps.get(name) for name in addons}
        done = {n: a for n, a in current.items() if a is not None and synced_healthy()(a)}
        assert not early or len(done) == len(addons), (
            f"the root created {sorted(early)} while the add-ons were not all Healthy: "
            f"{sorted(set(addons) - set(done))} were not"
        )
        if len(done) == len(addons):
            last_sync = max(str(operation(a).get("finishedAt")) for a in done.values())
            before = sorted(n for n, created in early.items() if created < last_sync)
            assert not before, f"{before} were created before the add-ons' last sync finished ({last_sync})"
            break
        assert time.monotonic() < deadline, (
            f"the add-ons did not all sync and become Healthy in {ADDONS_TIMEOUT_S:.0f} s: "
            + " || ".join(apps.describe(n) for n in addons if n not in done)
        )
        time.sleep(1.0)
    for name, app in done.items():
        compared = app["status"]["sync"].get("comparedTo", {}).get("source", {})
        assert (compared.get("repoURL"), compared.get("targetRevision")) == (
            s.mirror.url,
            s.mirror.applications[name],
        ), f"{name} synced {compared}, not its pinned revision {s.mirror.applications[name]} of the mirror"
    finished = max(str(operation(a).get("finishedAt")) for a in done.values())
    s.log(
        f"the add-ons synced and became Healthy, each at its pinned revision, by {finished}: "
        + ", ".join(f"{n}@{s.mirror.applications[n]}" for n in addons)
    )

    # Which add-on each CRD belongs to, from Argo CD's own status of the add-on Applications, and who applied
    # it, from the live CRD's managed fields (the harness applies as FIELD_MANAGER).
    owner = {
        str(r["name"]): name
        for name, app in done.items()
        for r in app["status"].get("resources", [])
        if r.get("kind") == "CustomResourceDefinition"
    }
    tracked = {}  # (group, kind) of every live CRD -> (its add-on, applied by Argo CD alone, field managers)
    for c in kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition", None):
        managers = sorted({str(f.get("manager")) for f in c["metadata"].get("managedFields", [])})
        by = owner.get(str(c["metadata"]["name"]), "no add-on")
        applied = ARGOCD_MANAGER in managers and FIELD_MANAGER not in managers
        tracked[(str(c["spec"]["group"]), str(c["spec"]["names"]["kind"]))] = (by, applied, managers)
    folders = ["cluster-policies", *(e.folder for e in s.envs if e.server == IN_CLUSTER)]
    used = {
        (str(m.obj["apiVersion"]), str(m.obj["kind"]))
        for folder in folders
        for m in load_folder(served.work / "dist" / folder)
    }
    unserved = []
    for api_version, kind in sorted(used):
        if (api_version.rpartition("/")[0], kind) != LATE_KIND:
            try:
                kube.resource(api_version, kind)
            except ApiError:
                unserved.append(f"{kind} ({api_version})")
    assert not unserved, f"kinds the in-cluster folders use that the cluster does not serve: {unserved}"
    groups = {(v.rpartition("/")[0], kind) for v, kind in used}
    custom = sorted(k for k in groups if k in tracked and k[0] != "argoproj.io")
    assert custom, f"the in-cluster folders {folders} use no custom kind: nothing to check"
    untracked = [
        f"{k[1]}.{k[0]} ({tracked[k]})" for k in custom if not tracked[k][1] or tracked[k][0] == "no add-on"
    ]
    assert not untracked, f"CRDs the in-cluster folders use, not installed by an add-on: {untracked}"
    s.log(
        f"the {len(custom)} custom kinds {', '.join(k[1] for k in custom)} that {', '.join(folders)} use are "
        f"served by CRDs Argo CD applied for the add-ons"
    )


def test_the_waves_gate_holds_the_environments_while_the_cluster_policies_fail(
    s: Scenario, found: Found
) -> None:
    """The root's waves gate for real.

    The cluster Argo CD runs in lacks one CRD that dist/cluster-policies/ (the root's wave -1) uses (the
    mirror withholds it from Kyverno's add-on), so that Application's sync fails. Its retry policy tries again
    with backoff; meanwhile its health is not Healthy, and the root (through argocd-cm's Application health
    check) waits on it before creating the environments (wave 0): none exists while it fails."""
    kube, apps, root = s.kube, s.apps, found.root
    envs = {f"dist/{e.folder}" for e in s.envs}
    deadline = time.monotonic() + s.timeout_s
    while True:
        s.alive()
        early = [str(a["metadata"]["name"]) for a in kube.list(*APP, argocd.NAMESPACE)
                 if a["spec"].get("source", {}).get("path") in envs]  # fmt: skip
        assert not early, f"the root created {early} while the cluster policies could not sync"
        policies = _in_cluster_policies(s)
        op = operation(apps.get(policies) if policies else None)
        root_op = operation(apps.get(root))
        waiting = f"healthy state of argoproj.io/Application/{policies}" in str(root_op.get("message"))
        if policies and op.get("retryCount", 0) >= 1 and waiting:
            break
        assert time.monotonic() < deadline, (
            f"the cluster policies' sync did not fail and retry with the root waiting on it in "
            f"{s.timeout_s:.0f} s: {apps.describe(policies or '(none)')} || {apps.describe(root)}"
        )
        time.sleep(1.0)
    found.policies = policies
    found.failed_at = (  # the failed attempt's revision, else the one commit served while it failed
        op.get("syncResult", {}).get("revision")
        or op.get("operation", {}).get("sync", {}).get("revision")
        or git(s.served.bare, "rev-parse", "refs/heads/main")
    )
    s.log(
        f"{policies} fails without its {LATE_KIND[1]} CRD and is retried (retryCount {op['retryCount']}: "
        f"{str(op.get('message'))[:160]}); the root waits: {root_op.get('message')}; no environment exists"
    )


def test_the_failed_sync_is_retried_once_the_crd_arrives_and_only_then_the_environments_exist(
    s: Scenario, found: Found
) -> None:
    """The CRD arrives: the retry succeeds at the revision that failed, the root goes on and creates every
    environment's Application (not before the cluster policies were Healthy) and one cluster-policies
    Application per cluster."""
    apps, policies, failed_at = s.apps, found.policies, found.failed_at
    install_crds(s.kubes[IN_CLUSTER], {LATE_KIND})
    s.log(f"the {LATE_KIND[1]} CRD arrived")

    apps.wait([policies], synced_healthy(), f"{policies} synced", s.timeout_s, s.alive)
    # Its first successful sync, as the watch first saw it (the retried operation's retryCount is shown, not
    # required: the retry itself was seen above). Automated sync never starts a new sync of a revision whose
    # last attempt failed, so success at the failed revision, with no new commit, is the retry's doing.
    app = apps.recorder.first(policies)
    op = operation(app)
    synced_at = (app or {}).get("status", {}).get("sync", {}).get("revision")
    assert synced_at == failed_at, (
        f"{policies} synced {synced_at}, not the revision whose sync failed and was retried ({failed_at})"
    )
    s.log(f"{policies}: {op.get('message')} (retryCount {op.get('retryCount')}), finished {op['finishedAt']}")
    policies_done = found.policies_done = str(op["finishedAt"])

    found.env_apps, found.policy_apps = _root_creates_every_app(s, found.root)
    for name in found.env_apps:
        env_app = apps.get(name)
        assert env_app is not None
        created = env_app["metadata"]["creationTimestamp"]
        assert created >= policies_done, (
            f"{name} was created at {created}, before the cluster policies were Healthy at {policies_done}"
        )
    s.log(
        f"the environments' Applications were created after the cluster policies became Healthy "
        f"({policies_done})"
    )


def test_automated_environments_sync_by_themselves_and_manual_ones_wait_for_a_person(
    s: Scenario, found: Found
) -> None:
    apps, kube = s.apps, s.kube
    auto = [e for e in s.envs if e.automated]
    manual = [e for e in s.envs if not e.automated]
    head = found.head = git(s.served.bare, "rev-parse", "refs/heads/main")
    done = apps.wait(
        [found.root, *found.policy_apps, *[s.env_app(e) for e in auto]],
        synced_healthy(head),
        "automated sync done",
        s.timeout_s,
        s.alive,
    )
    for env in auto:
        op = done[s.env_app(env)]["status"]["operationState"]
        assert op.get("operation", {}).get("initiatedBy", {}).get("automated") is True, (
            f"{env.folder} was synced, but not by Argo CD's automated policy: {op.get('operation')}"
        )
    for env in manual:
        app = apps.get(s.env_app(env))
        assert app is not None
        status = app.get("status", {})
        assert status.get("sync", {}).get("status") == "OutOfSync" and "operationState" not in status, (
            f"{env.folder} should wait for a person, but is {apps.state(app)}"
        )
        assert s.kubes[env.server].get("v1", "Namespace", None, env.namespace) is None, (
            f"{env.folder}'s namespace {env.namespace} exists before anyone synced it"
        )
        s.log(f"{env.folder} waits for a person: {apps.state(app)}, namespace {env.namespace} not created")

    for env in manual:
        name = s.env_app(env)
        kube.patch(
            *APP,
            argocd.NAMESPACE,
            name,
            {"operation": {"initiatedBy": {"username": "argocd-test"}, "sync": {"revision": head}}},
        )
        s.log(f"triggered the sync of {name} (as `argocd app sync {name}` does)")
    apps.wait([s.env_app(e) for e in manual], synced_healthy(head), "manual sync done", s.timeout_s, s.alive)


def test_each_environment_synced_in_wave_order(s: Scenario) -> None:
    """Waves from the manifests' annotations; order from Argo CD's sync result (each Application's first full
    sync, as the watch saw it) and from the API server's creation times."""
    for env in s.envs:
        name = s.env_app(env)
        first = s.apps.recorder.first(name)
        assert first is not None, (
            f"{name}: no finished sync listing its objects was seen (watch error: {s.apps.recorder.error})"
        )
        _sync_order(s, env, first)


def test_argocd_deploys_the_chart_as_it_deploys_the_folder(s: Scenario) -> None:
    """The same environment from the Helm chart: an Application whose source is dist/helm/<platform>/ with
    dev's values file, its namespace set through a Helm parameter (`dev.spec.namespace`) so it does not share
    the folder's objects, in a project of its own that allows only that namespace. Argo CD renders the chart
    with helm, syncs it and finds it Synced and Healthy, with the objects the folder's Application has (by
    kind and name). Removed afterwards with its namespace and project (no finalizer: nothing else touched)."""
    env = next(e for e in s.envs if e.name == "dev")
    folder_app = s.apps.get(s.env_app(env))
    assert folder_app is not None
    name = f"{folder_app['metadata']['name']}-chart"
    namespace = env.namespace + CHART_SUFFIX
    projects = s.served.work / "dist" / "argocd"
    project = yaml.safe_load((projects / f"appproject-{folder_app['spec']['project']}.yaml").read_text())
    project["metadata"] = {"name": name, "namespace": argocd.NAMESPACE}
    project["spec"]["destinations"] = [{"server": env.server, "namespace": namespace}]
    project["spec"].pop("syncWindows", None)
    source = folder_app["spec"]["source"]
    chart = {
        "apiVersion": APP[0],
        "kind": APP[1],
        "metadata": {"name": name, "namespace": argocd.NAMESPACE},
        "spec": {
            "project": name,
            "destination": {"server": env.server, "namespace": namespace},
            "source": {
                "repoURL": source["repoURL"],
                "targetRevision": source["targetRevision"],
                "path": f"dist/helm/{platform_spec(s.served.work)['name']}",
                "helm": {
                    "valueFiles": [f"values-{env.folder.replace('/', '-')}.yaml"],
                    "parameters": [{"name": f"{env.folder}.spec.namespace", "value": namespace}],
                },
            },
            "syncPolicy": folder_app["spec"]["syncPolicy"],
        },
    }
    for doc in (project, chart):
        result = s.kube.apply(doc)
        assert result.ok, f"applying {doc['kind']} {name}: {result.message}"
    try:
        app = s.apps.wait([name], synced_healthy(), "the chart's Application synced", s.timeout_s, s.alive)[
            name
        ]
        assert app["status"]["sourceType"] == "Helm"
        assert app["status"]["sync"]["revision"] == folder_app["status"]["sync"]["revision"]

        def objects(a: dict[str, Any]) -> set[tuple[str, str]]:
            return {(r["kind"], r["name"]) for r in a["status"]["resources"]}

        folder_objects = {(k, n.replace(env.namespace, namespace)) for k, n in objects(folder_app)}
        assert objects(app) == folder_objects
        live = s.kube.list("apps/v1", "Deployment", namespace)
        assert {d["metadata"]["name"] for d in live} == {n for k, n in folder_objects if k == "Deployment"}
        s.log(f"{name}: Argo CD synced the chart's {len(objects(app))} objects into {namespace}, Healthy")
    finally:
        s.kube.delete(*APP, argocd.NAMESPACE, name)
        s.kube.delete("v1", "Namespace", None, namespace)
        s.kube.delete(*PROJECT, argocd.NAMESPACE, name)
    assert synced_healthy()(s.apps.get(s.env_app(env)) or {}), "the folder's Application was disturbed"


def test_an_autoscaler_keeps_the_app_synced_and_self_heal_puts_fixed_replicas_back(s: Scenario) -> None:
    """An autoscaler changes replicas: the app stays Synced. The control: a Deployment whose replicas git does
    set, with no autoscaler, is put back by Argo CD's self-heal when scaled, so the diff does see replica
    changes where nothing says otherwise."""
    apps = s.apps
    for env in s.envs:
        target = autoscaled(s.served.work, env)
        if target is None:
            continue
        deployment, replicas = target
        s.scaled[env.folder] = target
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
            f"{env.folder} refreshed after scaling",
            s.timeout_s,
            s.alive,
        )
        app = apps.get(name)
        assert app is not None
        live = s.kubes[env.server].get("apps/v1", "Deployment", env.namespace, deployment)
        assert live is not None
        assert app["status"]["sync"]["status"] == "Synced" and live["spec"]["replicas"] == replicas, (
            f"{env.folder}: after scaling {deployment} to {replicas}: {apps.state(app)}, live replicas "
            f"{live['spec']['replicas']}"
        )
        s.log(
            f"{env.folder}: {deployment} scaled to {replicas} as its autoscaler would; "
            f"app still {apps.state(app)}"
        )
    _self_heal_control(s)


def test_adding_then_removing_a_service_prunes_it_and_keeps_its_claims(s: Scenario, found: Found) -> None:
    """Test-only branch: add a service (commit B), sync; remove it (commit C), sync: pruned, PVCs kept."""
    apps, served = s.apps, s.served
    git(served.work, "checkout", "-q", "-b", "test/remove-service")
    add_service(served.work, EXTRA_SERVICE)
    serve(served, s.mirror)
    added = served.commit(f"test: add a service {EXTRA_SERVICE}")
    before = git(served.work, "rev-parse", "HEAD~1")
    new_files = git(
        served.work, "diff", "--name-only", "--diff-filter=A", before, added, "--", "dist/"
    ).splitlines()
    auto = [e for e in s.envs if e.automated]
    served.push(added, "main")
    apps.refresh(found.root, *[s.env_app(e) for e in auto])
    apps.wait(
        [s.env_app(e) for e in auto],
        synced_healthy(added),
        f"{EXTRA_SERVICE} synced",
        s.timeout_s,
        s.alive,
        10,
    )
    claims = {
        e.folder: {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for p in s.kubes[e.server].list("v1", "PersistentVolumeClaim", e.namespace)
            if p["metadata"]["name"].startswith("data-redis-")
        }
        for e in auto
    }
    assert all(claims.values()), f"no Redis PVCs found to watch: {claims}"
    objects = []
    for env in auto:
        for rel in [f for f in new_files if f.startswith(f"dist/{env.folder}/")]:
            for doc in yaml.safe_load_all((served.work / rel).read_text(encoding="utf-8")):
                if isinstance(doc, dict) and doc:
                    keep = "Prune=false" in sync_options(doc)
                    objects.append((env, doc["apiVersion"], doc["kind"], doc["metadata"]["name"], keep))
    assert objects, f"adding {EXTRA_SERVICE} added no objects under dist/"
    for env, api_version, kind, name, _keep in objects:
        assert s.kubes[env.server].get(api_version, kind, env.namespace, name) is not None, (
            f"{env.folder}: {kind} {name} not synced"
        )
    s.log(f"{EXTRA_SERVICE} added and synced: {len(objects)} objects in {', '.join(e.folder for e in auto)}")
    for env in auto:
        if env.folder in s.scaled:  # a later sync must not undo what the autoscaler set
            deployment, replicas = s.scaled[env.folder]
            live = s.kubes[env.server].get("apps/v1", "Deployment", env.namespace, deployment)
            assert live is not None
            assert live["spec"]["replicas"] == replicas, (
                f"{env.folder}: syncing a new commit reset {deployment} from {replicas} to "
                f"{live['spec']['replicas']} replicas"
            )
            s.log(
                f"{env.folder}: the new commit's sync left {deployment} at the autoscaler's {replicas} "
                "replicas"
            )

    git(served.work, "revert", "--no-edit", added)
    removed = found.removed = git(served.work, "rev-parse", "HEAD")
    served.push(removed, "main")
    apps.refresh(found.root, *[s.env_app(e) for e in auto])
    kept = {(e.folder, k, n) for e, _av, k, n, keep in objects if keep}
    for env in auto:  # each Synced again, the kept objects listed as extraneous
        apps.wait(
            [s.env_app(env)],
            synced_keeping(removed, {(k, n) for e, k, n in kept if e == env.folder}),
            f"{EXTRA_SERVICE} removed from {env.folder}",
            s.timeout_s,
            s.alive,
            10,
        )
    left = [
        (e.folder, k, n) for e, av, k, n, _keep in objects if s.kubes[e.server].get(av, k, e.namespace, n)
    ]
    assert set(left) == kept, (
        f"after removing {EXTRA_SERVICE}: left in the cluster {sorted(left)}, expected only the objects "
        f"marked Prune=false {sorted(kept)}"
    )
    for env in auto:
        now = {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for p in s.kubes[env.server].list("v1", "PersistentVolumeClaim", env.namespace)
            if p["metadata"]["name"].startswith("data-redis-") and not p["metadata"].get("deletionTimestamp")
        }
        assert now == claims[env.folder], (
            f"{env.folder}: Redis PVCs changed by the prune: {claims[env.folder]} -> {now}"
        )
    s.log(
        f"removing {EXTRA_SERVICE} pruned {len(objects) - len(kept)} of its {len(objects)} objects; kept as "
        f"their Prune=false asks (Argo CD lists them as requiring pruning, the apps stay Synced): "
        f"{sorted(kept) or 'none'}; Redis PVCs kept: "
        + ", ".join(f"{k}: {sorted(v)}" for k, v in claims.items())
    )


def test_deleting_an_application_keeps_its_claims_and_the_root_recreates_it(
    s: Scenario, found: Found
) -> None:
    """Deleting an environment's Application deletes what it deployed (its resources finalizer), except what
    the manifests mark Delete=false: the namespace and the claims keep their uids, and the claims made by
    StatefulSets (which Argo CD does not track) stay too. The root then recreates the Application, which
    syncs again onto the kept claims."""
    apps = s.apps

    def kept_claims(env: Env) -> int:
        return sum(
            m.obj["kind"] == "PersistentVolumeClaim" and "Delete=false" in sync_options(m.obj)
            for m in load_folder(s.served.work / "dist" / env.folder)
        )

    env = max((e for e in s.envs if e.automated), key=kept_claims)
    name, kube = s.env_app(env), s.kubes[env.server]
    app = apps.get(name)
    assert app is not None
    assert FINALIZER in (app["metadata"].get("finalizers") or []), f"{name} has no {FINALIZER}"
    objects = []
    for m in load_folder(s.served.work / "dist" / env.folder):
        namespace = None if m.obj["kind"] == "Namespace" else env.namespace
        live = kube.get(m.obj["apiVersion"], m.obj["kind"], namespace, m.obj["metadata"]["name"])
        assert live is not None, f"{env.folder}: {m.obj['kind']} {m.obj['metadata']['name']} missing before"
        keep = "Delete=false" in sync_options(m.obj)
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
    assert before, f"{env.folder}: no claims to keep"
    s.kube.delete(*APP, argocd.NAMESPACE, name)
    old_uid = app["metadata"]["uid"]
    deadline = time.monotonic() + s.timeout_s
    while (now := apps.get(name)) is not None and now["metadata"]["uid"] == old_uid:
        s.alive()
        assert time.monotonic() < deadline, (
            f"{name} was not deleted in {s.timeout_s:.0f} s: {apps.describe(name)}"
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
        assert same == keep, (
            f"{env.folder}: {kind} {obj_name} {'deleted' if keep else 'kept'} with its Application"
        )
        (kept if keep else deleted).append(f"{kind} {obj_name}")
    assert claims() == before, f"{env.folder}: claims changed by deleting {name}: {before} -> {claims()}"
    s.log(
        f"deleted {name}: Argo CD deleted its {len(deleted)} objects and kept {sorted(kept)} (Delete=false) "
        f"and every claim: {sorted(before)}"
    )
    apps.refresh(found.root)
    apps.wait(
        [name], synced_healthy(found.removed), f"{name} recreated by the root", s.timeout_s, s.alive, 10
    )
    assert claims() == before, f"{env.folder}: claims changed when {name} came back: {before} -> {claims()}"
    s.log(f"the root recreated {name}; it synced again onto the same claims")


def test_a_closed_sync_window_refuses_a_manual_sync(s: Scenario, found: Found) -> None:
    """A commit closes the windowed environments' sync window (computed from the test's clock); once Argo CD
    has the AppProject with it, a manual sync of such an environment is refused: the operation stays
    Running, blocked by the window, and no sync result for its revision appears. The control: the same
    manual sync ran while the window was open (the manual sync scenario)."""
    windowed = [e for e in s.envs if e.windows]
    if not windowed:
        pytest.skip("no environment has sync windows in the spec: nothing to refuse")
    apps, served = s.apps, s.served
    window = set_windows(served.work, s.envs, open_now=False)
    serve(served, s.mirror)
    head = served.push(served.commit("test: close the sync windows"), "main")
    apps.refresh(found.root)
    apps.wait(
        [found.root], synced_healthy(head), "the closed window reached Argo CD", s.timeout_s, s.alive, 10
    )
    project_file = f"appproject-{platform_spec(served.work)['argocd']['project']}.yaml"
    project = yaml.safe_load((served.work / "dist" / "argocd" / project_file).read_text(encoding="utf-8"))
    live = s.kube.get(*PROJECT, argocd.NAMESPACE, project["metadata"]["name"])
    assert live is not None
    assert live["spec"].get("syncWindows") == project["spec"].get("syncWindows"), (
        f"the AppProject's windows are {live['spec'].get('syncWindows')}, "
        f"git has {project['spec'].get('syncWindows')}"
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
        op = operation(app)
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
        + "; ".join(f"{n}: {operation(a).get('message')}" for n, a in blocked.items())
    )


def test_the_gate_stops_a_policy_breaking_branch(s: Scenario) -> None:
    """A policy-breaking commit on a test-only branch: the gate (`make check`'s command) stops it before
    merge, while the same gate passes the commit Argo CD synced."""
    served = s.served
    git(served.work, "checkout", "-q", "main")
    control = gate(served, "dev")
    assert control.returncode == 0, f"the gate fails the synced commit itself: {control.stdout[-500:]}"
    git(served.work, "checkout", "-q", "-b", "test/break-policy", "main")
    path = served.work / "dist" / "dev" / "deployment-inference.yaml"
    text = path.read_text(encoding="utf-8")
    image = next(line.split("image:", 1)[1].strip() for line in text.splitlines() if "image:" in line)
    path.write_text(text.replace(image, image.split("@", 1)[0] + ":latest"), encoding="utf-8")
    served.commit("test: deploy a mutable image tag (breaks require-image-digest)")
    broken = gate(served, "dev")
    found = [
        line.strip()
        for line in (broken.stdout + broken.stderr).splitlines()
        if "deployment-inference.yaml" in line and "violates require-image-digest" in line
    ]
    assert broken.returncode != 0 and found, (
        f"the gate let a mutable image tag through (exit {broken.returncode}): {broken.stdout[-500:]}"
    )
    served_main = git(served.bare, "rev-parse", "refs/heads/main")
    assert served_main != git(served.work, "rev-parse", "HEAD"), "the policy-breaking commit reached main"
    s.log(
        f"the gate passes main and stops the policy-breaking branch (exit {broken.returncode}): "
        f"{found[0][:200]}"
    )


# --- the scenarios' own steps ----------------------------------------------------------------------------


def _in_cluster_policies(s: Scenario) -> str | None:
    """The cluster-policies Application for the cluster Argo CD runs in, once the root has created it."""
    found = [a for a in s.app_of("dist/cluster-policies") if a["spec"]["destination"]["server"] == IN_CLUSTER]
    return str(found[0]["metadata"]["name"]) if found else None


def _root_creates_every_app(s: Scenario, root: str) -> tuple[list[str], list[str]]:
    """The root creates one Application per environment (with the spec's destination) and one
    cluster-policies Application per cluster; returns the names of both."""
    deadline = time.monotonic() + s.timeout_s
    servers = sorted({e.server for e in s.envs})
    while True:
        s.alive()
        envs_found = {e.folder: s.app_of(f"dist/{e.folder}") for e in s.envs}
        policies = s.app_of("dist/cluster-policies")
        policy_servers = sorted(a["spec"]["destination"]["server"] for a in policies)
        if all(len(v) == 1 for v in envs_found.values()) and policy_servers == servers:
            break
        assert time.monotonic() < deadline, (
            f"the root app did not create every Application in {s.timeout_s:.0f} s: environments "
            f"{ {k: len(v) for k, v in envs_found.items()} }, cluster-policies for {policy_servers} "
            f"(want {servers}); {s.apps.describe(root)}"
        )
        time.sleep(1.0)
    for env in s.envs:
        app = envs_found[env.folder][0]
        assert app["spec"]["destination"] == {"server": env.server, "namespace": env.namespace}, (
            f"Application for {env.folder} has destination {app['spec']['destination']}, the spec says "
            f"{env.server} {env.namespace}"
        )
    env_apps = [str(v[0]["metadata"]["name"]) for v in envs_found.values()]
    policy_apps = sorted(str(a["metadata"]["name"]) for a in policies)
    s.log(f"root app created {', '.join(env_apps)} and cluster-policies {', '.join(policy_apps)}")
    return env_apps, policy_apps


def _sync_order(s: Scenario, env: Env, app: dict[str, Any]) -> None:
    manifests = list(load_folder(s.served.work / "dist" / env.folder))
    waves = {
        (m.obj["kind"], m.obj["metadata"]["name"]): int(
            (m.obj["metadata"].get("annotations") or {}).get(WAVE, "0")
        )
        for m in manifests
    }
    results = app["status"]["operationState"]["syncResult"]["resources"]
    order = [(r["kind"], r["name"]) for r in results if (r["kind"], r["name"]) in waves]
    assert len(order) == len(waves), f"{env.folder}: sync result lists {len(order)} of {len(waves)} objects"
    seen = [waves[k] for k in order]
    assert seen == sorted(seen), (
        f"{env.folder}: Argo CD synced out of wave order: {list(zip(order, seen, strict=True))}"
    )

    def position(pred: Callable[[tuple[str, str]], bool]) -> list[int]:
        return [i for i, k in enumerate(order) if pred(k)]

    first_tier = position(lambda k: k[0] in ("Namespace", "ResourceQuota", "NetworkPolicy"))
    middle = position(lambda k: k[0] == "ExternalSecret" or k == ("StatefulSet", "redis"))
    service = position(lambda k: k[0] in ("Deployment",) or k == ("Service", "inference"))
    assert (
        bool(first_tier and middle and service)
        and max(first_tier) < min(middle)
        and max(middle) < min(service)
    ), (
        f"{env.folder}: expected namespace, quota and network policies before secrets and Redis before the "
        f"service; Argo CD's order was {order}"
    )
    # Independent of the sync result: the API server's creation times follow the waves too.
    api_versions = {(m.obj["kind"], m.obj["metadata"]["name"]): m.obj["apiVersion"] for m in manifests}
    created: dict[int, list[str]] = {}
    for (kind, name), wave in waves.items():
        ns = None if kind == "Namespace" else env.namespace
        live = s.kubes[env.server].get(api_versions[kind, name], kind, ns, name)
        assert live is not None, f"{env.folder}: {kind} {name} is not in the cluster after the sync"
        created.setdefault(wave, []).append(live["metadata"]["creationTimestamp"])
    ordered = sorted(created)
    for a, b in itertools.pairwise(ordered):
        assert max(created[a]) <= min(created[b]), (
            f"{env.folder}: an object of wave {a} was created after one of wave {b}"
        )
    summary = " -> ".join(
        f"wave {w}: " + ", ".join(sorted({k for (k, _n), v in waves.items() if v == w})) for w in ordered
    )
    s.log(f"{env.folder} synced in wave order ({len(order)} objects): {summary}")


def _self_heal_control(s: Scenario) -> None:
    for env in s.envs:
        if not env.automated or autoscaled(s.served.work, env) is not None:
            continue
        for m in load_folder(s.served.work / "dist" / env.folder):
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
                assert time.monotonic() < deadline, (
                    f"{env.folder}: self-heal did not put {name} back to {want} replicas"
                )
                time.sleep(1.0)
            s.log(
                f"control: {env.folder}'s {name} (replicas {want} in git, no autoscaler) scaled to "
                f"{want + 1} was put back to {want} by Argo CD's self-heal"
            )
            return
