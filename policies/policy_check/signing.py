"""The image signature policy of dist/cluster-policies/ trusts exactly the key overlays/platform.yaml names.

Read independently of the generator (mlplatform.signing_policy): platform.yaml's `imageSigning.publicKey` with
plain YAML, the key file with `cryptography`, and the shipped ImageValidatingPolicy's cosign attestors; the
keys are compared as keys (their DER encoding), not as text. A policy that trusts another key, or another key
as well, or does not deny, is a finding of rule `cluster-policies-in-sync`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization

POLICY_FILE = "verify-image-signatures.yaml"
PLATFORM = "platform.yaml"


def _der(pem: str | bytes) -> bytes:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _same_key(pem: str, wanted: bytes) -> bool:
    try:
        return _der(pem) == wanted
    except ValueError:
        return False


def problems(overlays: Path, shipped: Path) -> list[tuple[str, str]]:
    """(file, problem) for the shipped policy against the key overlays/platform.yaml names (none if it trusts
    exactly that key and denies)."""
    try:
        platform = yaml.safe_load((overlays / PLATFORM).read_text(encoding="utf-8")) or {}
    except OSError as err:
        return [(f"overlays/{PLATFORM}", f"cannot read overlays/{PLATFORM}: {err.strerror}")]
    relative = ((platform.get("imageSigning") or {}).get("publicKey")) or ""
    if not relative:
        return [
            (f"overlays/{PLATFORM}", "names no imageSigning.publicKey; the clusters would verify nothing")
        ]
    path = shipped / POLICY_FILE
    if not path.is_file():
        return [(POLICY_FILE, f"{POLICY_FILE} is missing from dist/cluster-policies. Fix: run make synth")]
    try:
        wanted = _der((overlays / relative).read_bytes())
    except (OSError, ValueError) as err:
        return [
            (f"overlays/{PLATFORM}", f"overlays/{relative} (imageSigning.publicKey) is no public key: {err}")
        ]
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    spec = doc.get("spec") or {}
    found: list[tuple[str, str]] = []
    keys = [((a.get("cosign") or {}).get("key") or {}).get("data") for a in spec.get("attestors") or []]
    if not keys or not all(isinstance(k, str) and _same_key(k, wanted) for k in keys):
        msg = f"every attestor must be a cosign key, the one overlays/{relative} holds. Fix: run make synth"
        found.append((POLICY_FILE, msg))
    if spec.get("validationActions") != ["Deny"]:
        found.append((POLICY_FILE, f"validationActions is {spec.get('validationActions')}; allowed: [Deny]"))
    return found
