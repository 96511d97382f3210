"""A user-defined stage kind, referenced from YAML as 'tests.dlflow_airflow.user_stages:Export'."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from dlflow_airflow.stages.base import StageContext, StageKind


class ExportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str


class Export(StageKind):
    needs = ("PREDICT_RESULT",)
    produces = ("EXPORTED",)
    Options = ExportOptions

    def build_operator(self, ctx: StageContext):
        from airflow.providers.standard.operators.empty import EmptyOperator

        return EmptyOperator(**ctx.task_kwargs())


class NotAKind:
    pass
