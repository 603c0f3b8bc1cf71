"""A pod's deletion as the kubelet carries it out, for a container booted in the sandbox.

The kubelet runs the container's `preStop` hook first (a `sleep` action, or an `exec` command inside the
container), then sends SIGTERM, then SIGKILL once `terminationGracePeriodSeconds` (default 30), counted
from the start of the hook, has passed; a hook that outlasts the grace period gets 2 s more before the kill.
Meanwhile the endpoints controller removes the pod from its Services' endpoints, which clients see within
about a readiness period: the hook is what keeps the listener open until then.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from testcluster import processes, sandbox
from testcluster.errors import ClusterTestError

#: Kubelet's extra time for a preStop hook that outlasts the grace period.
HOOK_OVERRUN_S = 2.0
DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True)
class Termination:
    """Wall-clock times (time.time()) of one deletion, and how the container ended."""

    deleted_at: float  # the hook starts
    sigterm_at: float
    exited_at: float
    exit_code: int
    killed: bool  # SIGKILLed at the end of the grace period


def _hook(container: dict[str, Any], running: sandbox.Running, grace_s: float) -> None:
    hook = (container.get("lifecycle") or {}).get("preStop")
    if not hook:
        return
    if "sleep" in hook:
        time.sleep(min(float(hook["sleep"]["seconds"]), grace_s + HOOK_OVERRUN_S))
    elif "exec" in hook:
        running.exec(list(hook["exec"]["command"]), timeout=grace_s + HOOK_OVERRUN_S)
    else:
        raise ClusterTestError(f"container {container['name']}: preStop {sorted(hook)} is not supported here")


def terminate(pod_spec: dict[str, Any], container: dict[str, Any], running: sandbox.Running) -> Termination:
    """Delete the pod the kubelet's way: preStop hook, SIGTERM, SIGKILL at the end of the grace period."""
    grace_s = float(pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))
    deleted_at, start = time.time(), time.monotonic()
    _hook(container, running, grace_s)
    sigterm_at = time.time()
    if running.popen.poll() is None:  # the container's main process alone, as the runtime does
        os.kill(running.popen.pid, signal.SIGTERM)
    left = max(HOOK_OVERRUN_S, grace_s - (time.monotonic() - start))
    killed = False
    try:
        code = running.popen.wait(timeout=left)
    except subprocess.TimeoutExpired:
        processes.signal_group(running.popen, signal.SIGKILL)  # the runtime kills every process of it
        code, killed = running.popen.wait(), True
    return Termination(deleted_at, sigterm_at, time.time(), code, killed)
