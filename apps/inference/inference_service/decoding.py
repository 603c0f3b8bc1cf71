"""Large JSON bodies are decoded in a helper process.

`orjson.loads` of a 6 MB body is one C call of 35-50 ms that holds the GIL: on the event loop thread, or on
any other thread of the process, it stalls every request, health probes included. A helper process decodes the
body instead and hands back the document with each numeric `data` (V2) or `instances` (V1) list already a
NumPy array (pickled as one buffer; the lists themselves would cost as much to unpickle as to parse). The
parent then validates the document as it would its own (`inference_service.protocol`).

This module imports only orjson and NumPy: it is what the helper process loads.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import orjson

_NUMERIC_KINDS = "biuf"


def _array(value: Any) -> Any:
    """`value` as an ndarray when it is a rectangular numeric list; else unchanged (the parent says why)."""
    if not isinstance(value, list):
        return value
    try:
        array = np.asarray(value)
    except ValueError:
        return value
    return array if array.dtype.kind in _NUMERIC_KINDS else value


def invalid_json(exc: orjson.JSONDecodeError) -> str:
    """What a client is told about a body that is not JSON."""
    return f"request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"


class InvalidJson(Exception):
    """The body is not JSON (raised in the helper, re-raised in the service as a 400 with this message)."""


def decode(body: bytes) -> Any:
    """In the helper: the JSON document, numeric tensors as arrays."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(invalid_json(exc)) from None
    if isinstance(doc, dict):
        inputs = doc.get("inputs")
        if isinstance(inputs, list):
            for item in inputs:
                if isinstance(item, dict) and "data" in item:
                    item["data"] = _array(item["data"])
        if "instances" in doc:
            doc["instances"] = _array(doc["instances"])
    return doc


class Decoder:
    """One helper process (started on first use, `spawn`: the service has threads), one body at a time."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def decode(self, body: bytes) -> Any:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return await asyncio.get_running_loop().run_in_executor(self._pool, decode, body)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
