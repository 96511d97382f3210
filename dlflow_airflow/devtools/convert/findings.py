"""What a conversion could not map, and what it mapped with a changed meaning.

Nothing of a DLFlow config is dropped silently: each key the converter leaves
out is an *unmapped* finding (file, key path, why), each key mapped to
something that behaves differently is a *note*. Both are printed to stderr and
written as comments at the top of the pipeline YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["unmapped", "note"]


@dataclass(frozen=True)
class Finding:
    """One key of the DLFlow config and what became of it.

    :param file: the file the key came from (the include, when known).
    :param key: its key path, e.g. ``MODEL.input_name`` or ``steps.2.checkpoint``.
    :param message: why it is not mapped, or how its meaning changed.
    """

    kind: Kind
    file: str
    key: str
    message: str

    def render(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {' '.join(self.message.split())}"


_TITLES: tuple[tuple[Kind, str], ...] = (("unmapped", "Not mapped"), ("note", "Mapped with a note"))


@dataclass
class Findings:
    """The findings of one conversion, in the order they were made."""

    items: list[Finding] = field(default_factory=list)

    def unmapped(self, file: str, key: str, message: str) -> None:
        self.items.append(Finding("unmapped", file, key, message))

    def note(self, file: str, key: str, message: str) -> None:
        self.items.append(Finding("note", file, key, message))

    def of_kind(self, kind: Kind) -> list[Finding]:
        return [f for f in self.items if f.kind == kind]

    def lines(self) -> list[str]:
        """The report: the unmapped keys first, then the notes, one line each."""
        lines: list[str] = []
        for kind, title in _TITLES:
            found = self.of_kind(kind)
            if found:
                lines.append(f"{title} ({len(found)}):")
                lines.extend(f"  {f.render()}" for f in found)
        return lines
