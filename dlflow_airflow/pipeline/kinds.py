"""Finding a stage kind by name: built-ins, then the entry-point group, then ``module:Class``."""

from __future__ import annotations

from dlflow_airflow.contract.plugins import PluginLookupError, lookup
from dlflow_airflow.pipeline.errors import Issue, UnknownStageKindError
from dlflow_airflow.stages.base import StageKind
from dlflow_airflow.stages.builtin import BUILTIN_KINDS

ENTRY_POINT_GROUP = "dlflow_airflow.stages"


def resolve_kind(kind: str, *, source: str, path: str) -> type[StageKind]:
    """The class of a stage kind, or :class:`UnknownStageKindError` naming what exists."""
    try:
        found = lookup(
            kind,
            what="stage kind",
            builtins=BUILTIN_KINDS,
            entry_point_group=ENTRY_POINT_GROUP,
            hint="a user kind is written 'package.module:ClassName'",
        )
    except PluginLookupError as exc:
        raise UnknownStageKindError(source, [Issue(path, str(exc))]) from None
    if isinstance(found, type) and issubclass(found, StageKind):
        return found
    raise UnknownStageKindError(
        source,
        [Issue(path, f"{kind!r} is not a subclass of dlflow_airflow.stages.base.StageKind")],
    )
