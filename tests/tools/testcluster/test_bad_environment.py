"""A broken test environment gets one line that says what to do: missing binary, port in use, crashed etcd."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from testcluster import controlplane
from testcluster.errors import ClusterTestError


def test_a_missing_binary_names_it_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controlplane, "BIN_DIR", tmp_path)
    with (
        pytest.raises(ClusterTestError, match=r"etcd not found at .*; run `make setup`"),
        controlplane.control_plane(),
    ):
        pass


def test_a_port_in_use_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setattr(controlplane, "free_port", lambda: port)
        in_use = rf"port 127.0.0.1:{port} for etcd is in use"
        with pytest.raises(ClusterTestError, match=in_use), controlplane.control_plane():
            pass


def test_a_crashed_etcd_is_reported_with_its_log_and_everything_is_cleaned_up() -> None:
    with controlplane.control_plane() as plane:
        workdir = plane.workdir
        pids = [p.popen.pid for p in plane.processes]
        etcd = next(p for p in plane.processes if p.name == "etcd")
        os.killpg(etcd.popen.pid, signal.SIGKILL)
        etcd.popen.wait()
        with pytest.raises(ClusterTestError, match=r"etcd exited with code -9; its log .* ends:"):
            plane.check_alive()
    assert not workdir.exists()
    time.sleep(0.2)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
