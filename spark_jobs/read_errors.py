"""A file Spark cannot read, reported by partition and file instead of a JVM stack trace.

Spark fails a read of a truncated or corrupt file (Parquet, ORC, CSV...)
with a ``FAILED_READ_FILE`` error whose parameters name the file, somewhere
in the Java cause chain of the Python exception (in Spark Connect mode, the
error the server sent: its condition and parameters, without the cause).
:func:`naming_bad_files` turns that into a :class:`CorruptInputError` naming
the input, its partition and the file::

    with naming_bad_files({raw_uri: "encode input (raw features)"}):
        spark.read.parquet(raw_uri).count()
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

FAILED_READ = "FAILED_READ_FILE"
_REASON_CHARS = 300


class CorruptInputError(ValueError):
    """An input file cannot be read: truncated, corrupt, or not in its format."""


@dataclass(frozen=True)
class FailedRead:
    """The file a Spark read failed on, and the deepest cause's message."""

    file: str
    reason: str


@contextmanager
def naming_bad_files(inputs: Mapping[str, str]) -> Iterator[None]:
    """Raise :class:`CorruptInputError` for a file Spark failed to read inside the block.

    :param inputs: input partition URI -> what it is (``"merge input (the seed)"``);
        a file under none of them is named with its folder as the partition.
    """
    try:
        yield
    except CorruptInputError:
        raise
    except Exception as exc:
        found = failed_read(exc)
        if found is None:
            raise
        raise CorruptInputError(describe(found, inputs)) from None


def describe(found: FailedRead, inputs: Mapping[str, str]) -> str:
    """The one-line message: what, partition, file, reason and what to do."""
    partition, what = owner(found.file, inputs)
    return (
        f"{what}: cannot read file {found.file} of partition {partition}: {found.reason}. "
        "The file is truncated, corrupt or not in the input's format: rewrite that "
        "partition (rerun what produced it)"
    )


def owner(file: str, inputs: Mapping[str, str]) -> tuple[str, str]:
    """The input partition holding ``file`` (the deepest match) and what it is."""
    path = _path(file)
    matches = [
        (len(_path(uri)), uri, what)
        for uri, what in inputs.items()
        if path == _path(uri) or path.startswith(_path(uri) + "/")
    ]
    if matches:
        _, uri, what = max(matches)
        return uri, what
    return posixpath.dirname(file), "input"


def _path(uri: str) -> str:
    """The path part of a URI (``file:/a``, ``file:///a``, ``hdfs://nn/a`` -> ``/a``)."""
    return (urlparse(uri).path if ":" in uri.split("/", 1)[0] else uri).rstrip("/")


def failed_read(exc: BaseException) -> FailedRead | None:
    """The file of a ``FAILED_READ_FILE`` error behind ``exc``, if there is one."""
    for java in _java_exceptions(exc):
        chain = list(_causes(java))
        for error in chain:
            path = _failed_path(error)
            if path:
                return FailedRead(_file_uri(path), _reason(chain[-1], path))
    return None


def _file_uri(path: str) -> str:
    """Hadoop's ``file:/a`` as ``file:///a``, the workspace's spelling."""
    if path.startswith("file:/") and not path.startswith("file:///"):
        return "file:///" + path[len("file:/") :].lstrip("/")
    return path


def _java_exceptions(exc: BaseException) -> Iterator[Any]:
    """The Java exceptions behind ``exc`` and its Python causes (Py4J or captured), or
    the server's error itself in Spark Connect mode (its condition and parameters)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        java = getattr(current, "java_exception", None) or getattr(current, "_origin", None)
        if java is not None:
            yield java
        elif callable(getattr(current, "getMessageParameters", None)):
            yield current
        current = current.__cause__ or current.__context__


def _causes(java: Any, limit: int = 20) -> Iterator[Any]:
    """``java`` and its Java causes, outermost first."""
    for _ in range(limit):
        if java is None:
            return
        yield java
        java = _call(java, "getCause")


def _failed_path(error: Any) -> str | None:
    condition = _call(error, "getCondition") or ""
    if not str(condition).startswith(FAILED_READ):
        return None
    parameters = _call(error, "getMessageParameters")
    return None if parameters is None else dict(parameters).get("path")


def _reason(error: Any, path: str) -> str:
    """The first line of the root cause's message, the file's name in it as "the file"."""
    message = str(_call(error, "getMessage") or _call(error, "toString") or "").strip()
    line = message.splitlines()[0] if message else "unknown error"
    line = re.sub(r"^\[[A-Z_.]+\] | +SQLSTATE: \w+$", "", line).rstrip(" .")  # Connect's
    line = re.sub(r"(?:file )?\S*" + re.escape(posixpath.basename(path)), "the file", line)
    return line if len(line) <= _REASON_CHARS else line[:_REASON_CHARS] + "..."


def _call(java: Any, method: str) -> Any:
    """``java.method()``, or None when the object has no such method."""
    try:
        return getattr(java, method)()
    except Exception:  # a Py4J error: not a SparkThrowable, or the gateway is gone
        return None
