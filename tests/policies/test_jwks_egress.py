"""The OIDC JWKS egress (overlay `identity.jwks.url`): declared from the overlay by policy_check.declared (not
the generator), rendered as `allow-<service>-to-oidc-jwks` with exactly the overlay's CIDRs on 443, and held
to those addresses by the network rules (real conftest): a wider range, another CIDR or a missing policy is a
violation, and no-allow-all never excuses 0.0.0.0/0 for it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.schema.catalog import CATALOG_FILE
from mlplatform.synth import synthesize
from policy_check import declared

POLICY = "networkpolicy-allow-inference-to-oidc-jwks.yaml"
CIDRS = ["198.51.100.0/24", "203.0.113.16/28"]
REPO = Path(__file__).resolve().parents[2]
NETWORK_RULES = ("network-isolation:", "no-allow-all:")


@pytest.fixture(scope="module")
def by_url(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A spec whose stage service takes tokens with its JWKS by URL (prod: a ConfigMap, dev: no identity)."""
    root = tmp_path_factory.mktemp("jwks-url")
    shutil.copytree(REPO / "overlays", root / "overlays")
    (root / Path(CATALOG_FILE).parent).mkdir(parents=True)
    shutil.copy2(REPO / CATALOG_FILE, root / CATALOG_FILE)
    stage = root / "overlays" / "stage.yaml"
    data = yaml.safe_load(stage.read_text())
    data["services"]["inference"]["identity"] = {
        "issuer": "https://login.example.com",
        "audience": "inference",
        "jwks": {"url": "https://login.example.com/jwks", "egress": {"cidrs": CIDRS}},
        "accessPolicy": {"api_keys": {"*": {"models": ["*"], "actions": ["infer"]}}},
    }
    stage.write_text(yaml.safe_dump(data, sort_keys=False))
    out = root / "dist"
    synthesize(root, out=out)
    return root, out


def test_declared_from_the_overlay_only_where_the_jwks_is_a_url(by_url: tuple[Path, Path]) -> None:
    root, _ = by_url
    specs = declared.for_environments(root / "overlays", ["dev", "prod", "stage"])
    assert ("inference", "inference-oidc-jwks") in [
        (c["from"], c["to"]) for c in specs["stage"]["connections"]
    ]
    assert specs["stage"]["external"]["inference-oidc-jwks"] == {
        "ports": [{"port": 443, "protocol": "TCP", "name": ""}],
        "cidrs": CIDRS,
    }
    for env in ("dev", "prod"):
        assert not [c for c in specs[env]["connections"] if c["to"].endswith("-oidc-jwks")]


def test_rendered_with_exactly_the_cidrs_and_the_gate_passes(
    by_url: tuple[Path, Path], tools: Any, tmp_path: Path, check_env: Any
) -> None:
    root, out = by_url
    policy = yaml.safe_load((out / "stage" / POLICY).read_text())
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "inference"}}
    peers = [p for rule in policy["spec"]["egress"] for p in rule["to"]]
    assert peers == [{"ipBlock": {"cidr": c}} for c in CIDRS]
    assert all(rule["ports"] == [{"port": 443, "protocol": "TCP"}] for rule in policy["spec"]["egress"])
    assert not (out / "prod" / POLICY).exists()
    config = yaml.safe_load((out / "stage" / "configmap-inference-config.yaml").read_text())["data"]
    assert config["INFERENCE_OIDC_JWKS_URL"] == "https://login.example.com/jwks"
    assert "INFERENCE_OIDC_JWKS_FILE" not in config
    network = [f for f in check_env(root, out, tools, "stage", tmp_path) if f.startswith(NETWORK_RULES)]
    assert network == []


def _broken(out: Path, tmp_path: Path, change: Any) -> Path:
    broken = tmp_path / "dist"
    shutil.copytree(out, broken)
    path = broken / "stage" / POLICY
    policy = yaml.safe_load(path.read_text())
    change(policy)
    path.write_text(yaml.safe_dump(policy))
    return broken


def test_another_cidr_is_a_violation(
    by_url: tuple[Path, Path], tools: Any, tmp_path: Path, check_env: Any
) -> None:
    root, out = by_url

    def other(policy: dict[str, Any]) -> None:
        policy["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] = "192.0.2.0/24"

    found = check_env(root, _broken(out, tmp_path, other), tools, "stage", tmp_path)
    assert any(f.startswith("network-isolation:") and "192.0.2.0/24" in f for f in found), found


def test_the_whole_internet_is_refused(
    by_url: tuple[Path, Path], tools: Any, tmp_path: Path, check_env: Any
) -> None:
    root, out = by_url
    wide = {
        "cidr": "0.0.0.0/0",
        "except": ["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"],
    }

    def internet(policy: dict[str, Any]) -> None:
        policy["spec"]["egress"][0]["to"][0]["ipBlock"] = wide

    found = check_env(root, _broken(out, tmp_path, internet), tools, "stage", tmp_path)
    assert any(f.startswith("no-allow-all:") and "matches everything" in f for f in found), found


def test_a_missing_jwks_egress_is_a_violation(
    by_url: tuple[Path, Path], tools: Any, tmp_path: Path, check_env: Any
) -> None:
    root, out = by_url
    broken = tmp_path / "dist"
    shutil.copytree(out, broken)
    (broken / "stage" / POLICY).unlink()
    found = check_env(root, broken, tools, "stage", tmp_path)
    network = [f for f in found if f.startswith(NETWORK_RULES)]
    assert network and all("inference -> inference-oidc-jwks" in f and "is not allowed" in f for f in network)
