"""A service's identity objects (overlay `identity`, schema/identity.py): ConfigMaps, JWKS, mounts.

- Settings (the envFrom ConfigMap, `settings.identity_settings`): INFERENCE_OIDC_ISSUER, _AUDIENCE,
  _ALGORITHMS, _JWKS_FILE or _JWKS_URL, INFERENCE_ACCESS_POLICY_FILE and INFERENCE_AUDIT_LOG.
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
from typing import TYPE_CHECKING

import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import Meta
from mlplatform.components.secrets import external_secret
from mlplatform.runtime_contract import ACCESS_POLICY_FILE, IDENTITY_DIR, JWKS_FILE, JWKS_KEY

if TYPE_CHECKING:
    from mlplatform.schema.identity import Identity

VOLUME = "identity"
FILE_MODE = 0o440
#: Pod-template annotation: the access policy's sha256 (a change rolls the pods).
POLICY_HASH = "mlplatform.io/access-policy-sha256"


def policy_hash(identity: Identity) -> dict[str, str]:
    """The pod-template annotation that rolls the pods when the access policy changes."""
    return {POLICY_HASH: hashlib.sha256(identity.policy_json.encode()).hexdigest()}


def version_config(scope: Construct, *, meta: Meta, version: names.Version, identity: Identity) -> None:
    """The `<version>-identity` ConfigMap (access-policy.json)."""
    data = {ACCESS_POLICY_FILE: identity.policy_json}
    kplus.ConfigMap(scope, f"{version.track}-identity", metadata=meta.api(version.identity), data=data)


def jwks_source(
    scope: Construct,
    *,
    meta: Meta,
    service: str,
    identity: Identity,
    secret_store: str,
    jwks_file: str | None,
) -> None:
    """Once per service: the JWKS ConfigMap where this service renders it (`jwks_file`: its file's content
    under overlays/; services of one issuer share the ConfigMap, rendered once), or its ExternalSecret."""
    jwks = identity.jwks
    if jwks.config_map is not None and jwks.config_map.file is not None:
        if jwks_file is None:
            return
        data = {jwks.config_map.key: jwks_file}
        kplus.ConfigMap(scope, "oidc-jwks", metadata=meta.api(jwks.config_map.name), data=data)
    elif jwks.external_secret is not None:
        name = names.ServiceNames(service).oidc_jwks
        ref = jwks.external_secret
        external_secret(scope, "oidc-jwks", meta=meta, name=name, store=secret_store, ref=ref, key=JWKS_KEY)


def volume(*, service: str, version: names.Version, identity: Identity) -> k8s.Volume:
    """One read-only projected volume: access-policy.json and, from a ConfigMap or Secret, jwks/jwks.json."""
    sources = [
        k8s.VolumeProjection(
            config_map=k8s.ConfigMapProjection(
                name=version.identity, items=[k8s.KeyToPath(key=ACCESS_POLICY_FILE, path=ACCESS_POLICY_FILE)]
            )
        )
    ]
    jwks = identity.jwks
    if jwks.config_map is not None:
        item = k8s.KeyToPath(key=jwks.config_map.key, path=JWKS_FILE, mode=FILE_MODE)
        projection = k8s.ConfigMapProjection(name=jwks.config_map.name, items=[item])
        sources.append(k8s.VolumeProjection(config_map=projection))
    elif jwks.external_secret is not None:
        item = k8s.KeyToPath(key=JWKS_KEY, path=JWKS_FILE, mode=FILE_MODE)
        secret = k8s.SecretProjection(name=names.ServiceNames(service).oidc_jwks, items=[item])
        sources.append(k8s.VolumeProjection(secret=secret))
    projected = k8s.ProjectedVolumeSource(default_mode=FILE_MODE, sources=sources)
    return k8s.Volume(name=VOLUME, projected=projected)


MOUNT = k8s.VolumeMount(name=VOLUME, mount_path=IDENTITY_DIR, read_only=True)
