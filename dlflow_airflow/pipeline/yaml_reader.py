"""Reading a pipeline file's YAML: safely, and within bounds.

A pipeline file is data found in the DAG folder and read at parse time, in
Airflow's dag-processor. So it is read with a safe loader (no Python tags),
duplicate keys are refused, and the file is bounded before anything walks the
data: its size, its number of values once aliases are expanded, and its
nesting depth. PyYAML builds an alias as a shared reference, so a kilobyte of
aliases is cheap to load; the blow-up comes later, when validation, the job
documents or Airflow's serializer walk the structure. Hence the count runs
over the parser's events first (no nodes kept, stopping at the first bound
crossed), and only a document within bounds is composed into Python data.

Every problem is a :class:`SpecError` naming the file and, where there is
one, the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlflow_airflow.pipeline.errors import Issue, SpecError

# The example pipelines are under 2 KB; 256 KiB is over a hundred times that and
# still parses in milliseconds, while a data dump dropped in the folder is refused unparsed.
MAX_FILE_BYTES = 256 * 1024
# The examples hold about 120 values (keys included); 10,000 leaves room for long
# feature lists, yet keeps every later walk of the data (validation, job documents,
# Airflow's serialization) to milliseconds. Aliases count as the values they stand for.
MAX_NODES = 10_000
# The examples nest 5 collections deep (stages.merge.sources[0].path); 32 leaves room
# for nested model params and keeps every recursive consumer far from Python's limit.
MAX_DEPTH = 32

# libyaml's parser when PyYAML was built with it (several times faster at parse time).
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class RefusedYaml(yaml.YAMLError):
    """Valid YAML this reader refuses: past a bound, or a key that cannot be one."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _UniqueKeyLoader(_SafeBase):  # type: ignore[misc, valid-type]
    """A safe loader that refuses duplicate keys instead of keeping the last one.

    A value its tag cannot make (``!!int abc``, ``2026-13-01``) is refused at its line.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            shown = f" {node.value!r}" if isinstance(node, yaml.ScalarNode) else ""
            value = shown if len(shown) <= 60 else shown[:57] + "..."
            raise RefusedYaml(f"not a valid {tag} value{value}", node.start_mark) from None


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.Node) -> dict:
    if not isinstance(node, yaml.MappingNode):
        raise RefusedYaml(f"expected a mapping, found a {node.id}", node.start_mark)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = _plain_key(loader, key_node)
        if key in seen:
            raise RefusedYaml(f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


def _plain_key(loader: _UniqueKeyLoader, key_node: yaml.Node) -> Any:
    """A mapping key; a merge key (``<<``) or a list or mapping as a key is refused."""
    mark = key_node.start_mark
    if key_node.tag == _MERGE_TAG:
        raise RefusedYaml("merge keys (<<) are not supported; write the keys out", mark)
    key = loader.construct_object(key_node)
    try:
        hash(key)
    except TypeError:
        raise RefusedYaml(
            f"a key must be a plain value, not a {type(key).__name__}", mark
        ) from None
    return key


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def read_yaml(path: str | Path) -> Any:
    """The data of a YAML file, read safely and within bounds; else a :class:`SpecError`."""
    source = str(path)
    text = _read_text(path, source)
    try:
        check_bounds(text)
        loader = _UniqueKeyLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise SpecError(source, [_yaml_issue(exc)]) from None


def _read_text(path: str | Path, source: str) -> str:
    """The file as text: UTF-8, at most :data:`MAX_FILE_BYTES` (never read further)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(source, [Issue("", f"cannot read the file: {exc.strerror}")]) from None
    if len(data) > MAX_FILE_BYTES:
        message = f"larger than {MAX_FILE_BYTES} bytes (a pipeline file's limit)"
        raise SpecError(source, [Issue("", message)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise SpecError(source, [Issue("", message)]) from None


def _yaml_issue(exc: yaml.YAMLError) -> Issue:
    """``line, column: problem`` (a refusal) or ``line, column: invalid YAML: problem``."""
    if isinstance(exc, RefusedYaml):
        return Issue(_where(exc.problem_mark), exc.problem)
    if isinstance(exc, yaml.reader.ReaderError):
        where = f"character {exc.position + 1}"
        return Issue(where, f"invalid YAML: unacceptable character: {exc.reason}")
    problem = str(getattr(exc, "problem", None) or exc)
    context = getattr(exc, "context", None)
    if context and not context.startswith("while"):  # "expected a single document..."
        problem = f"{context}, {problem}"
    where = _where(getattr(exc, "problem_mark", None)) or "YAML"
    return Issue(where, f"invalid YAML: {' '.join(problem.split())}")


def _where(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""


@dataclass
class _Open:
    """A collection being counted: its anchor, the total before it, the deepest level inside."""

    anchor: str | None
    before: int
    deepest: int


@dataclass
class _Expansion:
    """The running count of :func:`check_bounds`."""

    total: int = 0
    open: list[_Open] = field(default_factory=list)
    # anchor -> (values it expands to, collection levels it spans)
    anchors: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, size: int, level: int, mark: yaml.Mark | None) -> None:
        """Count ``size`` values reaching ``level``; refuse past a bound."""
        self.total += size
        if self.total > MAX_NODES:
            message = f"more than {MAX_NODES} values once aliases are expanded"
            raise RefusedYaml(f"{message} (a pipeline file's limit)", mark)
        if level > MAX_DEPTH:
            message = f"nested more than {MAX_DEPTH} levels deep (a pipeline file's limit)"
            raise RefusedYaml(message, mark)
        if self.open:
            self.open[-1].deepest = max(self.open[-1].deepest, level)


def check_bounds(text: str) -> None:
    """Refuse YAML past :data:`MAX_NODES` values (aliases expanded) or :data:`MAX_DEPTH` levels.

    Walks the parser's events, so nothing is composed, let alone expanded: an
    alias adds the size its anchor was counted at. Stops at the first bound
    crossed with a :class:`RefusedYaml` at that place.
    """
    state = _Expansion()
    loader = _SafeBase(text)
    try:
        while loader.check_event():
            _count(state, loader.get_event())
    finally:
        loader.dispose()


def _count(state: _Expansion, event: yaml.Event) -> None:
    level = len(state.open)  # collections open around this event
    if isinstance(event, yaml.CollectionStartEvent):
        state.add(1, level + 1, event.start_mark)
        state.open.append(_Open(event.anchor, state.total - 1, level + 1))
    elif isinstance(event, yaml.CollectionEndEvent):
        done = state.open.pop()
        if state.open:
            state.open[-1].deepest = max(state.open[-1].deepest, done.deepest)
        if done.anchor is not None:
            state.anchors[done.anchor] = (state.total - done.before, done.deepest - level + 1)
    elif isinstance(event, yaml.ScalarEvent):
        state.add(1, level, event.start_mark)
        if event.anchor is not None:
            state.anchors[event.anchor] = (1, 0)
    elif isinstance(event, yaml.AliasEvent):
        if any(frame.anchor == event.anchor for frame in state.open):
            problem = f"alias *{event.anchor} stands for a value that contains it"
            raise RefusedYaml(problem, event.start_mark)
        size, levels = state.anchors.get(event.anchor, (1, 0))  # unknown: the composer says so
        state.add(size, level + levels, event.start_mark)
