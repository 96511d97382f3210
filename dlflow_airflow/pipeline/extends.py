"""``extends:``: a pipeline file built on shared base files.

A file names one base or a list of them, each a path relative to itself::

    extends: common/ctr_base.yaml

The bases are merged in order, then the file on top: mappings merge key by
key (``stages`` therefore stage by stage, and each stage's options key by
key), anything else (a list, a value, ``null``) is replaced by the later
file's. A base may extend other bases.

Bases are read as the file itself is (:func:`~dlflow_airflow.pipeline.yaml_reader.read_yaml`:
safe loader, size, aliases and depth bounded), and must be inside the folder
of the file that extends them (subfolders included; ``..`` and symlinks may
not lead out). The DAG-folder loader reads only the folder's own ``*.yaml``
files, so bases kept in a subfolder (``common/``) are never loaded as
pipelines. Every problem is an issue at ``extends`` of the extending file,
naming the base: a broken base breaks each file that extends it, with its own
error, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from dlflow_airflow.pipeline.errors import Issue, PipelineError, SpecError
from dlflow_airflow.pipeline.yaml_reader import MAX_NODES, read_yaml

EXTENDS = "extends"
# A train/predict pair needs a chain of two files; a family of pipelines perhaps
# four (company -> team -> model -> pipeline). 8 files is far past that, and with
# MAX_BASES (a wide fan-out) bounds what one pipeline makes the dag-processor read.
MAX_CHAIN = 8
MAX_BASES = 16

Origins = dict[tuple[str, ...], str]
"""Key path -> the base file whose value the merged data keeps there (``""``: the file's own)."""


@dataclass(frozen=True)
class PipelineData:
    """A pipeline file's data with its bases merged in, and where each inherited key came from."""

    data: Any
    origins: Origins = field(default_factory=dict)

    def locate(self, exc: PipelineError) -> PipelineError:
        """``exc`` with each issue at an inherited key path saying which base set it."""
        if not self.origins:
            return exc
        issues = [self._located(issue) for issue in exc.issues]
        return type(exc)(exc.source, issues)

    def _located(self, issue: Issue) -> Issue:
        keys = tuple(issue.path.split(".")) if issue.path else ()
        for end in range(len(keys), 0, -1):
            base = self.origins.get(keys[:end])
            if base is not None:
                return Issue(issue.path, f"{issue.message} (set in {base})") if base else issue
        return issue


def read_pipeline(path: str | Path) -> PipelineData:
    """The data of a pipeline file with its ``extends`` resolved; else a :class:`SpecError`."""
    return _Resolver(Path(path)).resolve()


class _Resolver:
    """One file's resolution: its folder (the bound), the bases read so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = str(path)
        self.folder = path.parent.resolve()
        self.read = 0
        self.origins: Origins = {}

    def resolve(self) -> PipelineData:
        data = read_yaml(self.path)
        if not isinstance(data, dict) or EXTENDS not in data:
            return PipelineData(data)
        merged = self._extend(data, self.path.parent, chain=(self.path.name,))
        if _exceeds(merged, MAX_NODES):
            self._fail(f"more than {MAX_NODES} values once merged with its bases (the limit)")
        return PipelineData(merged, self.origins)

    def _extend(self, data: dict, here: Path, *, chain: tuple[str, ...]) -> dict:
        """``data``'s bases merged in order, then ``data`` without its ``extends`` on top.

        Each file's key paths are recorded in that order, so the last file to
        set a path is the one its merged value comes from.
        """
        merged: dict = {}
        names = self._names(data[EXTENDS], chain) if EXTENDS in data else []
        for name in names:
            base = self._locate(name, here, chain)
            shown = self._shown(base)
            if shown in chain:
                self._fail(f"a cycle: {' -> '.join((*chain, shown))}")
            if len(chain) >= MAX_CHAIN:
                shown_chain = " -> ".join((*chain, shown))
                self._fail(f"more than {MAX_CHAIN} files in a chain of bases: {shown_chain}")
            self.read += 1
            if self.read > MAX_BASES:
                self._fail(f"more than {MAX_BASES} base files in all (the limit)")
            base_data = self._extend(self._read(base, shown), base.parent, chain=(*chain, shown))
            merged = _merge(merged, base_data)
        own = {key: value for key, value in data.items() if key != EXTENDS}
        _record(own, self.origins, (), "" if len(chain) == 1 else chain[-1])
        return _merge(merged, own)

    def _names(self, value: Any, chain: tuple[str, ...]) -> list[str]:
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            where = "" if len(chain) == 1 else f" (in {chain[-1]})"
            self._fail(f"expected a file path or a list of them{where}, got {value!r:.60}")
        return names

    def _locate(self, name: str, here: Path, chain: tuple[str, ...]) -> Path:
        """The base file ``name`` (relative to ``here``), inside the folder and existing."""
        where = "" if len(chain) == 1 else f" (in {chain[-1]})"
        if Path(name).is_absolute():
            self._fail(f"{name!r}{where}: a base is a path relative to the file, not absolute")
        candidate = here / name
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError, ValueError) as exc:  # missing, a link loop, a NUL
            reason = "not found" if isinstance(exc, FileNotFoundError) else _reason(exc)
            self._fail(f"{name!r}{where}: {reason}")
        if not real.is_relative_to(self.folder):
            self._fail(
                f"{name!r}{where} is outside {self.folder}"
                + (" (through a symlink)" if _through_symlink(candidate) else "")
                + "; a base must be in the pipeline file's folder or below it"
            )
        if not real.is_file():
            self._fail(f"{name!r}{where}: not a file")
        return real

    def _read(self, base: Path, shown: str) -> dict:
        try:
            data = read_yaml(base)
        except PipelineError as exc:
            problem = "; ".join(issue.render(shown) for issue in exc.issues)
            self._fail(problem)
        if not isinstance(data, dict):
            got = "an empty file" if data is None else type(data).__name__
            self._fail(f"{shown}: expected a mapping of pipeline keys, got {got}")
        return data

    def _shown(self, base: Path) -> str:
        return base.relative_to(self.folder).as_posix()

    def _fail(self, message: str) -> NoReturn:
        raise SpecError(self.source, [Issue(EXTENDS, message)])


def _merge(base: dict, top: Mapping) -> dict:
    """``base`` with ``top`` on it: mappings merge, anything else is replaced.

    Neither input is changed: aliases may share their values.
    """
    merged = dict(base)
    for key, value in top.items():
        old = merged.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        merged[key] = _merge(old, value) if both else value
    return merged


def _record(data: Mapping, origins: Origins, at: tuple[str, ...], source: str) -> None:
    """Every key path of ``data``'s mappings (not into lists) as set by ``source``."""
    for key, value in data.items():
        path = (*at, str(key))
        origins[path] = source
        if isinstance(value, dict):
            _record(value, origins, path, source)


def _exceeds(data: Any, limit: int) -> bool:
    """More than ``limit`` values in ``data`` (keys included, shared values counted each time)."""
    return any(count > limit for count, _ in enumerate(_values(data), start=1))


def _values(data: Any) -> Iterator[Any]:
    stack = [data]
    while stack:
        value = stack.pop()
        yield value
        if isinstance(value, dict):
            for key, item in value.items():
                yield key
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)


def _through_symlink(path: Path) -> bool:
    return any(p.is_symlink() for p in (path, *path.parents))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read the file: {exc.strerror}"
    if isinstance(exc, ValueError):
        return f"not a usable path: {exc}"
    return "cannot resolve the path (a symlink loop?)"
