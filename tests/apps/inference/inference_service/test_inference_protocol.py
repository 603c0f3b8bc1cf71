"""Protocol conformance: every V2 endpoint, V1 predict, the binary extension, OpenAPI."""

from __future__ import annotations

import json
import struct

import numpy as np
import onnxruntime as ort
import pytest


def test_health_and_server_metadata(make_client) -> None:
    with make_client(models="") as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        meta = client.get("/v2").json()
        assert meta["name"] and meta["version"]
        assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_with_and_without_version(make_client) -> None:
    with make_client(models="breast-cancer:1,minilm-embedding:1") as client:
        plain = client.get("/v2/models/breast-cancer").json()
        versioned = client.get("/v2/models/breast-cancer/versions/1").json()
        assert plain == versioned
        assert plain["name"] == "breast-cancer" and plain["versions"] == ["1"]
        assert plain["platform"] == "onnxruntime_onnx"
        assert plain["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
        assert {o["name"] for o in plain["outputs"]} == {"label", "probabilities"}
        text = client.get("/v2/models/minilm-embedding").json()
        assert text["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert text["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]


def test_model_ready_with_and_without_version(make_client) -> None:
    with make_client() as client:
        for path in ("/v2/models/breast-cancer/ready", "/v2/models/breast-cancer/versions/1/ready"):
            response = client.get(path)
            assert response.status_code == 200 and response.json() == {"name": "breast-cancer", "ready": True}
        assert client.get("/v2/models/breast-cancer/versions/7/ready").status_code == 404


@pytest.mark.parametrize("size", [1, 5])  # one row: the response is encoded without stacking a batch
def test_infer_matches_onnxruntime(make_client, model_repository, tabular, rows, size) -> None:
    batch = rows(size)
    session = ort.InferenceSession(str(model_repository / "breast-cancer/1/model.onnx"))
    labels, probabilities = session.run(None, {"input": np.asarray(batch, dtype=np.float32)})
    with make_client() as client:
        for path in ("/v2/models/breast-cancer/infer", "/v2/models/breast-cancer/versions/1/infer"):
            response = client.post(path, json=tabular(batch, id="req-1"))
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_name"] == "breast-cancer" and body["model_version"] == "1"
            assert body["id"] == "req-1"
            outputs = {o["name"]: o for o in body["outputs"]}
            assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["shape"] == [size]
            assert outputs["label"]["data"] == labels.tolist()
            assert outputs["probabilities"]["datatype"] == "FP32"
            assert outputs["probabilities"]["shape"] == [size, 2]
            np.testing.assert_allclose(outputs["probabilities"]["data"], probabilities.ravel(), rtol=1e-6)


def test_infer_without_content_type_and_with_flat_data(make_client, rows) -> None:
    row = rows(1)[0]
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}]}
    with make_client() as client:
        response = client.post("/v2/models/breast-cancer/infer", content=json.dumps(body).encode())
        assert response.status_code == 200, response.text
        assert "content-type" not in response.request.headers


def test_requested_outputs_only(make_client, tabular, rows) -> None:
    with make_client() as client:
        body = tabular(rows(2), outputs=[{"name": "probabilities"}])
        outputs = client.post("/v2/models/breast-cancer/infer", json=body).json()["outputs"]
        assert [o["name"] for o in outputs] == ["probabilities"]


def test_binary_tensor_extension_in_and_out(make_client, rows) -> None:
    batch = np.asarray(rows(3), dtype=np.float32)
    header = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [3, 30],
                "parameters": {"binary_data_size": batch.nbytes},
            }
        ],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "label"}],
    }
    head = json.dumps(header).encode()
    with make_client() as client:
        json_body = client.post(
            "/v2/models/breast-cancer/infer",
            json={
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 30], "data": batch.tolist()}]
            },
        ).json()
        expected = {o["name"]: o["data"] for o in json_body["outputs"]}
        response = client.post(
            "/v2/models/breast-cancer/infer",
            content=head + batch.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert response.status_code == 200, response.text
        size = int(response.headers["inference-header-content-length"])
        doc = json.loads(response.content[:size])
        outputs = {o["name"]: o for o in doc["outputs"]}
        assert outputs["label"]["data"] == expected["label"]
        blob = response.content[size:]
        assert outputs["probabilities"]["parameters"]["binary_data_size"] == len(blob) == 3 * 2 * 4
        np.testing.assert_array_equal(
            np.frombuffer(blob, dtype="<f4"), np.asarray(expected["probabilities"], "<f4")
        )


def test_binary_bytes_input(make_client, text) -> None:
    texts = [b"first sentence", "zweiter Satz \u00fc".encode()]
    blob = b"".join(struct.pack("<I", len(t)) + t for t in texts)
    header = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(blob)}}
        ]
    }
    head = json.dumps(header).encode()
    with make_client(models="") as client:
        binary = client.post(
            "/v2/models/minilm-embedding/infer",
            content=head + blob,
            headers={"Inference-Header-Content-Length": str(len(head))},
        ).json()
        plain = client.post(
            "/v2/models/minilm-embedding/infer", json=text([t.decode() for t in texts])
        ).json()
        assert binary["outputs"] == plain["outputs"]
        vectors = np.asarray(plain["outputs"][0]["data"], dtype=np.float32).reshape(2, 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)


def test_embedding_similarity_makes_sense(make_client, text) -> None:
    sentences = [
        "A man is playing a guitar.",
        "Someone plays an acoustic guitar.",
        "Stocks fell sharply on Monday.",
    ]
    with make_client(models="") as client:
        data = client.post("/v2/models/minilm-embedding/infer", json=text(sentences)).json()["outputs"][0][
            "data"
        ]
    a, b, c = np.asarray(data, dtype=np.float32).reshape(3, 384)
    assert float(a @ b) > float(a @ c) + 0.2


def test_v1_predict(make_client, rows) -> None:
    batch = rows(2)
    with make_client(models="") as client:
        v2 = client.post(
            "/v2/models/breast-cancer/infer",
            json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 30], "data": batch}]},
        ).json()
        response = client.post("/v1/models/breast-cancer:predict", json={"instances": batch})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        labels = next(o["data"] for o in v2["outputs"] if o["name"] == "label")
        # the class names of the model's metadata, as KServe's V1 classifiers answer
        assert [p["label"] for p in predictions] == [["malignant", "benign"][i] for i in labels]
        classified = client.post(
            "/v2/models/breast-cancer/infer",
            json={
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 30], "data": batch}],
                "outputs": [{"name": "probabilities", "parameters": {"classification": 1}}],
            },
        ).json()["outputs"][0]
        assert classified["datatype"] == "BYTES" and classified["shape"] == [2, 1]
        names = [["malignant", "benign"][i] for i in labels]
        assert [c.split(":")[1:] for c in classified["data"]] == [
            [str(i), n] for i, n in zip(labels, names, strict=True)
        ]
        embedded = client.post("/v1/models/minilm-embedding:predict", json={"instances": ["hello"]}).json()
        assert len(embedded["predictions"]) == 1 and len(embedded["predictions"][0]) == 384
        assert client.get("/v1/models/breast-cancer").json() == {"name": "breast-cancer", "ready": True}


def test_openapi_has_per_model_schemas_from_the_signature(make_client) -> None:
    with make_client(models="breast-cancer:1,minilm-embedding:1") as client:
        doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for path in (
        "/v2/models/breast-cancer/infer",
        "/v2/models/breast-cancer/versions/1/infer",
        "/v1/models/breast-cancer:predict",
        "/v2/models/minilm-embedding/infer",
    ):
        assert path in paths, path
    schema = doc["components"]["schemas"]["breast_cancer_v1_InferenceRequest"]
    tensor = schema["properties"]["inputs"]["items"]["anyOf"][0]
    assert tensor["properties"]["name"]["enum"] == ["input"]
    assert tensor["properties"]["datatype"]["enum"] == ["FP32"]
    assert tensor["properties"]["shape"]["minItems"] == 2
    text_schema = doc["components"]["schemas"]["minilm_embedding_v1_InferenceRequest"]
    assert text_schema["properties"]["inputs"]["items"]["anyOf"][0]["properties"]["datatype"]["enum"] == [
        "BYTES"
    ]
    assert paths["/v2/models/breast-cancer/infer"]["post"]["security"]
    assert "security" not in paths["/v2/health/ready"]["get"]
