"""Small file operations on workspace URIs (``file://``, ``hdfs://``, ``s3://``...).

Backed by ``pyarrow.fs``, imported lazily so DAG parsing never pays for it.
Spark jobs use Spark's own Hadoop file system for their table output; these
helpers serve the pieces written from plain Python (fmap, metrics, models,
markers).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dlflow_airflow.contract.layout import SUCCESS_MARKER, check_date

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem


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


def is_complete(partition_uri: str) -> bool:
    """True when the partition holds its ``_SUCCESS`` marker."""
    return exists(f"{partition_uri}/{SUCCESS_MARKER}")


def read_text(uri: str) -> str:
    filesystem, path = resolve(uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")


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
    return f"{parent}/_staging/{name}-{uuid.uuid4().hex[:12]}"


def commit(staging: str, final: str) -> None:
    """Replace ``final`` by the finished ``staging`` folder, then mark it complete.

    The marker is written last, inside ``staging`` before the rename, so a
    reader sees either no partition, the old one, or the whole new one with
    its ``_SUCCESS``.
    """
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
