"""The Istio mesh layer of an environment with `mesh: istio`: STRICT mTLS, a deny-all, and one ALLOW per
declared connection (`mlplatform.mesh.authorizations`). The NetworkPolicies stay as the second layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlplatform_crds.io.istio import security as istio

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import WAVE_NAMESPACE, Meta

if TYPE_CHECKING:
    from mlplatform.mesh import Authorization


def _allow(authorization: Authorization) -> istio.AuthorizationPolicySpec:
    source = istio.AuthorizationPolicySpecRulesFromSource(principals=[authorization.principal])
    operation = istio.AuthorizationPolicySpecRulesToOperation(ports=[str(p) for p in authorization.ports])
    return istio.AuthorizationPolicySpec(
        action=istio.AuthorizationPolicySpecAction.ALLOW,
        selector=istio.AuthorizationPolicySpecSelector(match_labels=dict(authorization.selector)),
        rules=[
            istio.AuthorizationPolicySpecRules(
                from_=[istio.AuthorizationPolicySpecRulesFrom(source=source)],
                to=[istio.AuthorizationPolicySpecRulesTo(operation=operation)],
            )
        ],
    )


class MeshPolicies(Construct):
    """PeerAuthentication `default` (STRICT: no plaintext into any pod of the namespace), AuthorizationPolicy
    `deny-all` (an empty spec allows nothing), then one ALLOW per `authorizations`. In the namespace's wave,
    so they exist before any workload starts."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespace: str,
        platform: str,
        authorizations: Sequence[Authorization],
    ) -> None:
        super().__init__(scope, id)
        common = names.common(platform=platform, name=platform, component="mesh")
        meta = Meta(namespace=namespace, labels=common, wave=WAVE_NAMESPACE)
        strict = istio.PeerAuthenticationSpecMtls(mode=istio.PeerAuthenticationSpecMtlsMode.STRICT)
        istio.PeerAuthentication(
            self, "mtls", metadata=meta.api(names.MESH_MTLS), spec=istio.PeerAuthenticationSpec(mtls=strict)
        )
        istio.AuthorizationPolicy(
            self, "deny-all", metadata=meta.api(names.MESH_DENY_ALL), spec=istio.AuthorizationPolicySpec()
        )
        for authorization in authorizations:
            istio.AuthorizationPolicy(
                self, authorization.name, metadata=meta.api(authorization.name), spec=_allow(authorization)
            )
