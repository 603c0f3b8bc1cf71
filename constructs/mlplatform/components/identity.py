"""A service's identity objects (overlay `identity`, schema/identity.py): settings, ConfigMaps, JWKS, mounts.

- Settings (the envFrom ConfigMap): INFERENCE_OIDC_ISSUER, _AUDIENCE, _ALGORITHMS, _JWKS_FILE or _JWKS_URL,
  INFERENCE_ACCESS_POLICY_FILE and INFERENCE_AUDIT_LOG (stderr: apart from the access log on stdout).
- `<version>-identity`: a ConfigMap with `access-policy.json` (canonical JSON). Its sha256 is a pod-template
  annotation: the policy is read at start, so a changed policy rolls the pods.
- The JWKS: the overlay's ConfigMap key (rendered from a file under overlays/ where it names one) or the
  Secret an ExternalSecret fills, as `jwks/jwks.json` (0440). Kubelet updates it in place; the service
  re-reads it on an unknown kid.

Both files are in one read-only projected volume at /etc/inference/identity: one mount, so no mount point has
to be made inside another read-only volume. A JWKS by URL mounts nothing; its egress is `network.py`'s.
"""

from __future__ import annotations

import hashlib

import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import Meta
from mlplatform.components.secrets import external_secret
from mlplatform.schema import Environment
from mlplatform.schema.identity import Identity

IDENTITY_DIR = "/etc/inference/identity"
POLICY_KEY = "access-policy.json"
JWKS_PATH = "jwks/jwks.json"
VOLUME = "identity"
FILE_MODE = 0o440
#: Pod-template annotation: the access policy's sha256 (a change rolls the pods).
POLICY_HASH = "mlplatform.io/access-policy-sha256"
AUDIT_LOG = "stderr"
#: Every setting `settings` may write (a job worker, which serves no callers, is given none of them).
SETTINGS_KEYS = (
    "INFERENCE_OIDC_ISSUER",
    "INFERENCE_OIDC_AUDIENCE",
    "INFERENCE_OIDC_ALGORITHMS",
    "INFERENCE_OIDC_JWKS_FILE",
    "INFERENCE_OIDC_JWKS_URL",
    "INFERENCE_ACCESS_POLICY_FILE",
    "INFERENCE_AUDIT_LOG",
)


def settings(identity: Identity) -> dict[str, str]:
    """The INFERENCE_* identity settings (apps/inference/inference_service/settings.py)."""
    data = {
        "INFERENCE_OIDC_ISSUER": identity.issuer,
        "INFERENCE_OIDC_AUDIENCE": identity.audience,
        "INFERENCE_OIDC_ALGORITHMS": ",".join(identity.algorithms),
        "INFERENCE_ACCESS_POLICY_FILE": f"{IDENTITY_DIR}/{POLICY_KEY}",
        "INFERENCE_AUDIT_LOG": AUDIT_LOG,
    }
    if identity.jwks.url is not None:
        data["INFERENCE_OIDC_JWKS_URL"] = identity.jwks.url
    else:
        data["INFERENCE_OIDC_JWKS_FILE"] = f"{IDENTITY_DIR}/{JWKS_PATH}"
    return data


def policy_hash(identity: Identity) -> dict[str, str]:
    """The pod-template annotation that rolls the pods when the access policy changes."""
    return {POLICY_HASH: hashlib.sha256(identity.policy_json.encode()).hexdigest()}


def version_config(scope: Construct, *, meta: Meta, version: names.Version, identity: Identity) -> None:
    """The `<version>-identity` ConfigMap (access-policy.json)."""
    data = {POLICY_KEY: identity.policy_json}
    kplus.ConfigMap(scope, f"{version.track}-identity", metadata=meta.api(version.identity), data=data)


def jwks_source(scope: Construct, *, meta: Meta, env: Environment, service: str, identity: Identity) -> None:
    """Once per service: the JWKS ConfigMap (from its file under overlays/) or its ExternalSecret."""
    jwks = identity.jwks
    if jwks.config_map is not None and jwks.config_map.file is not None:
        if service != _first_naming(env, jwks.config_map.name):
            return  # services of one issuer share its JWKS ConfigMap: rendered once, with the first
        data = {jwks.config_map.key: env.files[jwks.config_map.file]}
        kplus.ConfigMap(scope, "oidc-jwks", metadata=meta.api(jwks.config_map.name), data=data)
    elif jwks.external_secret is not None:
        name = names.ServiceNames(service).oidc_jwks
        store = env.overlay.secret_store
        ref, key = jwks.external_secret, "jwks.json"
        external_secret(scope, "oidc-jwks", meta=meta, name=name, store=store, ref=ref, key=key)


def _first_naming(env: Environment, config_map: str) -> str:
    """The first service (by name) whose JWKS is the ConfigMap `config_map`."""
    return min(
        name
        for name, overlay in env.overlay.services.items()
        if overlay.identity is not None
        and overlay.identity.jwks.config_map is not None
        and overlay.identity.jwks.config_map.name == config_map
    )


def volume(*, service: str, version: names.Version, identity: Identity) -> k8s.Volume:
    """One read-only projected volume: access-policy.json and, from a ConfigMap or Secret, jwks/jwks.json."""
    sources = [
        k8s.VolumeProjection(
            config_map=k8s.ConfigMapProjection(
                name=version.identity, items=[k8s.KeyToPath(key=POLICY_KEY, path=POLICY_KEY)]
            )
        )
    ]
    jwks = identity.jwks
    if jwks.config_map is not None:
        item = k8s.KeyToPath(key=jwks.config_map.key, path=JWKS_PATH, mode=FILE_MODE)
        projection = k8s.ConfigMapProjection(name=jwks.config_map.name, items=[item])
        sources.append(k8s.VolumeProjection(config_map=projection))
    elif jwks.external_secret is not None:
        item = k8s.KeyToPath(key="jwks.json", path=JWKS_PATH, mode=FILE_MODE)
        secret = k8s.SecretProjection(name=names.ServiceNames(service).oidc_jwks, items=[item])
        sources.append(k8s.VolumeProjection(secret=secret))
    projected = k8s.ProjectedVolumeSource(default_mode=FILE_MODE, sources=sources)
    return k8s.Volume(name=VOLUME, projected=projected)


MOUNT = k8s.VolumeMount(name=VOLUME, mount_path=IDENTITY_DIR, read_only=True)
