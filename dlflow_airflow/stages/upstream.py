"""The ``wait_upstream`` kind: a sensor that waits for the merge's dependencies."""

from __future__ import annotations

from dlflow_airflow.contract.options import WaitUpstreamOptions
from dlflow_airflow.stages.base import StageContext, StageKind


class WaitUpstreamStage(StageKind):
    """Waits (reschedule mode, or deferred to the triggerer) until every dependency passes
    its checkers."""

    job = "wait_upstream"
    Options = WaitUpstreamOptions

    def build_operator(self, ctx: StageContext):
        from dlflow_airflow.sensors.upstream import UpstreamPartitionSensor

        options: WaitUpstreamOptions = ctx.options
        return UpstreamPartitionSensor(
            dependencies={k: v.model_dump(mode="json") for k, v in options.dependencies.items()},
            workspace=ctx.spec.workspace,
            poke_interval=options.poke_interval_seconds,
            timeout=options.timeout_hours * 3600,
            mode=options.mode,
            deferrable=options.deferrable,
            stage_body=ctx.job_body(),
            **ctx.task_kwargs(),
        )
