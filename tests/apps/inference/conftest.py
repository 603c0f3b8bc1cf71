"""Shared fixtures for the inference tests: the real built models, a real redis-server, a started app."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inference_service.app import create_app
from inference_service.local import RedisProcess
from inference_service.settings import Settings
from model_build.__main__ import RECIPES, build_model

ROOT = Path(__file__).resolve().parents[3]

# No gRPC server unless a test asks for one (INFERENCE_GRPC_PORT, read by apps under TestClient and by the
# service processes tests start): the default port 8081 is one port on a loopback other runs share. Tests
# that serve gRPC run it in a service process: this process may import tritonclient.grpc, whose generated
# modules define the same protobuf messages (package `inference`) as the service's, and one protobuf
# descriptor pool cannot hold both.
os.environ["INFERENCE_GRPC_PORT"] = "0"
API_KEY = "test-key-0123456789"
METRICS_TOKEN = "test-metrics-token-0123456789"  # the scraper's token for /metrics


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model repository, built once per session (build/models is reused when up to date)."""
    shared = ROOT / "build" / "models"
    if all(not build_model_needed(r, shared) for r in RECIPES):
        return shared
    out = tmp_path_factory.mktemp("models")
    for recipe in RECIPES:
        build_model(recipe, out)
    return out


def build_model_needed(recipe: Any, out: Path) -> bool:
    from model_build.__main__ import _fingerprint, _up_to_date

    folder = out / recipe.name / recipe.version
    return not (folder.is_dir() and _up_to_date(folder, _fingerprint(recipe)))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """A private redis-server on a free loopback port for the whole session."""
    server = RedisProcess()
    server.start()
    yield server
    server.close()


ClientFactory = Callable[..., AbstractContextManager[TestClient]]


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/v2/health/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise TimeoutError("the app did not become ready")


@pytest.fixture
def make_client(model_repository: Path) -> ClientFactory:
    """Starts the real app (lifespan included) with settings overrides; yields a ready client."""

    @contextmanager
    def factory(*, wait: bool = True, auth: bool = True, **overrides: Any) -> Iterator[TestClient]:
        values: dict[str, Any] = {
            "model_repository": model_repository,
            "auth_enabled": auth,
            "api_keys": API_KEY,
            "metrics_token": METRICS_TOKEN,
            "access_log": False,
            "models": "breast-cancer:1",  # the embedding model only where a test asks for it (models="")
            **overrides,
        }
        app = create_app(Settings(**values))
        headers = {"Authorization": f"Bearer {API_KEY}"} if auth else {}
        with TestClient(app, headers=headers, raise_server_exceptions=False) as client:
            if wait:
                wait_ready(client)
            yield client

    return factory


def scrape(client: TestClient) -> str:
    """/metrics as the scraper reads it (with its token)."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    return response.text


@pytest.fixture
def read_metrics() -> Callable[[TestClient], str]:
    """read_metrics(client): the /metrics text, read with the scraper's token."""
    return scrape


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The current value of one sample from /metrics (0 when absent)."""
    for line in scrape(client).splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric_name, _, label_text = head.partition("{")
        if metric_name != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
        if all(found.get(k, "").strip('"') == v for k, v in labels.items()):
            return float(value)
    return 0.0


def tabular_request(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [len(rows), 30], "data": rows}],
        **extra,
    }


def text_request(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


def sample_rows(count: int, seed: int = 0) -> list[list[float]]:
    """Real rows from the training data, shifted by seed so different seeds give unseen inputs."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer().data
    return [[float(v) + seed * 1e-3 for v in data[i % len(data)]] for i in range(count)]


# Test modules run with --import-mode=importlib and cannot import this file: the helpers come as fixtures.


@pytest.fixture
def read_metric() -> Callable[..., float]:
    return metric


@pytest.fixture
def tabular() -> Callable[..., dict[str, Any]]:
    return tabular_request


@pytest.fixture
def text() -> Callable[[list[str]], dict[str, Any]]:
    return text_request


@pytest.fixture(scope="session")
def rows() -> Callable[..., list[list[float]]]:
    return sample_rows
