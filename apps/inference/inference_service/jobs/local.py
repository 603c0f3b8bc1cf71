"""A persistent redis-server for the job store, as the cluster runs it: AOF on every write (`appendfsync
always`), `noeviction` (a full store refuses writes; it never drops a queued job). For tests and
`make serve`; restartable on the same port and data folder (a SIGKILL loses nothing that was acked)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time

from inference_service.local import RedisProcess, redis_server_binary


class JobsRedisProcess(RedisProcess):
    def start(self, timeout: float = 10.0) -> None:
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", self._dir,
            "--maxmemory", "256mb", "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc = self._proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # AOF replay on a restart happens before it answers
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode} on port {self.port}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                if reply and not reply.startswith(b"-LOADING"):
                    return
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout}s")
