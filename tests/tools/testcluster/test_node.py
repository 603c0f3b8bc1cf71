"""The node test (make node-test): what it changes in dist/ before applying it, and what it leaves on the
machine.

The full run (every environment on the node, the requests through the Services) is `make node-test` itself;
here a dev-only run is interrupted with SIGINT once its pods are Ready, and the machine is inspected from
outside: no process, mount, cgroup, iptables chain or rule, bridge, network namespace or fixed path of the
node may be left, and the sysctls it touched are back."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testcluster.apply import load_folder, sync_order, sync_waves, wave_of
from testcluster.hoststate import HostState
from testcluster.node import LOCK, _pids_naming
from testcluster.node_run import ENVIRONMENTS, REQUEST_SCALE, pod_spec, quantity, scale_requests

REPO = Path(__file__).resolve().parents[3]
NODE_BINARIES = ("kubelet", "kube-proxy", "coredns", "kube-network-policies")


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize(
    "path", ["dist/prod/deployment-inference.yaml", "dist/stage/statefulset-jobs-redis.yaml"]
)
def test_only_cpu_and_memory_requests_are_scaled(path: str) -> None:
    original = _load(REPO / path)
    scaled = scale_requests(original)
    containers = scaled["spec"]["template"]["spec"]["containers"]
    for before, after in zip(original["spec"]["template"]["spec"]["containers"], containers, strict=True):
        for resource in ("cpu", "memory"):
            want = quantity(str(before["resources"]["requests"][resource])) / REQUEST_SCALE
            got = quantity(str(after["resources"]["requests"][resource]))
            assert abs(got - want) <= quantity("1m" if resource == "cpu" else "1Ki")
        assert after["resources"]["limits"] == before["resources"]["limits"]
    # Put the requests back: nothing else may differ.
    restored = copy.deepcopy(scaled)
    for before, after in zip(
        original["spec"]["template"]["spec"]["containers"],
        restored["spec"]["template"]["spec"]["containers"],
        strict=True,
    ):
        after["resources"]["requests"] = before["resources"]["requests"]
    assert restored == original
    assert original == _load(REPO / path)  # the input is not modified


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_waves_keep_sync_order_and_bind_claims_before_their_pods(env: str) -> None:
    """The node test applies a wave only once the waves before it are healthy. The waves, joined, are Argo
    CD's order, each wave number once, ascending; and every claim a pod template mounts comes in an earlier
    wave than the workload (else its pods reach kube-scheduler before the claim is bound, and may wait five
    minutes for a retry)."""
    manifests = load_folder(REPO / "dist" / env)
    waves = sync_waves(manifests)
    assert [m for wave in waves for m in wave] == sync_order(manifests)
    numbers = [wave_of(wave[0]) for wave in waves]
    assert numbers == sorted(set(numbers))
    assert all(wave_of(m) == wave_of(wave[0]) for wave in waves for m in wave)
    claim_wave = {
        m.obj["metadata"]["name"]: wave_of(m) for m in manifests if m.obj["kind"] == "PersistentVolumeClaim"
    }
    for m in manifests:
        for volume in (pod_spec(m.obj) or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is not None:
                assert claim_wave[claim] < wave_of(m), f"{m.label}: claim {claim} is not in an earlier wave"


@contextlib.contextmanager
def _quiet_machine() -> Iterator[None]:
    """Hold the node lock while the host is read, so no other node test on this machine is half up."""
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class _Lines:
    """A child's output lines, read by a thread (a pipe's text buffer hides lines from select)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.stream = proc.stdout
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        for line in self.stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def until(self, marker: str, timeout_s: float) -> list[str]:
        """The lines up to the one containing `marker`; fails if the child exits or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=1.0)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if marker in line:
                return self.seen
        pytest.fail(f"the node run never printed {marker!r}; its output: " + "\n".join(self.seen[-30:]))

    def rest(self) -> list[str]:
        self.thread.join(timeout=30)
        while (line := self.queue.get_nowait() if not self.queue.empty() else None) is not None:
            self.seen.append(line)
        return self.seen


@pytest.mark.slow
def test_sigint_teardown_leaves_nothing_on_the_machine() -> None:
    """A dev-only node run, interrupted once its pods are Ready, leaves the host as it found it."""
    with _quiet_machine():
        before = HostState.now()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testcluster.node_run",
            "--env",
            "dev",
            "--no-checks",
            "--wait-for-interrupt",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _Lines(proc)
        lines = output.until("waiting for SIGINT", timeout_s=420)
        workdir = next(
            (m.group(1) for line in lines if (m := re.search(r"Ready in [\d.]+ s \((\S+)\)", line))), None
        )
        assert workdir is not None, lines
        name = next((m.group(1) for line in lines if (m := re.match(r"node (node-\w+) Ready", line))), None)
        assert name is not None, lines
        assert any(line.startswith("dev: ") and "pods Ready" in line for line in lines), lines
        running = _pids_naming(workdir)
        assert running, f"no process of the node names {workdir} while it is up"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:  # a failed wait: still interrupt it, so its own teardown runs
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=180)
    assert proc.returncode == 130, output.rest()[-20:]
    assert any("interrupted; torn down" in line for line in output.rest())
    with _quiet_machine():
        left = HostState.now().left_since(before)
    assert left == [], left
    assert not Path(workdir).exists()
    marks = (workdir, f"--hostname-override={name}")  # the NetworkPolicy agent names only the node
    survivors = sorted({pid for mark in marks for pid in _pids_naming(mark)})
    assert survivors == [], f"processes still naming {marks}: {survivors}"


def test_the_agent_takes_the_first_queue_no_process_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A listener left on NFQUEUE 100 by an earlier, killed run would judge this node's packets against its
    own stale pods (it did: nearly every flow of the matrix was open); the node takes the next free queue."""
    from testcluster import node

    queues = tmp_path / "nfnetlink_queue"  # the kernel's format: queue, peer port id, then counters
    monkeypatch.setattr(node, "QUEUES", queues)
    assert node.free_queue() == node.NFQUEUE  # no queue bound (the file is absent until one is)
    queues.write_text(
        "  100   8674     0 2   128     0     0     3299  1\n  101   9001     0 2   128 0 0 0 1\n"
    )
    assert node.bound_queues() == {100, 101}
    assert node.free_queue() == 102
    assert (
        "NFQUEUE 100 is bound by a process this run did not start; this node uses 102"
        in capsys.readouterr().out
    )
