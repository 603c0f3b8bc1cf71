"""`imageSigning` of platform.yaml: the cosign public key that signs every image the platform runs.

The key is a PEM file under overlays/ (its public half only: the private half stays in the signer's secret
store). The synth renders it into dist/cluster-policies/verify-image-signatures.yaml, the
ImageValidatingPolicy that admits, in the managed namespaces, only images that key signed.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import field_validator

from mlplatform.schema.common import Strict, matching

OVERLAYS_DIR = "overlays"
#: The key types cosign signs with (`cosign generate-key-pair`: ECDSA P-256; KMS keys: also RSA, Ed25519).
KEY_TYPES = (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)


class ImageSigning(Strict):
    """Who signs the images: `publicKey`, a PEM file relative to overlays/ (`cosign public-key --key REF`)."""

    public_key: Annotated[
        str, matching(r"^[a-z0-9][-a-z0-9_./]*\.pub$", "a .pub path relative to overlays/ (no '..')")
    ]

    @field_validator("public_key")
    @classmethod
    def _inside(cls, value: str) -> str:
        if ".." in PurePosixPath(value).parts:
            raise ValueError("allowed: a path inside overlays/ (no '..')")
        return value


def public_key_pem(repo_root: Path, relative: str) -> str:
    """The public key in overlays/`relative`, as canonical PEM. Raises ValueError (what is wrong)."""
    shown = f"{OVERLAYS_DIR}/{relative}"
    try:
        data = (repo_root / OVERLAYS_DIR / relative).read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {shown}: {err.strerror}") from err
    if b"PRIVATE KEY" in data:
        raise ValueError(f"{shown} holds a private key; allowed: the public half only (cosign public-key)")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ValueError(f"{shown} is not a PEM public key; allowed: cosign public-key's output") from None
    if not isinstance(key, KEY_TYPES):
        raise ValueError(f"{shown}: a {type(key).__name__}; allowed: an ECDSA, RSA or Ed25519 public key")
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")
