"""What a stage task leaves for the run report in the Airflow UI: its record and its link.

When a stage task starts, the bookkeeping records in the task's XCom
(:data:`STAGE_RECORD_KEY`) the job document it runs with, its partition date
and why it runs, skips or stops. The report page (:mod:`dlflow_airflow.ui`)
derives the stage's partitions from that record through the artifact
contract, exactly as the task did: the record is what the task really ran
with (the DAG version of its run, the date it rendered), read from Airflow's
database, so the api-server needs neither the DAG files nor the YAML.

Every stage operator also carries :class:`RunReportLink`, an extra link to
the report's tab on the run's page. It only builds a URL: the worker renders
it when the task ends and Airflow keeps it in XCom.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

STAGE_RECORD_KEY = "dlflow_stage"
"""The XCom key of a stage task's :class:`StageRecord`."""
REPORT_VIEW = "dlflow-report"
"""The ``url_route`` of the report's tab on a DAG run's page (the plugin's external view)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRecord:
    """What a stage task ran with, as its XCom keeps it.

    :param date: the partition date the task rendered (``stage_date``).
    :param body: the stage's job document (None: a user kind whose options are
        not JSON; its partitions are unknown).
    :param reason: why it ran, skipped or stopped, in the bookkeeping's words.
    """

    date: str
    body: dict[str, Any] | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"date": self.date, "body": self.body, "reason": self.reason}

    @classmethod
    def from_json(cls, doc: Any) -> StageRecord | None:
        """The record of an XCom value; None for anything else (never raises)."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("date"), str):
            return None
        body = doc.get("body")
        return cls(
            date=doc["date"],
            body=dict(body) if isinstance(body, Mapping) else None,
            reason=str(doc.get("reason") or ""),
        )


def record_stage(operator: Any, context: Any, reason: str) -> None:
    """Push the task's :class:`StageRecord`; a failure to do so only logs a warning."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:  # not run by Airflow (a unit test calling execute)
        return
    record = StageRecord(str(operator.stage_date), operator.stage_body, reason)
    try:
        ti.xcom_push(key=STAGE_RECORD_KEY, value=record.to_json())
    except Exception:  # the report is a view: never fail a stage over it
        log.warning(
            "dlflow: could not record %s for the run report", operator.task_id, exc_info=True
        )


def report_url(dag_id: str, run_id: str, base_url: str | None = None) -> str:
    """The report's tab on the run's page in the Airflow UI.

    :param base_url: the UI's address; ``[api] base_url`` when not given.
    """
    if base_url is None:
        from airflow.sdk.configuration import conf

        base_url = conf.get("api", "base_url", fallback="") or ""
    run = f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{base_url.rstrip('/')}/{run}/plugin/{REPORT_VIEW}"


class RunReportLink(BaseOperatorLink):
    """The extra link of every stage task: the run report of its DAG run."""

    name = "DLFlow run report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return report_url(ti_key.dag_id, ti_key.run_id)
