"""Read a HOCON file with its includes (pyhocon), remembering which include gave which key.

pyhocon is imported here, inside functions, so nothing that runs at DAG parse
time loads it. Includes are found in the text (comments blanked out) so that a
missing one is reported instead of being skipped, as HOCON does with an
optional include.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KeyPath = tuple[str, ...]

# A quoted string (kept) or a comment (blanked) -- so an include in a comment is not one.
_STRING_OR_COMMENT = re.compile(r'"""[\s\S]*?"""|"(?:\\.|[^"\\\n])*"|//[^\n]*|#[^\n]*')
_INCLUDE = re.compile(
    r'\binclude\s+(?:required\s*\(\s*)?(?:(file|url|classpath|package)\s*\(\s*)?"([^"]+)"'
)


class HoconError(ValueError):
    """The file cannot be read or is not valid HOCON."""


@dataclass(frozen=True)
class Include:
    """An ``include`` statement.

    :param file: the included file (resolved against the including file's folder).
    :param kind: ``file`` (also a bare ``include "x"``), ``url``, ``classpath`` or ``package``.
    :param mount: where its keys landed in the whole document; None when unknown.
    :param keys: the key paths it defines, relative to ``mount``.
    """

    file: Path
    kind: str
    by: Path
    exists: bool
    mount: KeyPath | None = None
    keys: frozenset[KeyPath] = frozenset()


@dataclass(frozen=True)
class HoconDocument:
    """A parsed HOCON file: plain data (includes and substitutions resolved) and its includes."""

    path: Path
    data: dict[str, Any]
    includes: tuple[Include, ...] = field(default=())

    def origin(self, key: Sequence[str]) -> Path:
        """The file that defined ``key``: the include it came from, else this file."""
        key = tuple(key)
        # The deepest mount first; then the smallest file: an include's own parse holds
        # the keys of the files it includes, so the nested file is the more precise answer.
        for include in sorted(self.includes, key=lambda i: (-len(i.mount or ()), len(i.keys))):
            if include.mount is None or key[: len(include.mount)] != include.mount:
                continue
            rest = key[len(include.mount) :]
            if rest and any(_overlaps(rest, own) for own in include.keys):
                return include.file
        return self.path


def _overlaps(a: KeyPath, b: KeyPath) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def read_hocon(path: Path) -> HoconDocument:
    """Parse ``path`` and find where each of its includes landed.

    :raises HoconError: the file is missing or not valid HOCON (the message names it).
    """
    data = _parse(path)
    includes = tuple(
        _mounted(include, data) if include.exists and include.kind == "file" else include
        for include in find_includes(path)
    )
    return HoconDocument(path, data, includes)


def _parse(path: Path) -> dict[str, Any]:
    from pyhocon import ConfigFactory
    from pyhocon.exceptions import ConfigException
    from pyparsing import ParseBaseException

    if not path.is_file():
        raise HoconError(f"{path}: no such file")
    quiet = logging.getLogger("pyhocon")  # a missing include is our finding, not its warning
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # pyhocon warns with the deprecated Logger.warn
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ConfigFactory.parse_file(str(path))
    except OSError as exc:  # a required include that is missing, or an unreadable file
        raise HoconError(f"{path}: cannot read it or a file it includes: {exc}") from None
    except (ConfigException, ParseBaseException, UnicodeDecodeError) as exc:
        raise HoconError(f"{path}: not valid HOCON: {' '.join(str(exc).split())}") from None
    finally:
        quiet.setLevel(level)
    return plain(tree.as_plain_ordered_dict())


def plain(value: Any) -> Any:
    """Nested mappings as plain dicts (pyhocon returns OrderedDicts)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def find_includes(path: Path, seen: frozenset[Path] = frozenset()) -> list[Include]:
    """Every include of ``path`` and, recursively, of the files it includes."""
    if path in seen or not path.is_file():
        return []
    text = _STRING_OR_COMMENT.sub(_blank_comment, path.read_text(encoding="utf-8"))
    found: list[Include] = []
    for match in _INCLUDE.finditer(text):
        kind = match.group(1) or ("url" if "://" in match.group(2) else "file")
        target = path.parent / match.group(2) if kind == "file" else Path(match.group(2))
        found.append(Include(target, kind, path, kind == "file" and target.is_file()))
        if kind == "file":
            found.extend(find_includes(target, seen | {path}))
    return found


def _blank_comment(match: re.Match[str]) -> str:
    text = match.group(0)
    return text if text.startswith('"') else " " * len(text)


def _mounted(include: Include, whole: dict[str, Any]) -> Include:
    """``include`` with its keys and the place in ``whole`` where they all are."""
    try:
        own = flatten(_parse(include.file))
    except HoconError:
        return include
    if not own:
        return include
    for mount, node in _nodes(whole):
        node_leaves = flatten(node)
        if all(node_leaves.get(k, _MISSING) == v for k, v in own.items()):
            return Include(include.file, include.kind, include.by, True, mount, frozenset(own))
    return Include(include.file, include.kind, include.by, True, None, frozenset(own))


_MISSING = object()


def _nodes(data: dict[str, Any], prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    """Every mapping of ``data`` with its key path, deepest last (pre-order)."""
    yield prefix, data
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _nodes(value, (*prefix, key))


def flatten(data: dict[str, Any], prefix: KeyPath = ()) -> dict[KeyPath, Any]:
    """Leaf key paths of nested mappings (lists are leaves)."""
    leaves: dict[KeyPath, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            leaves.update(flatten(value, (*prefix, key)))
        else:
            leaves[(*prefix, key)] = value
    return leaves
