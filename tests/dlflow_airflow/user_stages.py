"""A user-defined stage kind, referenced from YAML as 'tests.dlflow_airflow.user_stages:Export'."""

from __future__ import annotations

import builtins
import time
from typing import Literal

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


class HostileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: str = "TypeError"  # a builtin exception's name, or "sleep"
    when: Literal["validate", "build"] = "validate"


def _misbehave(options: HostileOptions) -> None:
    if options.error == "sleep":
        time.sleep(60)
    if options.error == "leave_open":  # as if DAG.__exit__ had been interrupted
        from airflow.sdk import DAG

        DAG(dag_id="left_open", schedule=None).__enter__()
        raise RuntimeError("left a DAG open")
    raise getattr(builtins, options.error)("boom from a stage kind")


class Hostile(StageKind):
    """A user stage kind that fails the way it is told, when validated or built."""

    produces = ("HOSTILE",)
    Options = HostileOptions

    def needed_tags(self, options: HostileOptions) -> tuple[str, ...]:
        if options.when == "validate":
            _misbehave(options)
        return ()

    def build_operator(self, ctx: StageContext):
        _misbehave(ctx.options)
