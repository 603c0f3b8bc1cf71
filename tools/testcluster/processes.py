"""Processes the tests start: a free loopback port, stopping them (each leads its own process group, signalled
whole), logs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def log_tail(log: Path, lines: int, *, width: int) -> str:
    """The last `lines` lines of a process's log, each cut to `width`, joined with " | " ("" if none)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[:width] for line in text[-lines:])
