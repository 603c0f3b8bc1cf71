"""`services.<name>.identity` of an overlay: OIDC tokens and the access policy (inference_service.identity).

Absent: the service takes API keys only, each allowed everything (as before identity existed). Present: the
generator writes the issuer, audience and algorithms into the service's settings ConfigMap, the access policy
into the `<version>-identity` ConfigMap, mounts the issuer's JWKS (a ConfigMap key or an ExternalSecret's
Secret) or, for a JWKS served by URL, opens egress to exactly the overlay's CIDRs on 443.

The access policy is validated here with the service's own model (`PolicyDocument`), so a bad policy fails
the synth with its file, line and field rather than the pod at start.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from inference_service.identity.policy import PolicyDocument
from mlplatform.schema.common import DnsLabel, SecretRef, Strict, matching
from mlplatform.schema.errors import FieldPath, FieldProblems, Problem, short
from mlplatform.schema.source import Source

#: Asymmetric JWS algorithms only (what the service accepts: no `none`, no HMAC with a public key).
Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
HttpsUrl = Annotated[
    str, matching(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[^\s]*)?$", "an https:// URL without spaces")
]
#: A ConfigMap key (what Kubernetes accepts as a data key).
ConfigMapKey = Annotated[
    str, matching(r"^[-._a-zA-Z0-9]{1,253}$", "a ConfigMap key: letters, digits, '-', '_', '.'")
]
#: Widest CIDR the JWKS egress may name: a /8 (IPv4) or a /32 (IPv6); wider is "the internet".
WIDEST_PREFIX = {4: 8, 6: 32}
#: Ranges a JWKS egress may never reach: loopback and link-local (the cloud metadata endpoint).
NEVER = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10"))
#: The JWKS file of a `configMap` source with `file`: relative to overlays/.
OVERLAYS_DIR = "overlays"


class JwksConfigMap(Strict):
    """A ConfigMap key holding the JWKS. With `file` (relative to overlays/), the generator renders that
    ConfigMap from the file; without, the platform team provides the ConfigMap in the namespace."""

    name: DnsLabel
    key: ConfigMapKey = "jwks.json"
    file: Annotated[
        str | None,
        matching(r"^[a-z0-9][-a-z0-9_./]*\.json$", "a .json path relative to overlays/ (no '..')"),
    ] = None

    @field_validator("file")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value is not None and ".." in PurePosixPath(value).parts:
            raise ValueError("allowed: a path inside overlays/ (no '..')")
        return value


class JwksEgress(Strict):
    """Where the JWKS URL's host is: its addresses (CIDRs) and the port (443 only)."""

    cidrs: list[str] = Field(min_length=1)
    port: Literal[443] = 443

    @field_validator("cidrs")
    @classmethod
    def _narrow(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                net = ipaddress.ip_network(cidr, strict=True)
            except ValueError as err:
                raise ValueError(f"{cidr!r} is not a CIDR ({err}); allowed: e.g. 203.0.113.0/24") from err
            if net.prefixlen < WIDEST_PREFIX[net.version]:
                raise ValueError(
                    f"{cidr!r} is wider than /{WIDEST_PREFIX[net.version]}; allowed: the issuer's addresses"
                )
            if any(net.overlaps(n) for n in NEVER if n.version == net.version):
                raise ValueError(f"{cidr!r} overlaps loopback or link-local; allowed: the issuer's addresses")
        if len(set(value)) != len(value):
            raise ValueError("allowed: each CIDR once")
        return value


class Jwks(Strict):
    """Exactly one of: a ConfigMap key, an ExternalSecret (remoteKey, property), an https URL with egress."""

    config_map: JwksConfigMap | None = None
    external_secret: SecretRef | None = None
    url: HttpsUrl | None = None
    egress: JwksEgress | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Jwks:
        given = [n for n in ("configMap", "externalSecret", "url") if getattr(self, _snake(n)) is not None]
        if len(given) != 1:
            what = ", ".join(given) if given else "none"
            raise FieldProblems(
                [((), f"got {what}; allowed: exactly one of configMap, externalSecret, url (with egress)")]
            )
        if (self.url is None) != (self.egress is None):
            problem = "egress is required with url" if self.url else "egress goes with url only"
            raise FieldProblems([(("egress",), f"{problem}; allowed: url with egress: {{cidrs, port: 443}}")])
        return self


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _default_algorithms() -> list[Algorithm]:
    return ["RS256", "ES256"]


class Identity(Strict):
    """OIDC issuer, audience, allowed algorithms, the JWKS source and the access policy."""

    issuer: HttpsUrl
    audience: str = Field(min_length=1)
    algorithms: list[Algorithm] = Field(default_factory=_default_algorithms, min_length=1)
    jwks: Jwks
    access_policy: dict[str, Any]

    @model_validator(mode="after")
    def _policy(self) -> Identity:
        try:
            PolicyDocument.model_validate(self.access_policy)
        except ValidationError as exc:
            problems: list[tuple[FieldPath, str]] = []
            for err in exc.errors():
                loc: FieldPath = ("accessPolicy", *(p for p in err["loc"] if isinstance(p, str | int)))
                msg = str(err["msg"]).removeprefix("Value error, ")
                msg = msg.replace("Input should be ", "allowed: ")
                problems.append((loc, f"got {short(err['input'])}; {msg}"))
            raise FieldProblems(problems) from None
        return self

    @property
    def policy_json(self) -> str:
        """The access policy as canonical JSON (sorted keys, compact): byte-identical synths."""
        doc = PolicyDocument.model_validate(self.access_policy).model_dump(mode="json")
        return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def jwks_file(repo_root: Path, ref: JwksConfigMap) -> str:
    """The JWKS file a `configMap` source names, as canonical JSON. Raises ValueError (what is wrong)."""
    assert ref.file is not None
    path = repo_root / OVERLAYS_DIR / ref.file
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"cannot read {OVERLAYS_DIR}/{ref.file}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{OVERLAYS_DIR}/{ref.file} is not JSON: {err}") from err
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) and "kty" in k for k in keys):
        raise ValueError(f'{OVERLAYS_DIR}/{ref.file}: allowed: a JWKS, {{"keys": [{{"kty": ...}}, ...]}}')
    private = [str(k.get("kid", i)) for i, k in enumerate(keys) if "d" in k or k.get("kty") == "oct"]
    if private:
        raise ValueError(
            f"{OVERLAYS_DIR}/{ref.file}: keys {', '.join(private)} are private or symmetric; "
            "allowed: the issuer's public keys only"
        )
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def services_jwks_files(
    repo_root: Path, services: dict[str, Any], source: Source
) -> tuple[dict[str, str], list[Problem]]:
    """overlays/-relative file -> canonical JWKS, for every service's `jwks.configMap.file`; and problems."""
    files: dict[str, str] = {}
    problems: list[Problem] = []
    seen: dict[str, tuple[str, JwksConfigMap]] = {}
    for name, service in sorted(services.items()):
        identity: Identity | None = getattr(service, "identity", None)
        ref = identity.jwks.config_map if identity is not None else None
        if ref is None:
            continue
        first, other = seen.setdefault(ref.name, (name, ref))
        if other != ref:
            where = ("services", name, "identity", "jwks", "configMap")
            message = f"ConfigMap {ref.name} is also services.{first}'s JWKS with another key or file"
            allowed = "allowed: the same key and file, or another name"
            problems.append(source.problem(where, f"{message}; {allowed}"))
        if ref.file is None:
            continue
        try:
            files[ref.file] = jwks_file(repo_root, ref)
        except ValueError as err:
            at = ("services", name, "identity", "jwks", "configMap", "file")
            problems.append(source.problem(at, f"got {short(ref.file)}; {err}"))
    return files, problems
