"""Processes a test or bench starts: a free loopback port, start and wait until ready, stop.

Each process leads its own process group (a service with workers is stopped whole), stopped by
testcluster.processes.stop_all: SIGTERM, then SIGKILL after a grace period."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from testcluster.processes import free_port, log_tail, signal_group, stop_all

__all__ = ["NotReady", "free_port", "http_ok", "http_status", "start", "started", "stop", "wait_until"]

Output = int | Path | IO[bytes] | None  # subprocess's DEVNULL, PIPE, STDOUT, a log file to write, or inherit


class NotReady(RuntimeError):
    """A started process exited, or did not become ready in time."""


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """The status of GET `url` (an error status too), or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness probe: GET `url` answers 200."""
    return lambda: http_status(url) == 200


def _output_of(process: subprocess.Popen[Any] | None, log: Path | None) -> str:
    """The end of what a process wrote: its log's last lines, else (once it exited) its piped stderr."""
    if log is not None:
        return log_tail(log, 20, width=300)
    if process is not None and process.poll() is not None and process.stderr is not None:
        out = process.stderr.read()
        return str(out.decode(errors="replace") if isinstance(out, bytes) else out)[-2000:]
    return ""


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout_s: float = 60.0,
    process: subprocess.Popen[Any] | None = None,
    log: Path | None = None,
    interval_s: float = 0.05,
) -> None:
    """Poll `ready` until it is true; NotReady (with the log's tail) if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if ready():
            return
        if process is not None and process.poll() is not None:
            raise NotReady(f"{what} exited with {process.returncode}: {_output_of(process, log)}")
        if time.monotonic() > deadline:
            raise NotReady(f"{what} did not become ready in {timeout_s:.0f} s: {_output_of(None, log)}")
        time.sleep(interval_s)


def _open(output: Output) -> tuple[int | IO[bytes] | None, IO[bytes] | None]:
    if isinstance(output, Path):
        handle = output.open("wb")
        return handle, handle
    return output, None


def start(
    command: Sequence[str],
    *,
    ready: Callable[[], bool],
    what: str,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: Output = subprocess.DEVNULL,
    stderr: Output = subprocess.DEVNULL,
    interval_s: float = 0.05,
) -> subprocess.Popen[bytes]:
    """Start `command` in a process group of its own and wait until `ready`; stopped again if it is not."""
    out, out_handle = _open(stdout)
    err, err_handle = _open(stderr)
    try:
        process = subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    finally:
        for handle in (out_handle, err_handle):
            if handle is not None:
                handle.close()
    log = stderr if isinstance(stderr, Path) else stdout if isinstance(stdout, Path) else None
    try:
        wait_until(ready, what=what, timeout_s=timeout_s, process=process, log=log, interval_s=interval_s)
    except BaseException:
        stop(process, grace_s=0)
        raise
    return process


@contextmanager
def started(
    command: Sequence[str], *, grace_s: float = 10.0, **options: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """`start` as a block that stops the process when it ends (options: those of `start`)."""
    process = start(command, **options)
    try:
        yield process
    finally:
        stop(process, grace_s=grace_s)


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM its process group, SIGKILL after `grace_s` (0: at once) if still running; reaps it."""
    if grace_s > 0:
        stop_all([process], grace_s=grace_s)
    signal_group(process, signal.SIGKILL)
    process.wait()
