"""``{{ ds }}`` in every run of a stage, asset-triggered ones included.

Airflow gives an asset-triggered run no logical date, so its context has no
``ds``, and a stage's ``{{ ds }}`` could not render. Each stage operator (and
the approval task) renders its templates after :func:`fill_run_date` has put
the run's partition date there, by the one rule of
:mod:`dlflow_airflow.contract.run_date`: the newest ``date`` among the
triggering asset events. A run with a logical date is left as Airflow made it.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from dlflow_airflow.contract.run_date import TriggeringEvent, run_date


class RunDateTemplates:
    """Mixin for an operator whose templates use ``{{ ds }}`` / ``{{ ds_nodash }}``:
    they render the run's partition date in runs without a logical date too."""

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        fill_run_date(context)
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]


def fill_run_date(context: MutableMapping[str, Any]) -> None:
    """Set ``ds`` and ``ds_nodash`` in a run without a logical date, from the rule.

    :raises RunDateError: the run was triggered by asset events that name no date.
    """
    if "ds" in context:
        return
    dag_run = context.get("dag_run")
    day = run_date(None, _triggering(context), getattr(dag_run, "run_after", None))
    context["ds"] = day
    context["ds_nodash"] = day.replace("-", "")


def _triggering(context: MutableMapping[str, Any]) -> Iterator[TriggeringEvent]:
    # Keyed by asset and by each alias the event came through: an event may repeat.
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            asset = getattr(getattr(event, "asset", None), "name", "?")
            yield TriggeringEvent(asset, getattr(event, "extra", None) or {})
