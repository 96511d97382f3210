"""The one rule for a run's partition date, asset-triggered runs included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dlflow_airflow.contract.run_date import EVENT_DATE, RunDateError, TriggeringEvent, run_date

MODEL = "dlflow.model.m1"


def _event(day: object, asset: str = MODEL) -> TriggeringEvent:
    return TriggeringEvent(asset, {EVENT_DATE: day, "partition": "file:///ws/model/TAG=m1/dt=x"})


def test_a_logical_date_is_the_date_whatever_the_events_say():
    logical = datetime(2026, 1, 4, tzinfo=UTC)
    assert run_date(logical, [_event("2026-01-09")]) == "2026-01-04"
    # Airflow's ds is the UTC day of the logical date.
    late = datetime(2026, 1, 4, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert run_date(late) == "2026-01-05"


def test_an_asset_triggered_run_takes_the_newest_event_date():
    events = [
        _event("2026-01-04"),
        _event("2026-01-11"),
        _event("2026-01-07", "dlflow.evaluate.m1"),
    ]
    assert run_date(None, events, datetime(2026, 2, 1, tzinfo=UTC)) == "2026-01-11"


def test_undated_events_are_ignored_beside_dated_ones_and_refused_alone():
    assert run_date(None, [TriggeringEvent("by.hand", {}), _event("2026-01-04")]) == "2026-01-04"
    with pytest.raises(RunDateError, match=r"\(by\.hand, dlflow\.model\.m1\) name no partition"):
        run_date(None, [TriggeringEvent("by.hand", {}), _event("Jan 4"), _event(None)])


def test_a_run_with_neither_takes_the_day_it_was_due():
    assert run_date(None, [], datetime(2026, 3, 1, 0, 5, tzinfo=UTC)) == "2026-03-01"
