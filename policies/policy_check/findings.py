"""The one record every engine's result is turned into."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Finding:
    """One violation (or, with `waiver` set, one violation a reviewed waiver covers)."""

    environment: str
    rule: str
    file: str
    kind: str
    namespace: str
    name: str
    engine: str
    message: str
    waiver: str = ""

    @property
    def subject(self) -> str:
        if not self.kind:
            return "(environment)"
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def describe(self) -> str:
        where = self.file or "-"
        head = f"[{self.environment}] {where}: {self.subject}"
        return f"{head} violates {self.rule} ({self.engine}): {self.message}"
