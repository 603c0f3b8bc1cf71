"""API keys: required everywhere except health and metrics; from a file or the environment."""

from __future__ import annotations

import pytest

from inference_service.app import create_app
from inference_service.security import ApiKeys
from inference_service.settings import Settings


def test_requests_without_a_valid_key_are_refused(make_client, tabular, rows) -> None:
    with make_client() as client:
        anonymous = {"Authorization": ""}
        for method, path in (("GET", "/v2"), ("GET", "/v2/models/breast-cancer"), ("GET", "/openapi.json")):
            response = client.request(method, path, headers=anonymous)
            assert response.status_code == 401, path
            assert "API key" in response.json()["error"]
            assert response.headers["www-authenticate"].startswith("Bearer")
        wrong = client.post(
            "/v2/models/breast-cancer/infer", json=tabular(rows(1)), headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert client.get(path, headers=anonymous).status_code == 200, path
        for headers in (anonymous, {}):  # {}: the client's API key
            assert client.get("/metrics", headers=headers).status_code == 401


def test_a_repeated_credential_header_is_a_400_whatever_the_copies_say(make_client, tabular, rows) -> None:
    """Two `Authorization` (or `X-API-Key`) headers: a proxy reading the last copy would decide otherwise than
    a service reading the first, so neither decides: 400, even when both copies are the valid key."""
    key = "one-key-0123456789"
    with make_client(api_keys=key) as client:
        good = f"Bearer {key}"
        for headers in (
            [("Authorization", good), ("Authorization", "Bearer nope")],
            [("Authorization", "Bearer nope"), ("Authorization", good)],
            [("Authorization", good), ("Authorization", good)],
            [("Authorization", good), ("X-API-Key", "a"), ("X-API-Key", key)],
        ):
            client.headers.pop("Authorization", None)
            response = client.post("/v2/models/breast-cancer/infer", json=tabular(rows(1)), headers=headers)
            assert response.status_code == 400, headers
            assert "send one credential" in response.json()["error"]
        one = client.post(
            "/v2/models/breast-cancer/infer", json=tabular(rows(1)), headers=[("Authorization", good)]
        )
        assert one.status_code == 200


def test_docs_need_a_key_unless_public_docs_is_set(make_client) -> None:
    anonymous = {"Authorization": ""}
    with make_client() as client:
        for path in ("/docs", "/openapi.json"):
            assert client.get(path, headers=anonymous).status_code == 401, path
    with make_client(public_docs=True) as client:
        for path in ("/docs", "/openapi.json"):
            assert client.get(path, headers=anonymous).status_code == 200, path
        assert client.get("/v2/models/breast-cancer", headers=anonymous).status_code == 401


def test_keys_from_file_and_x_api_key_header(make_client, tmp_path, tabular, rows) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("# team keys\nalpha-key\n\n  beta-key  \n")
    with make_client(api_keys="", api_keys_file=keys) as client:
        for header in (
            {"Authorization": "Bearer alpha-key"},
            {"X-API-Key": "beta-key"},
            {"Authorization": "bearer beta-key"},
        ):
            response = client.post(
                "/v2/models/breast-cancer/infer",
                json=tabular(rows(1)),
                headers={"Authorization": "", **header},
            )
            assert response.status_code == 200, header
        assert client.get("/v2", headers={"Authorization": "Bearer # team keys"}).status_code == 401


def test_auth_on_without_keys_refuses_to_start(model_repository, tmp_path) -> None:
    with pytest.raises(ValueError, match="no API key"):
        create_app(Settings(model_repository=model_repository))
    with pytest.raises(ValueError, match="cannot read"):
        create_app(Settings(model_repository=model_repository, api_keys_file=tmp_path / "missing"))


def test_key_check() -> None:
    keys = ApiKeys([b"one", b"two"])
    assert keys.check(b"two") and keys.check(b"one")
    assert not keys.check(b"tw") and not keys.check(b"") and not keys.check(None)
