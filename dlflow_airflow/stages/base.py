"""The stage-kind API: what a kind declares and what it gets when it builds its task.

Built-in kinds live beside this module; a user kind subclasses
:class:`StageKind` (see the README) and is found by
:mod:`dlflow_airflow.pipeline.kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field

from dlflow_airflow.contract.artifacts import StageRef, job_tags
from dlflow_airflow.contract.jobconf import JobConfig, job_document
from dlflow_airflow.contract.options import NoOptions
from dlflow_airflow.contract.schema import StrictModel

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from dlflow_airflow.pipeline.spec import PipelineSpec


class StageCommon(StrictModel):
    """Keys every stage accepts, whatever its kind.

    :param kind: the stage kind; defaults to the stage's name.
    :param needs: extra tags this stage waits for, beyond its kind's own.
    :param produces: extra tags this stage provides, beyond its kind's own.
    :param pool: the Airflow pool its task runs in (e.g. ``spark`` or ``gpu``).
    :param retries: overrides the pipeline's ``default_args.retries``.
    """

    kind: str | None = None
    needs: list[str] = []
    produces: list[str] = []
    pool: str | None = None
    retries: int | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class StageContext:
    """What a kind gets when it builds its task.

    :param stage: the stage's name, built-in job (None for user kinds) and resolved tags.
    """

    name: str
    spec: PipelineSpec
    options: BaseModel
    common: StageCommon
    stage: StageRef

    def job_body(self) -> dict[str, Any]:
        """The ``--job`` document (see :mod:`dlflow_airflow.contract.jobconf`) for this stage."""
        spec = self.spec
        return job_document(
            spec.workspace, spec.feature, spec.model, spec.buckets, self.options, self.stage
        )

    def job_config(self, date: str) -> JobConfig:
        """The job config this stage's task renders for ``date``."""
        return JobConfig.from_body(date, self.job_body())

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
    A built-in kind sets ``job`` instead of ``needs``/``produces``: its tags
    come from the artifact contract.
    """

    job: ClassVar[str | None] = None
    needs: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[BaseModel]] = NoOptions

    def needed_tags(self, options: BaseModel) -> tuple[str, ...]:
        return job_tags(self.job, options).needs if self.job else self.needs

    def produced_tags(self, options: BaseModel) -> tuple[str, ...]:
        return job_tags(self.job, options).produces if self.job else self.produces

    def build_operator(self, ctx: StageContext) -> BaseOperator:
        raise NotImplementedError(f"{type(self).__name__} does not build an operator")
