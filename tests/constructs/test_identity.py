"""The overlay's `identity` (issue 15): settings, the `<version>-identity` ConfigMap and its hash annotation,
the JWKS mounted from a ConfigMap or an ExternalSecret's Secret, the same on the canary and on the KServe
predictor, and spec errors as one line each. Expectations come from the overlay YAML and the JWKS file."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.schema import SpecError, load_all
from mlplatform.synth import render

REPO = Path(__file__).resolve().parents[2]
IDENTITY_DIR = "/etc/inference/identity"


def _objects(root: Path, env: str) -> list[dict[str, Any]]:
    files = render(root, only=[env]).folders[env]
    return [yaml.safe_load(text) for name, text in files.items() if name.endswith(".yaml")]


def _overlay(root: Path, env: str) -> dict[str, Any]:
    return dict(yaml.safe_load((root / "overlays" / f"{env}.yaml").read_text()))


def _pod(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod template metadata, pod spec) of a Deployment or an InferenceService's predictor."""
    if obj["kind"] == "InferenceService":
        predictor = obj["spec"]["predictor"]
        return {"annotations": predictor.get("annotations", {})}, predictor
    return obj["spec"]["template"]["metadata"], obj["spec"]["template"]["spec"]


def _check_version(
    objs: list[dict[str, Any]], find_object: Any, kind: str, name: str, ident: dict[str, Any]
) -> None:
    config = find_object(objs, "ConfigMap", f"{name}-config")["data"]
    assert config["INFERENCE_OIDC_ISSUER"] == ident["issuer"]
    assert config["INFERENCE_OIDC_AUDIENCE"] == ident["audience"]
    assert config["INFERENCE_OIDC_ALGORITHMS"] == ",".join(ident.get("algorithms", ["RS256", "ES256"]))
    assert config["INFERENCE_ACCESS_POLICY_FILE"] == f"{IDENTITY_DIR}/access-policy.json"
    assert config["INFERENCE_AUDIT_LOG"] == "stderr"
    policy = find_object(objs, "ConfigMap", f"{name}-identity")["data"]["access-policy.json"]
    assert json.loads(policy)["rules"] == [
        {k: r[k] for k in ("claim", "values", "models", "actions")}
        for r in ident["accessPolicy"].get("rules", [])
    ]
    assert policy == json.dumps(json.loads(policy), sort_keys=True, separators=(",", ":")) + "\n"
    meta, spec = _pod(find_object(objs, kind, name))
    assert (
        meta["annotations"]["mlplatform.io/access-policy-sha256"]
        == hashlib.sha256(policy.encode()).hexdigest()
    )
    volume = next(v for v in spec["volumes"] if v["name"] == "identity")
    sources = volume["projected"]["sources"]
    assert volume["projected"]["defaultMode"] == 0o440
    assert sources[0] == {
        "configMap": {
            "name": f"{name}-identity",
            "items": [{"key": "access-policy.json", "path": "access-policy.json"}],
        }
    }
    mounts = [m for c in spec["containers"] for m in c["volumeMounts"] if m["name"] == "identity"]
    assert mounts == [{"mountPath": IDENTITY_DIR, "name": "identity", "readOnly": True}]
    jwks = ident["jwks"]
    if "configMap" in jwks:
        ref = jwks["configMap"]
        item = {"key": ref.get("key", "jwks.json"), "path": "jwks/jwks.json", "mode": 0o440}
        assert sources[1] == {"configMap": {"name": ref["name"], "items": [item]}}
        assert config["INFERENCE_OIDC_JWKS_FILE"] == f"{IDENTITY_DIR}/jwks/jwks.json"
    elif "externalSecret" in jwks:
        item = {"key": "jwks.json", "path": "jwks/jwks.json", "mode": 0o440}
        assert sources[1] == {"secret": {"name": "inference-oidc-jwks", "items": [item]}}
        assert config["INFERENCE_OIDC_JWKS_FILE"] == f"{IDENTITY_DIR}/jwks/jwks.json"


def test_prod_stable_and_canary(objects: dict[str, list[dict[str, Any]]], find_object: Any) -> None:
    ident = _overlay(REPO, "prod")["services"]["inference"]["identity"]
    for name in ("inference", "inference-canary"):
        _check_version(objects["prod"], find_object, "Deployment", name, ident)
    ref = ident["jwks"]["configMap"]
    shipped = find_object(objects["prod"], "ConfigMap", ref["name"])["data"][ref["key"]]
    assert json.loads(shipped) == json.loads((REPO / "overlays" / ref["file"]).read_text())
    assert not any(
        o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-identity") for o in objects["dev"]
    )


def test_a_policy_change_rolls_the_pods(spec_copy: Path, edit_yaml: Any, find_object: Any) -> None:
    def annotation() -> str:
        meta, _ = _pod(find_object(_objects(spec_copy, "prod"), "Deployment", "inference"))
        return str(meta["annotations"]["mlplatform.io/access-policy-sha256"])

    before = annotation()
    edit_yaml(
        spec_copy / "overlays" / "prod.yaml",
        lambda d: d["services"]["inference"]["identity"]["accessPolicy"]["rules"][0]["values"].append(
            "auditors"
        ),
    )
    assert annotation() != before


def test_external_secret_jwks_and_kserve(spec_copy: Path, edit_yaml: Any, find_object: Any) -> None:
    ref = {"remoteKey": "mlplatform/oidc", "property": "jwks"}

    def change(d: dict[str, Any]) -> None:
        d["runtime"] = "kserve"
        d["services"]["inference"]["autoscaling"].pop("signal", None)  # KServe's autoscaler is on CPU
        d["services"]["inference"]["identity"]["jwks"] = {"externalSecret": ref}

    edit_yaml(spec_copy / "overlays" / "prod.yaml", change)
    objs = _objects(spec_copy, "prod")
    ident = _overlay(spec_copy, "prod")["services"]["inference"]["identity"]
    for name in ("inference", "inference-canary"):
        _check_version(objs, find_object, "InferenceService", name, ident)
    secret = find_object(objs, "ExternalSecret", "inference-oidc-jwks")["spec"]
    assert secret["data"] == [
        {"secretKey": "jwks.json", "remoteRef": {"key": ref["remoteKey"], "property": ref["property"]}}
    ]
    assert not [
        o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "inference-oidc-jwks"
    ]


def _problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_all(root)
    return info.value.lines


def _line(root: Path, needle: str) -> int:
    lines = (root / "overlays" / "prod.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "actions: [infer, metadata]",
            "actions: [infer, delete]",
            "accessPolicy.rules[0].actions[1]",
            ("'delete'", "allowed: 'infer', 'jobs' or 'metadata'"),
        ),
        (
            "models: [breast-cancer]",
            "models: [Breast Cancer]",
            "accessPolicy.rules[0].models",
            ("model pattern 'Breast Cancer'",),
        ),
        ("algorithms: [RS256, ES256]", "algorithms: [RS256, HS256]", "algorithms[1]", ("'HS256'", "'RS256'")),
        (
            "          file: identity/prod-jwks.json",
            "          file: identity/missing.json",
            "jwks.configMap.file",
            ("cannot read overlays/identity/missing.json",),
        ),
        (
            "        configMap:",
            "        url: https://login.example.com/jwks\n        configMap:",
            "jwks",
            ("got configMap, url", "exactly one of"),
        ),
    ],
)
def test_bad_identity_is_one_line(
    spec_copy: Path, old: str, new: str, field: str, words: tuple[str, ...]
) -> None:
    path = spec_copy / "overlays" / "prod.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    found = [p for p in _problems(spec_copy) if ".identity." in p]
    assert len(found) == 1, found
    needle = new.splitlines()[-1].strip() if field != "jwks" else "jwks:"
    assert found[0].startswith(
        f"overlays/prod.yaml:{_line(spec_copy, needle)}: services.inference.identity.{field}: "
    )
    assert all(w in found[0] for w in words), found[0]


@pytest.mark.parametrize(
    ("cidrs", "words"),
    [
        (["0.0.0.0/0"], "wider than /8"),
        (["169.254.169.254/32"], "link-local"),
        (["10.0.0.1/8"], "not a CIDR"),
    ],
)
def test_jwks_egress_must_be_narrow(spec_copy: Path, edit_yaml: Any, cidrs: list[str], words: str) -> None:
    url = {"url": "https://login.example.com/jwks", "egress": {"cidrs": cidrs}}
    edit_yaml(
        spec_copy / "overlays" / "prod.yaml",
        lambda d: d["services"]["inference"]["identity"].update(jwks=url),
    )
    found = [p for p in _problems(spec_copy) if ".identity." in p]
    assert (
        len(found) == 1
        and "services.inference.identity.jwks.egress.cidrs: " in found[0]
        and words in found[0]
    ), found


def test_a_private_key_in_the_jwks_file_is_refused(spec_copy: Path) -> None:
    path = spec_copy / "overlays" / "identity" / "prod-jwks.json"
    doc = json.loads(path.read_text())
    doc["keys"][0]["d"] = "c2VjcmV0"
    path.write_text(json.dumps(doc))
    found = [p for p in _problems(spec_copy) if ".identity." in p]
    assert len(found) == 1 and "private or symmetric" in found[0] and "prod-rsa-2026-12" in found[0], found


def test_services_of_one_issuer_share_its_jwks_configmap(spec_copy: Path, edit_yaml: Any) -> None:
    def platform(d: Any) -> None:
        d["services"]["ranker"] = dict(
            d["services"]["inference"], models=[{"name": "minilm-embedding", "version": "1"}]
        )
        d["connections"] += [
            {"from": "ingress-controller", "to": "ranker"},
            {"from": "ranker", "to": "redis"},
            {"from": "ranker", "to": "jobs-redis"},  # stage runs jobs
            {"from": "ranker-worker", "to": "jobs-redis"},
            {"from": "ranker-worker", "to": "redis"},
        ]

    edit_yaml(spec_copy / "overlays" / "platform.yaml", platform)
    for env in ("dev", "prod", "stage"):
        host = f"ranker.{env}.example.com"
        edit_yaml(
            spec_copy / "overlays" / f"{env}.yaml",
            lambda d, h=host: d["services"].update(
                ranker={
                    **copy.deepcopy(d["services"]["inference"]),
                    "host": h,
                    "canary": None,
                    "grpcHost": None,
                }
            ),
        )
    objs = _objects(spec_copy, "prod")
    jwks = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "inference-oidc-jwks"]
    assert len(jwks) == 1 and jwks[0]["metadata"]["labels"]["app.kubernetes.io/name"] == "inference"
    assert {o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"} >= {
        "inference-identity",
        "ranker-identity",
    }

    edit_yaml(
        spec_copy / "overlays" / "prod.yaml",
        lambda d: d["services"]["ranker"]["identity"]["jwks"]["configMap"].update(key="other.json"),
    )
    found = [p for p in _problems(spec_copy) if ".identity." in p]
    assert (
        len(found) == 1
        and "ranker.identity.jwks.configMap: ConfigMap inference-oidc-jwks is also services.inference"
        in found[0]
    ), found


def test_the_job_worker_gets_no_identity(spec_copy: Path, edit_yaml: Any, find_object: Any) -> None:
    """stage runs job workers: with identity on, the API takes tokens and the worker (no callers) nothing."""
    prod = _overlay(spec_copy, "prod")["services"]["inference"]["identity"]
    edit_yaml(
        spec_copy / "overlays" / "stage.yaml", lambda d: d["services"]["inference"].update(identity=prod)
    )
    objs = _objects(spec_copy, "stage")
    _check_version(
        objs,
        find_object,
        "Deployment",
        "inference",
        _overlay(spec_copy, "stage")["services"]["inference"]["identity"],
    )
    worker = find_object(objs, "Deployment", "inference-worker")["spec"]["template"]
    assert "identity" not in {v["name"] for v in worker["spec"]["volumes"]}
    assert "mlplatform.io/access-policy-sha256" not in worker["metadata"].get("annotations", {})
    config = find_object(objs, "ConfigMap", "inference-worker-config")["data"]
    assert not [k for k in config if k.startswith(("INFERENCE_OIDC_", "INFERENCE_ACCESS_POLICY"))], config
