"""Upstream dependencies, resolved from a run's date (dmflow's ``dependencies``).

Shared by the merge job (which reads what they resolve to) and the
``wait_upstream`` sensor (which waits until they resolve). Pure Python: the
checkers use :mod:`dlflow_airflow.contract.storage` (pyarrow, imported lazily), never Spark.

Three kinds, one per YAML shape::

    dependencies:
      profile:                        # a dated partition
        path: "{workspace}/upstream/profile/dt={date}"
        offset_days: 0                # shift the run date first
        degrade_days: 2               # then fall back up to 2 days older
        format: parquet               # for the row-count checker
        check: {success: true, min_size_mb: 1, min_rows: 1000}
      yesterday: {date: {offset_days: -1, format: "%Y%m%d"}}
      region: {static: cn}

Each resolves to a string that merge paths (and SQL files) reference as
``{profile}``, ``{yesterday}``, ``{region}``.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from datetime import date as Date
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator

from dlflow_airflow.contract.schema import EnvPath, Name, StrictModel

log = logging.getLogger(__name__)

BASE_PLACEHOLDERS = ("workspace", "date", "date_nodash", "year", "month", "day")


class DependencyError(ValueError):
    """A dependency is misconfigured (e.g. a path names an unknown placeholder)."""


class UpstreamMissingError(FileNotFoundError):
    """No candidate partition of a dependency passed its checks."""


class Checks(StrictModel):
    """What makes an upstream partition ready.

    :param success: require the ``_SUCCESS`` marker.
    :param min_size_mb: require at least this many MB of files (dmflow's capacity).
    :param min_rows: require at least this many rows (read from file metadata).
    """

    success: bool = True
    min_size_mb: float | None = Field(default=None, gt=0)
    min_rows: int | None = Field(default=None, ge=1)


class PathDependency(StrictModel):
    path: EnvPath
    offset_days: int = 0
    degrade_days: int = Field(default=0, ge=0, le=366)
    format: Literal["parquet", "orc", "json", "csv"] = "parquet"
    check: Checks = Checks()


class DateValue(StrictModel):
    offset_days: int = 0
    format: str = "%Y-%m-%d"


class DateDependency(StrictModel):
    date: DateValue


class StaticDependency(StrictModel):
    static: str | int | float | bool

    @field_validator("static", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        return value.isoformat() if isinstance(value, Date) else value


DEPENDENCY_KINDS = ("PathDependency", "DateDependency", "StaticDependency")
"""The tags of the dependency union (error locations name them; messages need not)."""


def _dependency_kind(value: Any) -> str | None:
    """The kind a dependency names by its key, so an error speaks of that kind alone."""
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict):
        for key, kind in (("path", "PathDependency"), ("date", "DateDependency")):
            if key in value:
                return kind
        return "StaticDependency"
    return None


Dependency = Annotated[
    Annotated[PathDependency, Tag("PathDependency")]
    | Annotated[DateDependency, Tag("DateDependency")]
    | Annotated[StaticDependency, Tag("StaticDependency")],
    Discriminator(_dependency_kind),
]
"""A dependency: its kind is chosen by its key (``path``, ``date`` or ``static``)."""


@dataclass(frozen=True)
class Resolved:
    """What one dependency resolved to."""

    name: str
    value: str
    day: str | None = None  # the partition date used, for path dependencies
    degraded_days: int = 0


def render(template: str, values: dict[str, str], *, where: str = "path") -> str:
    """Fill ``{name}`` placeholders; unknown ones are an error listing the allowed names."""
    allowed = ", ".join("{" + name + "}" for name in values)
    try:
        fields = [
            (name, spec, conv)
            for _, name, spec, conv in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:
        raise DependencyError(f"{where} {template!r} is malformed ({exc}); use {allowed}") from None
    for name, spec, conv in fields:
        if name not in values:
            raise DependencyError(
                f"{where} {template!r} has unknown placeholder {{{name}}}; allowed: {allowed}"
            )
        if spec or conv:
            raise DependencyError(
                f"{where} {template!r}: placeholder {{{name}}} takes no format spec or conversion"
            )
    return template.format(**values)


def base_values(workspace: str, day: str) -> dict[str, str]:
    from dlflow_airflow.contract.layout import check_date, normalize_workspace

    check_date(day)
    return {
        "workspace": normalize_workspace(workspace),
        "date": day,
        "date_nodash": day.replace("-", ""),
        "year": day[:4],
        "month": day[5:7],
        "day": day[8:10],
    }


def shift(day: str, days: int) -> str:
    return (Date.fromisoformat(day) + timedelta(days=days)).isoformat()


def total_size(uri: str) -> int:
    """Bytes of every file under ``uri``."""
    from pyarrow import fs

    from dlflow_airflow.contract import storage

    filesystem, path = storage.resolve(uri)
    infos = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    return sum(info.size or 0 for info in infos if info.type == fs.FileType.File)


def count_rows(uri: str, fmt: str) -> int:
    """Rows of a table partition, from file metadata where the format has it."""
    import pyarrow.dataset as ds

    from dlflow_airflow.contract import storage

    filesystem, path = storage.resolve(uri)
    dataset = ds.dataset(path, format=fmt, filesystem=filesystem, exclude_invalid_files=True)
    return dataset.count_rows()


def check_partition(uri: str, checks: Checks, fmt: str = "parquet") -> str | None:
    """None when ``uri`` passes ``checks``, else why it does not."""
    from dlflow_airflow.contract import storage

    if not storage.exists(uri):
        return "absent"
    if checks.success and not storage.is_complete(uri):
        return "no _SUCCESS marker"
    if checks.min_size_mb is not None:
        size_mb = total_size(uri) / 2**20
        if size_mb < checks.min_size_mb:
            return f"{size_mb:.3f} MB, below min_size_mb {checks.min_size_mb}"
    if checks.min_rows is not None:
        rows = count_rows(uri, fmt)
        if rows < checks.min_rows:
            return f"{rows} rows, below min_rows {checks.min_rows}"
    return None


def resolve_one(name: str, dep: Dependency, *, workspace: str, day: str) -> Resolved:
    """Resolve one dependency for the run date ``day``.

    :raises UpstreamMissingError: naming every path tried and why it failed.
    """
    if isinstance(dep, StaticDependency):
        return Resolved(name, str(dep.static))
    if isinstance(dep, DateDependency):
        shifted = Date.fromisoformat(shift(day, dep.date.offset_days))
        return Resolved(name, shifted.strftime(dep.date.format))
    start = shift(day, dep.offset_days)
    tried = []
    for back in range(dep.degrade_days + 1):
        candidate = shift(start, -back)
        uri = render(dep.path, base_values(workspace, candidate), where=f"dependency {name!r} path")
        problem = check_partition(uri, dep.check, dep.format)
        if problem is None:
            if back:
                log.warning(
                    "dependency %r degraded %d day(s): using %s (%s)", name, back, uri, tried
                )
            return Resolved(name, uri, candidate, back)
        tried.append(f"{uri}: {problem}")
    raise UpstreamMissingError(
        f"dependency {name!r} is not ready for {day} (offset_days {dep.offset_days}, "
        f"degrade_days {dep.degrade_days}); tried: " + "; ".join(tried)
    )


def resolve_all(
    dependencies: dict[str, Dependency], *, workspace: str, day: str
) -> dict[str, Resolved]:
    """Every dependency, in order; the first one not ready raises."""
    clash = sorted(set(dependencies) & set(BASE_PLACEHOLDERS))
    if clash:
        raise DependencyError(f"dependency names {clash} are reserved placeholders")
    return {
        name: resolve_one(name, dep, workspace=workspace, day=day)
        for name, dep in dependencies.items()
    }


def parse_dependencies(raw: dict[str, object]) -> dict[str, Dependency]:
    """Validate a ``dependencies`` mapping (e.g. from a job's JSON options)."""
    from pydantic import TypeAdapter

    return TypeAdapter(dict[Name, Dependency]).validate_python(raw)
