"""The access policy: which principals (token claims, API key ids) may do which actions on which models.

A JSON document (the overlay writes it into the ConfigMap; INFERENCE_ACCESS_POLICY_FILE or
INFERENCE_ACCESS_POLICY):

    {"rules": [{"claim": "groups", "values": ["fraud-analysts"],
                "models": ["breast-cancer"], "actions": ["infer", "metadata"]},
               {"claim": "scope", "values": ["inference:embed"], "models": ["minilm-embedding:1"],
                "actions": ["infer"]}],
     "api_keys": {"ci": {"models": ["breast-cancer:1"], "actions": ["infer"]},
                  "*": {"models": ["*"], "actions": ["infer", "jobs", "metadata"]}}}

A rule grants its models and actions to a token whose claim (a dotted path, e.g. `realm_access.roles`;
a string value is split on spaces, as `scope` is) holds any of its values. An API key gets the grant under
its id, else the one under "*". Model patterns: `name` or `name:*` (every version), `name:version`, `*`.
Nothing is granted that the policy does not say: no policy at all means every API key may do everything
(the behaviour before policies existed) and tokens nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inference_service.identity.requests import Action

_NAME = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_PATTERN = re.compile(rf"^(\*|{_NAME}(:(\*|[0-9]+))?)$")
_KEY_ID = re.compile(r"^(\*|[a-z0-9]([a-z0-9._-]{0,62}))$")


class Grant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[str] = Field(min_length=1)
    actions: list[Action] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _PATTERN.match(item):
                raise ValueError(f"model pattern {item!r} is not `*`, `name`, `name:*` or `name:version`")
        return value


class ClaimRule(Grant):
    claim: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_:.-]*$")
    values: list[str] = Field(min_length=1)


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[ClaimRule] = []
    api_keys: dict[str, Grant] = {}

    @field_validator("api_keys")
    @classmethod
    def _check_ids(cls, value: dict[str, Grant]) -> dict[str, Grant]:
        for key_id in value:
            if not _KEY_ID.match(key_id):
                raise ValueError(f"API key id {key_id!r} is not `*` or [a-z0-9][a-z0-9._-]*")
        return value


ALL_KEYS = PolicyDocument(api_keys={"*": Grant(models=["*"], actions=list(Action))})


class Permissions:
    """What one principal may do: a set of (model pattern, action) pairs, checked with a memo."""

    __slots__ = ("_grants", "_memo")

    def __init__(self, grants: Iterable[Grant]) -> None:
        self._grants: frozenset[tuple[str, Action]] = frozenset(
            (pattern if ":" in pattern or pattern == "*" else f"{pattern}:*", action)
            for grant in grants
            for pattern in grant.models
            for action in grant.actions
        )
        self._memo: dict[tuple[Action, str, str], bool] = {}

    def __bool__(self) -> bool:
        return bool(self._grants)

    def any(self, action: Action) -> bool:
        """Whether the action is granted on some model."""
        return any(granted == action for _, granted in self._grants)

    def allows(self, action: Action, model: str, version: str) -> bool:
        """Whether the action on model:version is granted (version "": one not known to be served)."""
        key = (action, model, version)
        known = self._memo.get(key)
        if known is None:
            grants = self._grants
            known = (
                ("*", action) in grants
                or (f"{model}:*", action) in grants
                or (bool(version) and (f"{model}:{version}", action) in grants)
            )
            if len(self._memo) < 1024:  # bounded whatever names callers send
                self._memo[key] = known
        return known


class AccessPolicy:
    def __init__(self, document: PolicyDocument) -> None:
        self.document = document
        self._key_permissions = {key_id: Permissions([grant]) for key_id, grant in document.api_keys.items()}
        self._none = Permissions([])

    @classmethod
    def parse(cls, text: str, source: str) -> AccessPolicy:
        """From JSON text; a bad document raises ValueError naming the source, the field and the problem."""
        try:
            return cls(PolicyDocument.model_validate_json(text))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "(document)"
            raise ValueError(
                f"{source}: access policy field {where}: {error['msg']} "
                "(allowed: rules[{claim, values, models, actions}], api_keys{id: {models, actions}}; "
                f"actions {', '.join(a.value for a in Action)})"
            ) from None

    @classmethod
    def load(cls, path: Path | None, inline: str) -> AccessPolicy:
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"INFERENCE_ACCESS_POLICY_FILE {path}: cannot read: {exc}") from exc
            return cls.parse(text, str(path))
        if inline.strip():
            return cls.parse(inline, "INFERENCE_ACCESS_POLICY")
        return cls(ALL_KEYS)

    def for_key(self, key_id: str) -> Permissions:
        return self._key_permissions.get(key_id) or self._key_permissions.get("*") or self._none

    def for_claims(self, claims: Mapping[str, Any]) -> Permissions:
        return Permissions(rule for rule in self.document.rules if _holds(claims, rule.claim, rule.values))


def claim_values(claims: Mapping[str, Any], path: str) -> set[str]:
    """The string values of a (dotted) claim: a list's strings, or a string split on spaces (`scope`)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return set()
        value = value[part]
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


def _holds(claims: Mapping[str, Any], claim: str, values: list[str]) -> bool:
    return not claim_values(claims, claim).isdisjoint(values)
