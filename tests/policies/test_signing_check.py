"""policy_check.signing (rule cluster-policies-in-sync): the shipped image signature policy trusts exactly the
key overlays/platform.yaml names, and denies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from policy_check import signing

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "dist" / "cluster-policies"
OVERLAYS = REPO / "overlays"


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "cluster-policies"
    folder.mkdir(parents=True)
    shutil.copy(SHIPPED / signing.POLICY_FILE, folder)
    return folder


def _edit(folder: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = folder / signing.POLICY_FILE
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc))


def _other_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_the_shipped_policy_trusts_the_spec_key() -> None:
    assert signing.problems(OVERLAYS, SHIPPED) == []


def test_another_key_an_extra_key_or_no_deny_is_a_finding(tmp_path: Path) -> None:
    other = _other_key()
    cases: dict[str, Callable[[dict[str, Any]], object]] = {
        "another key": lambda d: d["spec"]["attestors"][0]["cosign"]["key"].update(data=other),
        "an extra key": lambda d: d["spec"]["attestors"].append(
            {"name": "x", "cosign": {"key": {"data": other}}}
        ),
        "audit only": lambda d: d["spec"].update(validationActions=["Audit"]),
    }
    for what, change in cases.items():
        folder = _copy(tmp_path / what.replace(" ", "-"))
        _edit(folder, change)
        found = signing.problems(OVERLAYS, folder)
        assert len(found) == 1, (what, found)
        assert found[0][0] == signing.POLICY_FILE
    (tmp_path / "empty").mkdir()
    assert signing.problems(OVERLAYS, tmp_path / "empty")[0][1].startswith(
        f"{signing.POLICY_FILE} is missing"
    )
