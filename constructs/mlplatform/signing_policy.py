"""dist/cluster-policies/verify-image-signatures.yaml: admit only images the platform's key signed.

Rendered from the spec (platform.yaml `imageSigning.publicKey`), unlike the other cluster policies, which
are byte copies of policies/kyverno/: the key is the spec's, and this policy cannot run in the offline
pull-request gate (verifying a signature reads the registry), so it has no copy there. Its behaviour is
tested with the real Kyverno CLI against a real registry (tests/policies/test_image_signatures.py).

Kyverno 1.19 offers two ways: a ClusterPolicy `verifyImages` rule and the ImageValidatingPolicy
(policies.kyverno.io/v1). This is an ImageValidatingPolicy: it is the kind Kyverno develops (`verifyImages` is
the older JMESPath form), it is CEL like every other cluster policy here (ValidatingPolicy), its message can
name the resource and the images that failed, and it takes a policy-wide `required` and `verifyDigest`.
"""

from __future__ import annotations

from typing import Any

import yaml

from mlplatform.names import MANAGED_NAMESPACE, MANAGED_NAMESPACE_VALUE, NAMESPACE_NAME

NAME = "verify-image-signatures"
FILE = f"{NAME}.yaml"
ATTESTOR = "platformKey"

WHY = (
    "A digest pins bytes, not who built them: restrict-image-registries admits any image pushed to a "
    "repository the spec names, by anyone who can push there. Every container, init container and "
    "ephemeral container must run an image signed (cosign) by the key whose public half "
    "overlays/platform.yaml names in imageSigning.publicKey; `make image-publish` (python -m imagebuild "
    "publish) copies what `make image` built to the registry and signs it. Unsigned images, images "
    "signed by another key and a tag moved to other bytes are denied. The transparency log is not "
    "consulted: the key alone is the trust root, so a private registry needs no internet access."
)


class _Literal(str):
    """A multi-line string written as a YAML literal block (the PEM key stays readable)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Folded(str):
    """A long string written as a folded YAML block (`>-`), like the hand-written policies' descriptions."""


def _folded(dumper: yaml.SafeDumper, value: _Folded) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=">")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)
_Dumper.add_representer(_Folded, _folded)


def policy(*, public_key_pem: str, key_file: str, protected: set[str]) -> dict[str, Any]:
    """The ImageValidatingPolicy; `key_file` is where the key is, as platform.yaml names it (overlays/...)."""
    unsigned = f"variables.images.filter(i, verifyImageSignatures(i, [attestors.{ATTESTOR}]) == 0)"
    message = (
        "object.kind + ' ' + request.namespace + '/' + "
        "object.metadata.?name.orValue(object.metadata.?generateName.orValue('')) + "
        f"': image(s) not signed by the platform key ({key_file}): ' + variables.unsigned.join(', ') + "
        "'. Fix: publish the image `make image` built and sign its digest with that key "
        "(make image-publish; README: Publishing and signing the images).'"
    )
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {
            "name": NAME,
            "annotations": {
                "policies.kyverno.io/title": "Only images the platform's key signed",
                "policies.kyverno.io/category": "Supply chain",
                "policies.kyverno.io/severity": "high",
                "policies.kyverno.io/subject": "Pod",
                "kyverno.io/kubernetes-version": "1.33",
                "policies.kyverno.io/description": _Folded(WHY),
                "mlplatform.io/signing-key": key_file,
            },
        },
        "spec": {
            "validationActions": ["Deny"],
            # An image Kyverno cannot verify (registry unreachable) is not admitted; verifying reads the
            # registry once per image, so the webhook gets the longest timeout admission allows.
            "failurePolicy": "Fail",
            "webhookConfiguration": {"timeoutSeconds": 30},
            # Only the namespaces the platform manages, never a system, Argo CD or peer namespace.
            "matchConstraints": {
                "namespaceSelector": {
                    "matchLabels": {MANAGED_NAMESPACE: MANAGED_NAMESPACE_VALUE},
                    "matchExpressions": [
                        {"key": NAMESPACE_NAME, "operator": "NotIn", "values": sorted(protected)},
                    ],
                },
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                    }
                ],
            },
            "matchImageReferences": [{"glob": "*"}],
            "validationConfigurations": {"required": True, "verifyDigest": False, "mutateDigest": False},
            "attestors": [
                {
                    "name": ATTESTOR,
                    "cosign": {
                        "key": {"data": _Literal(public_key_pem)},
                        "ctlog": {"insecureIgnoreTlog": True, "insecureIgnoreSCT": True},
                    },
                }
            ],
            "variables": [
                {
                    "name": "images",
                    "expression": (
                        "images.?containers.orValue([]) + images.?initContainers.orValue([]) + "
                        "images.?ephemeralContainers.orValue([])"
                    ),
                },
                {"name": "unsigned", "expression": unsigned},
            ],
            "validations": [
                {"expression": "size(variables.unsigned) == 0", "messageExpression": _Folded(message)}
            ],
        },
    }


def render(*, public_key_pem: str, key_file: str, protected: set[str]) -> str:
    doc = policy(public_key_pem=public_key_pem, key_file=key_file, protected=protected)
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
