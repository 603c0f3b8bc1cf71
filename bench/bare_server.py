"""The reference server for bench/inference_bench.py: a bare ASGI handler with orjson and onnxruntime.

    python bench/bare_server.py PORT MODEL.onnx NAME

V2 JSON inference for a one-input model and nothing else: no auth, no validation beyond what orjson and
numpy do, no logs, no metrics; uvicorn with uvloop and httptools, one worker, onnxruntime with one thread.
What a Python server on this machine can do at best: the bench reports every figure as a ratio to it.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn

_JSON = [(b"content-type", b"application/json")]


async def read_body(receive: Any) -> bytes:
    """An ASGI request's whole body."""
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def make_app(model_path: str, name: str) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    outputs = [(o.name, "INT64" if "int64" in o.type else "FP32") for o in session.get_outputs()]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # readiness, for the bench's wait
            body = b'{"ready":true}'
        else:
            item = orjson.loads(await read_body(receive))["inputs"][0]
            x = np.asarray(item["data"], dtype=np.float32).reshape(item["shape"])
            results = session.run(None, {input_name: x})
            body = orjson.dumps(
                {
                    "model_name": name,
                    "model_version": "1",
                    "outputs": [
                        {"name": n, "datatype": t, "shape": list(r.shape), "data": r.ravel()}
                        for (n, t), r in zip(outputs, results, strict=True)
                    ],
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


if __name__ == "__main__":
    port, path, model = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(
        make_app(path, model), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
        access_log=False, log_level="warning", lifespan="off", server_header=False, date_header=False,
    )  # fmt: skip
