"""What a conversion carries from step to step: findings, SQL files to write, the source read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlflow_airflow.devtools.convert.findings import Findings
from dlflow_airflow.devtools.convert.hocon import HoconDocument
from dlflow_airflow.devtools.convert.templates import TemplateError, resolve_dlflow

Key = tuple[str, ...]
Json = dict[str, Any]
"""A HOCON object as pyhocon gives it, or a YAML mapping being built."""

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


@dataclass
class Context:
    """The state of one conversion.

    :param sql_dir: where rewritten SQL files go (the YAML names them by absolute path).
    :param files: the files to write beside the YAML: path -> text.
    """

    sql_dir: Path
    findings: Findings = field(default_factory=Findings)
    files: dict[Path, str] = field(default_factory=dict)
    spark_conf: dict[str, str | int | float | bool] = field(default_factory=dict)

    def add_file(self, name: str, text: str) -> Path:
        """Keep ``text`` to be written as ``sql_dir/name`` (made unique); its absolute path."""
        stem, suffix = identifier(Path(name).stem), Path(name).suffix or ".sql"
        candidate = self.sql_dir / f"{stem}{suffix}"
        count = 1
        while candidate in self.files:
            count += 1
            candidate = self.sql_dir / f"{stem}_{count}{suffix}"
        self.files[candidate] = text
        return candidate


def identifier(text: str, fallback: str = "x") -> str:
    """``text`` as a name of ours (``[A-Za-z_][A-Za-z0-9_]*``): other characters become ``_``."""
    name = _NOT_NAME.sub("_", text).strip("_") or fallback
    return f"_{name}" if name[0].isdigit() else name


def resolve_file(value: str, *folders: Path) -> Path | None:
    """``value`` as an existing file: absolute, or relative to the first folder holding it."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    for folder in folders:
        if (folder / path).is_file():
            return folder / path
    return None


@dataclass
class Source:
    """A HOCON document being converted, and the conversion its findings go to."""

    doc: HoconDocument
    ctx: Context

    def unmapped(self, key: Key, message: str) -> None:
        self.ctx.findings.unmapped(str(self.doc.origin(key)), ".".join(key), message)

    def note(self, key: Key, message: str) -> None:
        self.ctx.findings.note(str(self.doc.origin(key)), ".".join(key), message)

    def resolved(self, value: object, key: Key) -> str | None:
        """A DLFlow value with its references and date macros resolved; None (reported) if
        it has none of ours."""
        data = self.doc.data
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
        try:
            return resolve_dlflow(str(value), scalars)
        except TemplateError as exc:
            self.unmapped(key, str(exc))
            return None

    def report_includes(self) -> None:
        """Missing includes, and includes that are not files, as findings."""
        findings = self.ctx.findings
        for include in self.doc.includes:
            if include.kind != "file":
                findings.note(str(include.by), "include", f"{include.kind} include {include.file}")
            elif not include.exists:
                findings.unmapped(
                    str(include.by),
                    "include",
                    f"included file {include.file} does not exist: its keys are missing",
                )
