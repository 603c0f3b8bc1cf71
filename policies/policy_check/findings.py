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
    line: int = 0  # the object's first line in its file (0: unknown)

    def path(self) -> str:
        """The file as a repository path: dist/<folder>/<file>, or the file itself when it is a repo path."""
        if not self.file:
            return ""
        return self.file if "/" in self.file else f"dist/{self.environment}/{self.file}"

    @property
    def subject(self) -> str:
        if not self.kind:
            return "(environment)"
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def describe(self) -> str:
        where = self.file or "-"
        head = f"[{self.environment}] {where}: {self.subject}"
        return f"{head} violates {self.rule} ({self.engine}): {self.message}"
