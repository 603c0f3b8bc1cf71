"""Structured JSON logs on stderr for the service's own loggers (access lines go to stdout).

Every line (log, access, audit) carries `time`, ISO 8601 in UTC with milliseconds, and, inside a request or a
job, its `request_id`: the caller's X-Request-Id (or one the service made), which the job API stores with a
job so that the worker's lines about it carry the same id.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from contextvars import ContextVar

import orjson

#: The request (or, in a worker, the job's request) being served: set by the request middleware.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")


def iso_time(timestamp: float) -> str:
    """`2026-12-05T09:10:11.123Z`: seconds since the epoch as ISO 8601, UTC, milliseconds."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := REQUEST_ID.get():
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_logging(level: int = logging.INFO) -> None:
    """Idempotent: one JSON handler on the `inference` logger tree."""
    logger = logging.getLogger("inference")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
