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
    line: int = 0  # where in its file: the offending field's line, else the object's first line (0: unknown)
    end_line: int = 0  # the object's last line (0: unknown, or `line` is a field's)
    field: tuple[str | int, ...] = ()  # the offending field's path in the object, where the engine names one
    origin: str = ""  # the spec field that produced it: `overlays/<file>.yaml:<line>: <field.path>`

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
        if self.file and self.line:
            where += f":{self.line}"
        head = f"[{self.environment}] {where}: {self.subject}"
        tail = f" (from {self.origin})" if self.origin else ""
        return f"{head} violates {self.rule} ({self.engine}): {self.message}{tail}"
