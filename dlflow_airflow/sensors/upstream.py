"""The upstream-partition sensor behind the ``wait_upstream`` stage kind.

It checks the same dependencies, with the same checkers (``_SUCCESS``,
``min_size_mb``, ``min_rows``) and ``degrade_days``, as the merge job, so a
DAG waits for its upstream data instead of failing at merge. Pure Python
(pyarrow file metadata), no Spark.

With ``deferrable=True`` the sensor checks once and, if not ready, hands the
waiting to :class:`~dlflow_airflow.triggers.upstream.UpstreamPartitionTrigger` in the
triggerer, so no worker slot is held at all while it waits.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from dlflow_airflow.contract.dependencies import (
    DependencyError,
    PathDependency,
    UpstreamMissingError,
    parse_dependencies,
    resolve_all,
)
from dlflow_airflow.operators.bookkeeping import StageBookkeeping


class UpstreamPartitionWaiter(BaseSensorOperator):
    """Succeeds once every dependency resolves for the run's date (no run bookkeeping).

    :param dependencies: name -> dependency (see :mod:`dlflow_airflow.contract.dependencies`).
    :param workspace: fills ``{workspace}`` in dependency paths.
    :param date: the run date, ``YYYY-MM-DD`` (templated; default ``{{ ds }}``).
    :param deferrable: wait in the triggerer (:mod:`dlflow_airflow.triggers.upstream`)
        instead of in a worker slot.

    Other keyword arguments (``poke_interval``, ``timeout``, ``mode``...) are
    Airflow's ``BaseSensorOperator``'s; ``stage_body`` is the run bookkeeping's
    (:class:`~dlflow_airflow.operators.bookkeeping.StageBookkeeping`).
    """

    # Only the run date: dependency paths take {date} placeholders filled by
    # contract.dependencies, never Jinja, so YAML strings reach the checks verbatim.
    template_fields = ("date",)
    upstream_paths: tuple[str, ...] = ()
    """The partitions the path dependencies resolved to, once ready (OpenLineage's inputs)."""

    def __init__(
        self,
        *,
        dependencies: dict[str, Any],
        workspace: str,
        date: str = "{{ ds }}",
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        parse_dependencies(dependencies)  # fail at parse time, not at run time
        self.dependencies = dependencies
        self.workspace = workspace
        self.date = date
        self.deferrable = deferrable

    def _resolve(self) -> dict[str, str]:
        parsed = parse_dependencies(self.dependencies)
        resolved = resolve_all(parsed, workspace=self.workspace, day=self.date)
        return {name: item.value for name, item in resolved.items()}

    def _ready(self, values: dict[str, str]) -> dict[str, str]:
        """Log what the dependencies resolved to and keep the paths among them."""
        self.log.info("upstream ready: %s", values)
        parsed = parse_dependencies(self.dependencies)
        self.upstream_paths = tuple(
            values[name]
            for name, dep in parsed.items()
            if isinstance(dep, PathDependency) and name in values
        )
        return values

    def poke(self, context: Any) -> Any:
        try:
            values = self._resolve()
        except UpstreamMissingError as exc:
            self.log.info("upstream not ready: %s", exc)
            return False
        from airflow.sdk import PokeReturnValue

        return PokeReturnValue(is_done=True, xcom_value=self._ready(values))

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        try:
            values = self._resolve()
        except UpstreamMissingError as exc:
            self.log.info("upstream not ready, deferring: %s", exc)
        else:
            return self._ready(values)
        self.defer(
            trigger=self.build_trigger(),
            method_name="execute_complete",
            # A backstop only: the trigger reports its own deadline with the paths tried.
            timeout=timedelta(seconds=self.timeout + 2 * self.poke_interval),
        )

    def build_trigger(self) -> Any:
        """The trigger (:mod:`dlflow_airflow.triggers.upstream`) this sensor defers to."""
        from dlflow_airflow.triggers.upstream import UpstreamPartitionTrigger

        return UpstreamPartitionTrigger(
            dependencies=self.dependencies,
            workspace=self.workspace,
            date=self.date,
            poke_interval=self.poke_interval,
            deadline=time.time() + self.timeout,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, str]:
        """Resume after the trigger fired: the resolved values, or raise with why not.

        :raises AirflowSensorTimeout: the deadline passed; the message names each path tried.
        :raises DependencyError: the trigger found a dependency misconfigured.
        """
        status = event.get("status")
        if status == "success":
            return self._ready(event["values"])
        message = event.get("message", f"unexpected trigger event {event!r}")
        if status == "timeout":
            from airflow.sdk.exceptions import AirflowSensorTimeout

            raise AirflowSensorTimeout(f"upstream not ready after {self.timeout:.0f} s: {message}")
        raise DependencyError(f"waiting for upstream failed: {message}")


class UpstreamPartitionSensor(StageBookkeeping, UpstreamPartitionWaiter):
    """The ``wait_upstream`` stage: :class:`UpstreamPartitionWaiter` with every stage's
    run bookkeeping (``params.stages``); its OpenLineage inputs are the partitions it
    found ready."""

    def lineage_extra_inputs(self) -> tuple[str, ...]:
        return self.upstream_paths
