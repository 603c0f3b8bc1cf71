"""Stopping what the tests start: each process leads its own process group, which is signalled whole."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable


def signal_group(popen: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the process group of a process that is still running."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, sig)


def stop_all(popens: Iterable[subprocess.Popen[bytes]], grace_s: float = 10.0) -> None:
    """SIGTERM every group at once, then SIGKILL whatever has not exited within the shared grace period."""
    running = list(popens)
    for popen in running:
        signal_group(popen, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for popen in running:
        try:
            popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(popen, signal.SIGKILL)
            popen.wait()
