"""`make serve` (python -m inference_service.local): stops cleanly on SIGTERM, SIGINT and SIGHUP.

Each test starts the real command (its own redis-server, uvicorn), waits until it is ready, sends one signal
and then checks that the process exited with 128 + the signal, that no redis-server it started is left
running (none whose --dir lies in the test's temporary folder) and that the folder redis used is gone.
Also: /docs opens without a key there, and the key is still needed for the API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, http_ok, start

pytestmark = pytest.mark.slow


def _processes_using(folder: Path) -> list[int]:
    """Pids of live processes working in a folder inside `folder` (redis-server changes into its --dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd.startswith(f"{folder}/") and state != "Z":
            found.append(int(entry.name))
    return found


def _start(model_repository: Path, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    return start(
        [sys.executable, "-m", "inference_service.local", "--model-repository", str(model_repository),
         "--port", str(port), "--api-key", "local-test-key"],
        env=dict(os.environ, TMPDIR=str(tmp), INFERENCE_MODELS="breast-cancer:2"),
        ready=http_ok(f"http://127.0.0.1:{port}/v2/health/ready"),
        what="make serve",
        stderr=subprocess.PIPE,
        interval_s=0.1,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_leaves_no_redis_and_no_folder(
    sig: signal.Signals, model_repository: Path, tmp_path: Path
) -> None:
    port = free_port()
    proc = _start(model_repository, tmp_path, port)
    try:
        assert len(_processes_using(tmp_path)) == 1  # its redis-server
        assert len(list(tmp_path.glob("inference-redis-*"))) == 1
        proc.send_signal(sig)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 128 + sig, stderr
    assert "Traceback" not in stderr, stderr
    assert _processes_using(tmp_path) == [], "redis-server left running"
    assert list(tmp_path.glob("inference-redis-*")) == [], "redis's temporary folder left behind"


def test_docs_open_without_a_key_but_the_api_does_not(model_repository: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = _start(model_repository, tmp_path, port)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/docs").status_code == 200
        assert "breast-cancer" in httpx.get(f"{base}/openapi.json").text
        assert httpx.get(f"{base}/v2/models/breast-cancer").status_code == 401
        answer = httpx.get(f"{base}/v2/models/breast-cancer", headers={"X-API-Key": "local-test-key"})
        assert answer.status_code == 200 and answer.json()["versions"] == ["2"]
    finally:
        proc.terminate()
        proc.wait(30)
