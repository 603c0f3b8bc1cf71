"""ExternalSecrets: the External Secrets Operator makes Secrets from a ClusterSecretStore; git has none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlplatform_crds.io import external_secrets as eso

from constructs import Construct
from mlplatform.components.base import Meta

if TYPE_CHECKING:
    from mlplatform.schema.common import SecretRef

REFRESH = "1h"


def external_secret(
    scope: Construct,
    id: str,
    *,
    meta: Meta,
    name: str,
    store: str,
    ref: SecretRef,
    key: str,
    template: dict[str, str] | None = None,
) -> eso.ExternalSecret:
    """An ExternalSecret that fills Secret `name` key `key` from `ref` (optionally through a template).

    The Secret is owned by the ExternalSecret but kept when it is deleted (a pruned ExternalSecret must not
    take a running service's credentials with it).
    """
    target = eso.ExternalSecretSpecTarget(
        name=name,
        creation_policy=eso.ExternalSecretSpecTargetCreationPolicy.OWNER,
        deletion_policy=eso.ExternalSecretSpecTargetDeletionPolicy.RETAIN,
        template=eso.ExternalSecretSpecTargetTemplate(
            engine_version=eso.ExternalSecretSpecTargetTemplateEngineVersion.V2, data=dict(template)
        )
        if template
        else None,
    )
    remote = eso.ExternalSecretSpecDataRemoteRef(key=ref.remote_key, property=ref.property)
    spec = eso.ExternalSecretSpec(
        refresh_interval=REFRESH,
        secret_store_ref=eso.ExternalSecretSpecSecretStoreRef(
            kind=eso.ExternalSecretSpecSecretStoreRefKind.CLUSTER_SECRET_STORE, name=store
        ),
        target=target,
        data=[eso.ExternalSecretSpecData(secret_key=key, remote_ref=remote)],
    )
    return eso.ExternalSecret(scope, id, metadata=meta.api(name), spec=spec)
