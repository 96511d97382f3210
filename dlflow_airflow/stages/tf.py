"""Built-in kinds that run a ``tf_jobs`` program through a runner (local, kubernetes, docker)."""

from __future__ import annotations

from typing import ClassVar

from dlflow_airflow.contract.options import EvaluateOptions, TfJobOptions, TrainOptions
from dlflow_airflow.stages.base import StageContext, StageKind


class TfStage(StageKind):
    """A ``tf_jobs`` program; the runner its options name (one lookup) builds the task."""

    job: ClassVar[str]
    Options = TfJobOptions

    def build_operator(self, ctx: StageContext):
        from dlflow_airflow.runners import TfTask, get_runner

        options = ctx.options
        task = TfTask(
            job=self.job,
            job_body=ctx.job_body(),
            settings=getattr(options, options.runner, None),
            workers=getattr(options, "workers", 1),
            task_kwargs=ctx.task_kwargs(),
        )
        return get_runner(options.runner).build_operator(task)


class TrainStage(TfStage):
    job = "train"
    Options = TrainOptions


class EvaluateStage(TfStage):
    job = "evaluate"
    Options = EvaluateOptions
