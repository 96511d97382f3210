"""How a date range maps to runs, and each run to its partition date (``{{ ds }}``).

A daily pipeline gets one run per day of a backfill range, both ends
included; the run's logical date is the partition date its tasks render. The
same rule holds for ``@weekly`` (one run per Sunday in the range).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.pipelines import base_pipeline


def _backfill_dates(schedule: str, start: str, end: str) -> list[str]:
    """The partition dates ``airflow backfill create --from-date start --to-date end`` runs."""
    from airflow.models.backfill import _get_info_list
    from airflow.serialization.serialized_objects import DagSerialization

    doc = {**base_pipeline(), "schedule": schedule}
    dag = DagSerialization.from_dict(
        DagSerialization.to_dict(build_dag(Pipeline.from_data(doc, source="p.yaml")))
    )
    infos = _get_info_list(
        from_date=datetime.fromisoformat(start).replace(tzinfo=UTC),
        to_date=datetime.fromisoformat(end).replace(tzinfo=UTC),
        reverse=False,
        dag=dag,
    )
    return [info.logical_date.date().isoformat() for info in infos]


def test_daily_range_gives_one_run_per_day_both_ends_included():
    dates = _backfill_dates("@daily", "2026-01-02", "2026-01-04")
    assert dates == ["2026-01-02", "2026-01-03", "2026-01-04"]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("@weekly", ["2026-01-04", "2026-01-11"]), ("0 6 * * 1-5", ["2026-01-05", "2026-01-06"])],
)
def test_other_schedules_give_their_own_dates(schedule: str, expected: list[str]):
    assert _backfill_dates(schedule, "2026-01-03", "2026-01-12")[: len(expected)] == expected


def test_tasks_render_the_logical_date_as_partition():
    dag = build_dag(Pipeline.from_data(base_pipeline(), source="p.yaml"))
    assert dag.get_task("merge").application_args[:2] == ["--date", "{{ ds }}"]
    # Logical dates, not partition keys (why: docs/operations.md, "Dates and partitions").
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
