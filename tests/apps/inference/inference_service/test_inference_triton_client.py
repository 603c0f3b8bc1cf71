"""An unchanged Triton client (tritonclient.http) talks to the service: V2 over a real socket.

Both tensor encodings Triton clients use are exercised: JSON tensors and the binary-data extension (the
client's default), for FP32 rows and BYTES text. Auth headers ride along as any Triton client can send them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from inference_service.local import RedisProcess
from tests.support.service import running_service

API_KEY = "triton-client-key-0123456789"


def auth() -> dict[str, str]:
    """A fresh header dict per call: tritonclient writes Inference-Header-Content-Length into the dict it is
    given for binary requests, which would then mislabel a later JSON request sent with the same dict."""
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def server(model_repository: Path, redis_server: RedisProcess) -> Iterator[str]:
    """`python -m inference_service` (the container entry point) on a free loopback port; yields host:port."""
    settings = {
        "models": "breast-cancer:1,minilm-embedding:1",
        "api_keys": API_KEY,
        "redis_url": redis_server.url,
        "access_log": "false",
    }
    with running_service(model_repository, settings=settings, what="the server", grace_s=30) as service:
        yield service.address


@pytest.fixture
def client(server: str) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(url=server)
    yield c
    c.close()


def test_health_and_metadata_through_the_triton_client(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("breast-cancer", headers=auth())
    assert client.is_model_ready("breast-cancer", "1", headers=auth())
    meta = client.get_model_metadata("breast-cancer", headers=auth())
    assert meta["name"] == "breast-cancer"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
    assert {o["name"] for o in meta["outputs"]} == {"label", "probabilities"}


@pytest.mark.parametrize("binary", [True, False], ids=["binary-extension", "json"])
def test_tabular_infer_matches_between_encodings(client: triton.InferenceServerClient, binary: bool) -> None:
    rows = np.random.default_rng(7).normal(size=(3, 30)).astype(np.float32)
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
    result = client.infer("breast-cancer", [tensor], outputs=outputs, headers=auth())
    probabilities = result.as_numpy("probabilities")
    labels = result.as_numpy("label")
    assert probabilities is not None and labels is not None
    assert probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert labels.tolist() == probabilities.argmax(axis=1).tolist()


def test_bytes_text_in_embedding_out(client: triton.InferenceServerClient) -> None:
    texts = np.array([b"a cat sits on the mat", "ein Hund läuft über die Wiese".encode()], dtype=np.object_)
    tensor = triton.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(texts, binary_data=True)
    result = client.infer("minilm-embedding", [tensor], headers=auth())
    embedding = result.as_numpy("embedding")
    assert embedding is not None and embedding.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)


def test_missing_key_is_refused_with_a_client_error(client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("input", [1, 30], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 30), dtype=np.float32))
    with pytest.raises(InferenceServerException) as raised:
        client.infer("breast-cancer", [tensor])
    assert raised.value.status() == "401"
