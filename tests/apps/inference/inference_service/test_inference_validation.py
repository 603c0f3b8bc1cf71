"""Bad requests get a 4xx with a message saying what was expected, never a stack trace."""

from __future__ import annotations

import json

import pytest

INFER = "/v2/models/breast-cancer/infer"


def _input(**overrides):
    item = {"name": "input", "datatype": "FP32", "shape": [1, 30], "data": [0.5] * 30}
    item.update(overrides)
    return {"inputs": [item]}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (_input(shape=[1, 29], data=[0.5] * 29), 400, "[-1, 30]"),
        (_input(shape=[30]), 400, "[-1, 30]"),
        (_input(datatype="FP64"), 400, "FP32"),
        (_input(data=[0.5] * 29), 400, "needs 30 FP32"),
        (_input(data=["a"] * 30), 400, "kind"),
        (_input(data=[True] * 30), 400, "kind"),
        (_input(name="features"), 400, "expects ['input']"),
        ({"inputs": []}, 400, "non-empty"),
        ({"nothing": 1}, 400, "`inputs`"),
        (_input(shape=[0, 30], data=[]), 400, "at least one row"),
        (_input(shape=[1, -30]), 400, "[-1, 30]"),
        ({"inputs": [_input()["inputs"][0], _input()["inputs"][0]]}, 400, "twice"),
        ({**_input(), "outputs": [{"name": "nope"}]}, 400, "unknown output"),
    ],
)
def test_invalid_tensor_requests(make_client, body, status, needle) -> None:
    with make_client() as client:
        response = client.post(INFER, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error
    assert "Traceback" not in response.text


def test_invalid_json_and_nan(make_client) -> None:
    with make_client() as client:
        bad = client.post(INFER, content=b'{"inputs": [')
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
        nan_literal = client.post(INFER, content=json.dumps(_input()).replace("0.5", "NaN", 1).encode())
        assert nan_literal.status_code == 400
        # NaN can arrive through the binary extension: refused for this model.
        import numpy as np

        values = np.full(30, np.nan, dtype=np.float32)
        head = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": [1, 30],
                        "parameters": {"binary_data_size": 120},
                    }
                ]
            }
        ).encode()
        response = client.post(
            INFER,
            content=head + values.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert response.status_code == 400 and "NaN" in response.json()["error"]
        short = client.post(
            INFER,
            content=head + values.tobytes()[:100],
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert short.status_code == 400 and "binary" in short.json()["error"]
        liar = client.post(INFER, content=head, headers={"Inference-Header-Content-Length": "99999"})
        assert liar.status_code == 400


def test_unknown_model_and_version(make_client) -> None:
    with make_client() as client:
        missing = client.post("/v2/models/nope/infer", json=_input())
        assert missing.status_code == 404 and "breast-cancer" in missing.json()["error"]
        wrong_version = client.post("/v2/models/breast-cancer/versions/2/infer", json=_input())
        assert wrong_version.status_code == 404 and "'1'" in wrong_version.json()["error"]
        assert client.get("/v2/models/nope").status_code == 404
        assert client.get("/v2/models/nope/ready").status_code == 404
        assert client.get("/no/such/route").json() == {"error": "Not Found"}


def test_text_model_validation(make_client) -> None:
    with make_client(models="") as client:
        numbers = client.post(
            "/v2/models/minilm-embedding/infer",
            json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [1]}]},
        )
        assert numbers.status_code == 400 and "string" in numbers.json()["error"]
        bad_utf8 = b"\xff\xfe"
        head = json.dumps(
            {
                "inputs": [
                    {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}
                ]
            }
        ).encode()
        response = client.post(
            "/v2/models/minilm-embedding/infer",
            content=head + len(bad_utf8).to_bytes(4, "little") + bad_utf8,
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert response.status_code == 400 and "UTF-8" in response.json()["error"]
        v1 = client.post("/v1/models/minilm-embedding:predict", json={"instances": [3]})
        assert v1.status_code == 400
        v1_tabular = client.post("/v1/models/breast-cancer:predict", json={"instances": [[1.0] * 3]})
        assert v1_tabular.status_code == 400 and "[-1, 30]" in v1_tabular.json()["error"]


def test_body_size_limit(make_client) -> None:
    with make_client(max_body_bytes=2048) as client:
        big = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [20, 30], "data": [0.5] * 600}]}
        response = client.post(INFER, json=big)
        assert response.status_code == 413 and "2048" in response.json()["error"]

        def chunks():
            yield json.dumps(big).encode()

        streamed = client.post(INFER, content=chunks())  # chunked: no Content-Length to trust
        assert streamed.status_code == 413
        assert client.post(INFER, json=_input()).status_code == 200


def _nested(value: str, depth: int) -> str:
    """The JSON text of `value` inside `depth` lists (json.dumps itself would recurse that deep)."""
    return "[" * depth + value + "]" * depth


def test_deeply_nested_client_input_is_a_400_not_a_crash(make_client) -> None:
    """Client JSON nested about 1,000 deep (orjson parses up to 1,024): refused by the tensor's rank, with
    no recursion over client input; nesting that matches the shape is still accepted."""
    with make_client(models="") as client:
        text_input = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": "@"}]}
        for path, body, deep in (
            ("/v2/models/minilm-embedding/infer", text_input, _nested('"a"', 1000)),
            ("/v1/models/minilm-embedding:predict", {"instances": "@"}, _nested('"a"', 1000)),
            ("/v1/models/breast-cancer:predict", {"instances": "@"}, _nested("0.5", 1000)),
            (INFER, _input(data="@"), _nested("0.5", 1000)),
        ):
            content = json.dumps(body).replace('"@"', deep)
            response = client.post(path, content=content.encode())
            assert response.status_code == 400, (path, response.text)
            assert "Traceback" not in response.text
        flat = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}]}
        assert client.post("/v2/models/minilm-embedding/infer", json=flat).status_code == 200
        nested_rows = [[0.5] * 30, [0.25] * 30]  # nesting that matches the shape [2, 30]
        assert client.post(INFER, json=_input(shape=[2, 30], data=nested_rows)).status_code == 200
        v1_rows = client.post("/v1/models/breast-cancer:predict", json={"instances": nested_rows})
        assert v1_rows.status_code == 200
        too_deep = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": [["a"], ["b"]]}]}
        response = client.post("/v2/models/minilm-embedding/infer", json=too_deep)
        assert response.status_code == 400 and "nested deeper" in response.json()["error"]
