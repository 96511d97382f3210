"""The context Airflow's task runner renders a task's templates with, for a given DAG run."""

from __future__ import annotations

import uuid
from typing import Any


def runtime_context(task: Any, run: Any) -> dict[str, Any]:
    """``task``'s template context in ``run`` (an execution-API ``DagRun``), first try."""
    from airflow.sdk.api.datamodels._generated import TIRunContext
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    ti = RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(),
        task_id=task.task_id,
        dag_id=task.dag_id,
        run_id=run.run_id,
        try_number=1,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        task=task,
        start_date=run.start_date,
        max_tries=0,
    )
    ti._ti_context_from_server = TIRunContext(dag_run=run, max_tries=0)
    return ti.get_template_context()
