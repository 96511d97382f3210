"""Which date a run processes: the one rule for every kind of Airflow run.

A run's partition date is

- its logical date, when it has one (a scheduled run, a trigger with a date,
  a backfill): Airflow's ``{{ ds }}``;
- for an asset-triggered run (Airflow gives it no logical date): the newest
  :data:`EVENT_DATE` among the extras of the asset events that triggered it.
  Every dlflow stage's event carries the date of the run that wrote the
  partition, so scoring triggered by a trained model scores the training
  run's date;
- for any other run without a logical date (a trigger that gave none): the
  UTC day it was due to run (Airflow's ``run_after``).

Pure Python: the operators read the run from Airflow's context and ask
:func:`run_date` (see :mod:`dlflow_airflow.operators.run_date`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dlflow_airflow.contract.layout import PartitionDateError, check_date

EVENT_DATE = "date"
"""The key of an asset event's ``extra`` naming the date of the run that wrote the partition."""


class RunDateError(ValueError):
    """An asset-triggered run whose events name no partition date."""


@dataclass(frozen=True)
class TriggeringEvent:
    """One asset event that triggered a run: its asset's name and its ``extra``."""

    asset: str
    extra: Mapping[str, Any]


def run_date(
    logical_date: datetime | None,
    events: Iterable[TriggeringEvent] = (),
    run_after: datetime | None = None,
) -> str:
    """The partition date (YYYY-MM-DD) of a run; see the module docstring for the rule.

    :param logical_date: the run's logical date (None for an asset-triggered run).
    :param events: the asset events that triggered the run.
    :param run_after: when the run was due; the date of a run with neither.
    :raises RunDateError: there are triggering events but none carries a valid
        :data:`EVENT_DATE` (the message names the assets and what an event must carry).
    """
    if logical_date is not None:
        return _utc_day(logical_date)
    events = tuple(events)
    if events:
        return newest_event_date(events)
    if run_after is None:
        raise RunDateError("the run has no logical date, no triggering asset event, no run_after")
    return _utc_day(run_after)


def newest_event_date(events: Iterable[TriggeringEvent]) -> str:
    """The newest valid :data:`EVENT_DATE` among ``events``.

    :raises RunDateError: none carries one.
    """
    dates, undated = [], set()
    for event in events:
        try:
            dates.append(check_date(event.extra.get(EVENT_DATE)))
        except PartitionDateError:
            undated.add(event.asset)
    if dates:
        return max(dates)
    raise RunDateError(
        f"the asset events that triggered this run ({', '.join(sorted(undated))}) name no "
        f"partition date: each needs extra {{{EVENT_DATE!r}: 'YYYY-MM-DD'}}, which every "
        "dlflow stage writes; an event posted by hand must carry it too"
    )


def _utc_day(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date().isoformat()
