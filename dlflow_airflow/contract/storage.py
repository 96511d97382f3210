"""Small file operations on workspace URIs (``file://``, ``hdfs://``, ``s3://``...).

Backed by ``pyarrow.fs``, imported lazily so DAG parsing never pays for it.
Spark jobs use Spark's own Hadoop file system for their table output; these
helpers serve the pieces written from plain Python (fmap, metrics, models,
markers), and every stage commits its output with :func:`commit`.

A job writes into ``<artifact root>/_staging/<partition>-<id>`` and commits
it into place. A job killed before its commit leaves that folder behind; the
next commit into the same artifact root removes the ones nothing has written
to for :data:`STALE_STAGING_HOURS` (env ``DLFLOW_STALE_STAGING_HOURS``: a
number of hours, or ``off``). Removal goes by age only, so a staging folder a
running job still writes to is kept.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dlflow_airflow.contract.layout import SUCCESS_MARKER, check_date

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
# Files Spark and Hadoop leave next to the part files (_SUCCESS, .crc, _temporary):
# a reader of a partition skips every path with a part under one of these prefixes.
IGNORED_PREFIXES = ("_", ".")
STALE_STAGING_HOURS = 24.0
"""Hours without a write after which a staging folder counts as abandoned."""
STALE_STAGING_ENV = "DLFLOW_STALE_STAGING_HOURS"
_STAGING_NAME = re.compile(r"^.+-[0-9a-f]{12}$")


def resolve(uri: str) -> tuple[FileSystem, str]:
    """The pyarrow file system and in-filesystem path for ``uri``."""
    from pyarrow import fs

    if "://" not in uri:
        return fs.LocalFileSystem(), uri
    return fs.FileSystem.from_uri(uri)


def exists(uri: str) -> bool:
    from pyarrow import fs

    filesystem, path = resolve(uri)
    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def modified(uri: str) -> Any:
    """The modification time of a file (None if absent): a cheap commit stamp."""
    from pyarrow import fs

    filesystem, path = resolve(uri)
    info = filesystem.get_file_info(path)
    return None if info.type == fs.FileType.NotFound else info.mtime_ns


def is_complete(partition_uri: str) -> bool:
    """True when the partition holds its ``_SUCCESS`` marker."""
    return exists(f"{partition_uri}/{SUCCESS_MARKER}")


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def read_bytes(uri: str) -> bytes:
    filesystem, path = resolve(uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def write_text(uri: str, text: str) -> None:
    filesystem, path = resolve(uri)
    parent = path.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode("utf-8"))


def list_names(uri: str) -> list[str]:
    """Names (not paths) of the entries directly inside a folder; [] if absent."""
    from pyarrow import fs

    filesystem, path = resolve(uri)
    if filesystem.get_file_info(path).type == fs.FileType.NotFound:
        return []
    infos = filesystem.get_file_info(fs.FileSelector(path, recursive=False))
    return sorted(info.base_name for info in infos)


def part_files(filesystem: FileSystem, path: str) -> list[str]:
    """The files under ``path`` (of ``filesystem``) a reader of the partition reads:
    none under an :data:`IGNORED_PREFIXES` name, sorted."""
    from pyarrow import fs

    files = []
    for info in filesystem.get_file_info(fs.FileSelector(path, recursive=True)):
        parts = info.path[len(path) :].strip("/").split("/")
        if info.type == fs.FileType.File and not any(
            part.startswith(IGNORED_PREFIXES) for part in parts
        ):
            files.append(info.path)
    return sorted(files)


_DT_NAME = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


def complete_dates(root: str, date: str) -> Iterator[str]:
    """Dates ``d <= date`` of the complete ``<root>/dt=<d>`` partitions, newest first."""
    check_date(date)
    dates = sorted((m.group(1) for m in map(_DT_NAME.match, list_names(root)) if m), reverse=True)
    for day in dates:
        if day <= date and is_complete(f"{root}/dt={day}"):
            yield day


def discard(uri: str) -> None:
    """Delete a folder (a staging folder, checkpoints); no error if it is already gone."""
    from pyarrow import fs

    filesystem, path = resolve(uri)
    if filesystem.get_file_info(path).type != fs.FileType.NotFound:
        filesystem.delete_dir(path)


def staging_uri(final_uri: str) -> str:
    """A unique sibling of ``final_uri`` to write into before committing."""
    parent, name = final_uri.rstrip("/").rsplit("/", 1)
    return f"{parent}/{STAGING_DIR}/{name}-{uuid.uuid4().hex[:12]}"


def stale_staging_hours(value: float | str | None = None) -> float | None:
    """The age after which a staging folder is removed; None: never.

    :param value: hours, or ``off``; None reads :data:`STALE_STAGING_ENV`,
        else :data:`STALE_STAGING_HOURS`.
    :raises ValueError: not ``off`` nor a positive number.
    """
    if value is None:
        value = os.environ.get(STALE_STAGING_ENV) or STALE_STAGING_HOURS
    if str(value).strip().lower() == "off":
        return None
    try:
        hours = float(value)
    except ValueError:
        hours = 0.0
    if not hours > 0:
        raise ValueError(
            f"{STALE_STAGING_ENV}={value!r}: expected a positive number of hours, or 'off'"
        )
    return hours


def commit(staging: str, final: str, *, stale_hours: float | str | None = None) -> None:
    """Replace ``final`` by the finished ``staging`` folder, then mark it complete.

    The marker is written last, inside ``staging`` before the rename, so a
    reader sees either no partition, the old one, or the whole new one with
    its ``_SUCCESS``. Then the staging folders beside ``staging`` older than
    ``stale_hours`` (see :func:`stale_staging_hours`) are removed.
    """
    hours = stale_staging_hours(stale_hours)  # a bad setting fails before the commit
    filesystem, staging_path = resolve(staging)
    _, final_path = resolve(final)
    marker = f"{staging_path}/{SUCCESS_MARKER}"
    with filesystem.open_output_stream(marker):
        pass
    from pyarrow import fs

    if filesystem.get_file_info(final_path).type != fs.FileType.NotFound:
        filesystem.delete_dir(final_path)
    filesystem.create_dir(final_path.rsplit("/", 1)[0], recursive=True)
    filesystem.move(staging_path, final_path)
    root, _ = staging.rstrip("/").rsplit("/", 1)
    if hours is not None and root.rsplit("/", 1)[-1] == STAGING_DIR:
        remove_stale_staging(root, hours)


def remove_stale_staging(root: str, hours: float, now: float | None = None) -> list[str]:
    """Delete the staging folders in ``root`` (an ``<artifact root>/_staging``) that
    nothing has written to for ``hours``; returns their URIs.

    A folder's age is that of the newest entry inside it (or its own, when
    empty); one whose times are unknown is kept. A failure is logged, never raised.
    """
    cutoff = (time.time() if now is None else now) - hours * 3600
    removed = []
    for name in list_names(root):
        uri = f"{root}/{name}"
        try:
            if _STAGING_NAME.match(name) and _last_write(uri) < cutoff:
                discard(uri)
                removed.append(uri)
                log.info("removed the abandoned staging folder %s (older than %gh)", uri, hours)
        except OSError as exc:
            log.warning("could not remove the stale staging folder %s: %s", uri, exc)
    return removed


def _last_write(uri: str) -> float:
    """Seconds since the epoch of the newest write in a folder (inf when unknown)."""
    from pyarrow import fs

    filesystem, path = resolve(uri)
    infos = [filesystem.get_file_info(path)]
    if infos[0].type == fs.FileType.Directory:
        infos += filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    times = [info.mtime_ns for info in infos if info.mtime_ns is not None]
    return max(times) / 1e9 if times else float("inf")
