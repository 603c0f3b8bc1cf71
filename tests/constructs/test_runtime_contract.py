"""The generator's runtime contract (constructs/mlplatform/runtime_contract.py) and the inference service's
settings (apps/inference/inference_service/settings.py) agree, and the contract is the generator's one place
for its values.

The service's side is read from its own pydantic-settings class (its fields, their defaults and its
env_prefix), never from the generator. Only this test imports both: the generator never imports the service.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

from inference_service.settings import Settings
from mlplatform import runtime_contract
from mlplatform.runtime_contract import Setting

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATOR = REPO_ROOT / "constructs" / "mlplatform"
CONTRACT = GENERATOR / "runtime_contract.py"


def service_setting_names() -> set[str]:
    """INFERENCE_<FIELD> for every field of the service's settings, as pydantic-settings reads them."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{field}".upper() for field in Settings.model_fields}


def unread(names: Iterable[str]) -> list[str]:
    """The names the service does not read."""
    read = service_setting_names()
    return sorted(name for name in names if name not in read)


def default(field: str) -> object:
    return Settings.model_fields[field].default


def test_the_contract_uses_the_services_prefix() -> None:
    assert Settings.model_config.get("env_prefix") == runtime_contract.PREFIX


def test_every_setting_the_generator_writes_is_one_the_service_reads() -> None:
    names = runtime_contract.setting_names()
    assert len(names) == len(set(names)), "a setting named twice"
    assert len(names) >= 30
    assert unread(names) == []


def test_a_name_the_service_does_not_read_is_caught() -> None:
    """The check above fails on a misspelt or removed setting (INFERENCE_MODEL_REPO is not a field)."""
    assert unread([Setting.MODELS, "INFERENCE_MODEL_REPO", "INFERENCE_REDIS_PASSWORD"]) == [
        "INFERENCE_MODEL_REPO",
        "INFERENCE_REDIS_PASSWORD",
    ]


def test_each_setting_constant_is_named_after_its_field() -> None:
    """`Setting.MAX_BATCH_SIZE` is INFERENCE_MAX_BATCH_SIZE: a reader can trust the constant's name."""
    for key, value in vars(Setting).items():
        if key.isupper():
            assert value == f"{runtime_contract.PREFIX}{key}"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (runtime_contract.INFERENCE_PORT, "port"),
        (runtime_contract.GRPC_PORT, "grpc_port"),
        (Path(runtime_contract.MODEL_DIR), "model_repository"),
        (runtime_contract.DRAIN_SECONDS, "shutdown_drain_seconds"),
        (runtime_contract.AUDIT_LOG, "audit_log"),
    ],
)
def test_the_contract_values_are_the_services_defaults(value: object, field: str) -> None:
    """Ports the manifests expose but never set, the model repository, the drain the grace period covers."""
    assert value == default(field)


def test_the_connection_limits_written_are_the_services_defaults() -> None:
    """The manifests write them out so a ConfigMap shows what a pod enforces; they must not change it."""
    for name, value in runtime_contract.CONNECTION_LIMITS.items():
        field = name.removeprefix(runtime_contract.PREFIX).lower()
        assert float(value) == default(field), name


def test_identity_and_quota_settings_are_settings() -> None:
    groups = (*runtime_contract.IDENTITY_SETTINGS, *runtime_contract.QUOTA_SETTINGS)
    assert set(groups) <= set(runtime_contract.setting_names())


def _literals_outside_the_contract() -> dict[object, list[str]]:
    """Each contract value (setting name, port, mount path) written as a literal in the generator outside
    the contract module: where, by file and line."""
    values: set[object] = set(runtime_contract.setting_names())
    values |= {runtime_contract.INFERENCE_PORT, runtime_contract.GRPC_PORT, runtime_contract.REDIS_PORT}
    values |= {
        getattr(runtime_contract, key)
        for key in vars(runtime_contract)
        if key.endswith("_DIR") and key.isupper()
    }
    found: dict[object, list[str]] = {}
    for path in sorted(GENERATOR.rglob("*.py")):
        if path == CONTRACT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and type(node.value) in (str, int) and node.value in values:
                found.setdefault(node.value, []).append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return found


def test_the_generator_writes_each_contract_value_in_the_contract_only() -> None:
    assert _literals_outside_the_contract() == {}
