"""The audit trail: one JSON line per access decision, on its own stream, apart from the access log.

Each line: `"logger": "audit"`, time (ISO 8601, UTC), request_id, principal (`key` or `token`), key_id or
subject (+ issuer), method, path, action, model, version, decision (`allow`/`deny`), status (the response's:
a refusal's, or what the request got once let through), reason. Never a token or a key
(a key is named by its id; a key without one by a hash prefix). Lines are buffered and written in batches
as the access log's are (inference_service.accesslog), so the trail costs no system call per request.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from inference_service.accesslog import AccessLog
from inference_service.logs import iso_time


def open_stream(destination: str) -> BinaryIO:
    """`stderr` (default: the service log stream, not stdout's access log), `stdout`, or a file path."""
    if destination == "stderr":
        return sys.stderr.buffer
    if destination == "stdout":
        return sys.stdout.buffer
    try:
        return Path(destination).open("ab")  # open for the process's life
    except OSError as exc:
        raise ValueError(f"INFERENCE_AUDIT_LOG {destination}: cannot open: {exc}") from exc


class AuditLog:
    def __init__(self, stream: BinaryIO) -> None:
        self._log = AccessLog(stream)

    def write(self, line: dict[str, Any]) -> None:
        line["time"] = iso_time(time.time())
        line["logger"] = "audit"
        self._log.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        self._log.flush()
