"""API keys with ids: an entry is `KEY` or `ID:KEY` (ID: [a-z0-9][a-z0-9._-]*, named in the access policy).

A key without an id gets `key-` and the first 12 hex digits of its sha256 as id: what the audit log shows
(never the key). Presented keys are compared with every key, in constant time, without stopping early.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

_ENTRY = re.compile(r"^(?P<id>[a-z0-9][a-z0-9._-]{0,62}):(?P<key>.+)$")


def anonymous_id(key: bytes) -> str:
    return "key-" + hashlib.sha256(key).hexdigest()[:12]


class KeyRing:
    def __init__(self, entries: Iterable[bytes]) -> None:
        pairs: dict[bytes, str] = {}
        for entry in entries:
            match = _ENTRY.match(entry.decode("utf-8", "replace"))
            if match:
                key = match["key"].strip().encode()
                pairs[key] = match["id"]
            else:
                pairs[entry] = anonymous_id(entry)
        self._keys = sorted(pairs.items())

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def ids(self) -> set[str]:
        return {key_id for _, key_id in self._keys}

    def identify(self, presented: bytes) -> str | None:
        """The id of the presented key, or None; the time taken does not depend on which key matched."""
        found: str | None = None
        for key, key_id in self._keys:
            if hmac.compare_digest(presented, key):
                found = key_id
        return found
