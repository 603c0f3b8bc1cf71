"""OIDC tokens and API keys on the gRPC endpoint (tritonclient.grpc against the real service process): the
`authorization` metadata goes through the same gate as REST's header, with the same access policy, the same
refusal messages and one audit line per call naming the RPC."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

TABULAR_SCOPE = {"scope": "openid inference:tabular"}


DATA = np.random.default_rng(5).normal(size=(2, 30)).astype(np.float32)
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 30], "data": DATA.ravel().tolist()}]}


def rows() -> triton.InferInput:
    tensor = triton.InferInput("input", [2, 30], "FP32")
    tensor.set_data_from_numpy(DATA)
    return tensor


def test_tokens_and_keys_over_grpc_match_rest_and_are_audited(grpc_service, issuer) -> None:
    service, url = grpc_service
    token = issuer.token(**TABULAR_SCOPE)
    bearer = {"authorization": f"Bearer {token}"}
    with triton.InferenceServerClient(url=url) as client:
        result = client.infer("breast-cancer", [rows()], headers={**bearer, "x-request-id": "grpc-token-1"})
        rest = service.client.post("/v2/models/breast-cancer/infer", json=BODY, headers=bearer).json()
        labels = next(o for o in rest["outputs"] if o["name"] == "label")["data"]
        assert result.as_numpy("label").tolist() == labels
        line = service.audit_line("grpc-token-1")
        assert (line["principal"], line["subject"], line["decision"], line["status"]) == (
            "token",
            "alice",
            "allow",
            200,
        )
        assert (
            line["rpc"] == "/inference.GRPCInferenceService/ModelInfer" and line["model"] == "breast-cancer"
        )
        assert token not in service.audit.read_text()

        meta = client.get_model_metadata("breast-cancer", headers=bearer, as_json=True)
        assert meta["name"] == "breast-cancer"

        refusals = [  # (headers, model, status)
            ({"authorization": f"Bearer {token}"}, "minilm-embedding", "PERMISSION_DENIED"),
            ({"authorization": f"Bearer {token[:-4]}AAAA"}, "breast-cancer", "UNAUTHENTICATED"),
            (
                {"authorization": f"Bearer {issuer.token(scope='openid')}"},
                "breast-cancer",
                "PERMISSION_DENIED",
            ),
            ({}, "breast-cancer", "UNAUTHENTICATED"),
            ({"authorization": "Bearer ci-key-0123456789"}, "minilm-embedding", "PERMISSION_DENIED"),
        ]
        for headers, model, status in refusals:
            with pytest.raises(InferenceServerException) as raised:
                client.infer(model, [rows()], headers={**headers, "x-request-id": f"grpc-{model}-{status}"})
            assert raised.value.status() == f"StatusCode.{status}"
            path = f"/v2/models/{model}/infer"
            rest = service.client.post(path, json=BODY, headers=headers)
            assert raised.value.message() == rest.json()["error"]
            line = service.audit_line(f"grpc-{model}-{status}")
            assert line["decision"] == "deny" and line["rpc"].endswith("/ModelInfer")

        key = {"authorization": "Bearer ci-key-0123456789"}
        assert client.infer("breast-cancer", [rows()], headers=key).as_numpy("label").tolist() == labels
