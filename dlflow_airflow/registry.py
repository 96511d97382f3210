"""Stage kinds: what each stage needs and produces, and how it becomes a task.

A kind is found by name in this order: the built-ins, the entry-point group
``dlflow_airflow.stages``, then a ``module:Class`` path (DLFlow's user tasks).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from dlflow_airflow.errors import Issue, UnknownStageKindError

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from dlflow_airflow.spec import PipelineSpec

ENTRY_POINT_GROUP = "dlflow_airflow.stages"


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageCommon(BaseModel):
    """Keys every stage accepts, whatever its kind.

    :param kind: the stage kind; defaults to the stage's name.
    :param needs: extra tags this stage waits for, beyond its kind's own.
    :param produces: extra tags this stage provides, beyond its kind's own.
    :param pool: the Airflow pool its task runs in (e.g. ``spark`` or ``gpu``).
    :param retries: overrides the pipeline's ``default_args.retries``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str | None = None
    needs: list[str] = []
    produces: list[str] = []
    pool: str | None = None
    retries: int | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class StageContext:
    """What a kind gets when it builds its task."""

    name: str
    spec: PipelineSpec
    options: BaseModel
    common: StageCommon

    def job_body(self) -> dict[str, Any]:
        """The ``--job`` document (see :mod:`dlflow_airflow.jobconf`) for this stage."""
        spec = self.spec
        return {
            "workspace": spec.workspace,
            "feature": spec.feature.model_dump(mode="json"),
            "model": spec.model.model_dump(mode="json"),
            "buckets": {k: v.model_dump(mode="json") for k, v in spec.buckets.items()},
            "options": self.options.model_dump(mode="json"),
        }

    def task_kwargs(self) -> dict[str, Any]:
        """Airflow ``BaseOperator`` arguments that come from the stage's common keys."""
        kwargs: dict[str, Any] = {"task_id": self.name}
        if self.common.pool:
            kwargs["pool"] = self.common.pool
        if self.common.retries is not None:
            kwargs["retries"] = self.common.retries
        return kwargs


class StageKind:
    """Base class of every stage kind, built-in or user-defined.

    Subclasses set ``needs``, ``produces`` and ``Options`` (a pydantic model of
    the stage's own YAML keys, strict) and implement :meth:`build_operator`.
    """

    needs: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[BaseModel]] = NoOptions

    def needed_tags(self, options: BaseModel) -> tuple[str, ...]:
        return self.needs

    def produced_tags(self, options: BaseModel) -> tuple[str, ...]:
        return self.produces

    def build_operator(self, ctx: StageContext) -> BaseOperator:
        raise NotImplementedError(f"{type(self).__name__} does not build an operator")


def builtin_kinds() -> dict[str, type[StageKind]]:
    from dlflow_airflow.stages import BUILTIN_KINDS

    return dict(BUILTIN_KINDS)


@cache
def _entry_point_kinds() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_kind_names() -> list[str]:
    return sorted({*builtin_kinds(), *_entry_point_kinds()})


def resolve_kind(kind: str, *, source: str, path: str) -> type[StageKind]:
    """The class of a stage kind, or :class:`UnknownStageKindError` naming what exists."""
    builtins = builtin_kinds()
    if kind in builtins:
        return builtins[kind]
    entry_point = _entry_point_kinds().get(kind)
    if entry_point is not None:
        return _check_kind(entry_point.load(), kind, source, path)
    if ":" in kind:
        module_name, _, attr = kind.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownStageKindError(
                source,
                [Issue(path, f"cannot import module {module_name!r} for kind {kind!r}: {exc}")],
            ) from None
        if not hasattr(module, attr):
            raise UnknownStageKindError(
                source, [Issue(path, f"module {module_name!r} has no attribute {attr!r}")]
            )
        return _check_kind(getattr(module, attr), kind, source, path)
    known = known_kind_names()
    hint = difflib.get_close_matches(kind, known, n=1)
    message = f"unknown stage kind {kind!r}; known kinds: {', '.join(known)}"
    if hint:
        message += f"; did you mean {hint[0]!r}?"
    message += " (a user kind is written 'package.module:ClassName')"
    raise UnknownStageKindError(source, [Issue(path, message)])


def _check_kind(obj: Any, kind: str, source: str, path: str) -> type[StageKind]:
    if isinstance(obj, type) and issubclass(obj, StageKind):
        return obj
    raise UnknownStageKindError(
        source, [Issue(path, f"{kind!r} is not a subclass of dlflow_airflow.registry.StageKind")]
    )
