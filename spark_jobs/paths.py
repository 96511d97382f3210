"""Input and output paths of the Spark jobs.

- :func:`render_path` fills the placeholders a pipeline may put in an upstream
  path (``{workspace}``, ``{date}``, ``{date_nodash}``).
- :func:`require_complete` refuses a partition without its ``_SUCCESS`` marker.
- :class:`Staging` writes outputs beside their partitions and commits them
  together, or discards them.

Which partitions a job reads and writes is the artifact contract's answer
(:func:`dlflow_airflow.contract.artifacts.stage_io`), not this module's.
"""

from __future__ import annotations

from types import TracebackType

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.dependencies import DependencyError, base_values, render
from dlflow_airflow.contract.layout import SUCCESS_MARKER

PLACEHOLDERS = ("workspace", "date", "date_nodash")


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


class Staging:
    """The staging folders of one run, committed in the order they were made.

    Use as a context manager: whatever :meth:`commit` did not move into place
    (the job failed first, or a commit failed) is discarded on exit, so a
    failed run leaves no half-written partition and no staging folder behind::

        with Staging() as staging:
            frame.write.parquet(staging.folder(final))
            staging.commit()
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, str]] = []

    def folder(self, final: str) -> str:
        """A fresh staging folder for the partition ``final``."""
        staging = storage.staging_uri(final)
        self._pending.append((staging, final))
        return staging

    def commit(self) -> None:
        """Commit every staged partition, in the order they were staged."""
        while self._pending:
            staging, final = self._pending[0]
            storage.commit(staging, final)
            self._pending.pop(0)

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for staging, _ in self._pending:
            storage.discard(staging)
        self._pending.clear()
