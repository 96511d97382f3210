"""Input and output paths of the Spark jobs.

- :func:`render_path` fills the placeholders a pipeline may put in an upstream
  path (``{workspace}``, ``{date}``, ``{date_nodash}``).
- :func:`require_complete` refuses a partition without its ``_SUCCESS`` marker.
- :func:`latest_partition` finds the newest complete ``dt=`` partition.
- :func:`discard` removes a staging folder that must not be committed.
"""

from __future__ import annotations

import re

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.dependencies import DependencyError, base_values, render
from dlflow_airflow.contract.layout import SUCCESS_MARKER, check_date

PLACEHOLDERS = ("workspace", "date", "date_nodash")
_DT_RE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


class PlaceholderError(ValueError):
    """A path names a placeholder that jobs do not fill, or is malformed."""


class PartitionNotFoundError(FileNotFoundError):
    """An input partition is absent or has no ``_SUCCESS`` marker."""


def render_path(
    template: str, *, workspace: str, date: str, extra: dict[str, str] | None = None
) -> str:
    """``template`` with its placeholders filled for one run.

    :param extra: more placeholders, e.g. resolved merge dependencies.
    :raises PlaceholderError: for an unknown placeholder (naming it and the
        allowed ones), a format spec or conversion, or unbalanced braces.
    """
    values = {**base_values(workspace, date), **(extra or {})}
    try:
        return render(template, values)
    except DependencyError as exc:
        raise PlaceholderError(str(exc)) from None


def require_complete(uri: str, what: str) -> None:
    """Raise :class:`PartitionNotFoundError` unless ``uri`` exists with its marker.

    :param what: how the error names the input, e.g. ``"merge source 'user_profile'"``.
    """
    if not storage.exists(uri):
        raise PartitionNotFoundError(f"{what}: no data at {uri}")
    if not storage.is_complete(uri):
        raise PartitionNotFoundError(
            f"{what}: {uri} is incomplete (no {SUCCESS_MARKER} marker at {uri}/{SUCCESS_MARKER})"
        )


def latest_partition(root: str, date: str) -> str | None:
    """The newest complete ``<root>/dt=<d>`` with ``d <= date``, or None."""
    check_date(date)
    dates = sorted(
        (match.group(1) for match in map(_DT_RE.match, storage.list_names(root)) if match),
        reverse=True,
    )
    for candidate in dates:
        if candidate <= date and storage.is_complete(f"{root}/dt={candidate}"):
            return f"{root}/dt={candidate}"
    return None


def discard(uri: str) -> None:
    """Delete a staging folder (no error if it is already gone)."""
    from pyarrow import fs

    filesystem, path = storage.resolve(uri)
    if filesystem.get_file_info(path).type != fs.FileType.NotFound:
        filesystem.delete_dir(path)
