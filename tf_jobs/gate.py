"""The quality gate: metric bounds a model must meet to be blessed.

``evaluate: {gate: {auc: {min: 0.7, max_drop_vs_blessed: 0.005}, log_loss: {max: 0.5}}}``.
A model that meets every bound gets a ``BLESSED`` marker in its partition
(:func:`dlflow_airflow.contract.model_resolution.record_blessing`); one that
misses any loses it, and predict with ``model.date: latest`` passes it over.

``max_drop_vs_blessed`` compares the new model (the challenger) with the
champion, the blessed model of the same tag scored on the same rows: the
challenger misses when it is worse than the champion by more than the drop,
worse meaning lower or higher as :data:`~dlflow_airflow.contract.options.METRIC_DIRECTION`
says. Without a champion (the tag's first model) only ``min``/``max`` apply.

A model with several heads (multilabel, multitask) is gated head by head:
``gate: {click.auc: {min: 0.7}, revenue.mse: {max: 4}}``, the metrics being
flattened to ``<head>.<metric>`` (:func:`~dlflow_airflow.contract.tasks.metric_key`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlflow_airflow.contract.options import metric_direction, metric_name
from dlflow_airflow.contract.tasks import HEAD_METRICS, Head

DROP = "max_drop_vs_blessed"


class GateMissedError(RuntimeError):
    """The model missed the gate and the stage is set to fail (``gate_miss: fail``)."""


class GateKeyError(ValueError):
    """A gate key names no head of the model (or a bare metric of a model with several)."""


@dataclass(frozen=True)
class Champion:
    """The blessed model the new one is compared with, and its metrics on the same rows.

    :param model_date: the champion's model date.
    :param model: its model partition.
    """

    model_date: str
    model: str
    metrics: Mapping[str, Any]


@dataclass(frozen=True)
class Miss:
    """One bound the model missed.

    :param bound: ``min``, ``max`` or ``max_drop_vs_blessed``.
    :param limit: the bound's value (for a drop: the drop allowed).
    :param champion: the champion's value and date, for a drop.
    """

    metric: str
    value: float | None
    bound: str
    limit: float
    champion: float | None = None
    champion_date: str | None = None

    def describe(self) -> str:
        if self.value is None:
            return f"{self.metric} was not computed (needs {self.bound} {self.limit:g})"
        if self.bound == DROP:
            assert self.champion is not None
            higher = metric_direction(self.metric) == "higher"
            sign, op = ("<", "-") if higher else (">", "+")
            return (
                f"{self.metric} {self.value:.4f} {sign} champion's {self.champion:.4f} {op} "
                f"{DROP} {self.limit:g} (champion model of {self.champion_date}; "
                f"{'down' if higher else 'up'} by {abs(self.value - self.champion):.4f})"
            )
        sign = "<" if self.bound == "min" else ">"
        return (
            f"{self.metric} {self.value:.4f} {sign} {self.bound} {self.limit:g} "
            f"(by {abs(self.value - self.limit):.4f})"
        )


def check_gate(
    metrics: Mapping[str, Any],
    gate: Mapping[str, Mapping[str, Any]],
    champion: Champion | None = None,
) -> list[Miss]:
    """Every bound the metrics miss; a metric the job did not compute is a miss too.

    :param champion: the blessed model to compare with for ``max_drop_vs_blessed``;
        None: no champion, those bounds are not applied.
    """
    misses: list[Miss] = []
    for metric, bounds in sorted(gate.items()):
        value = metrics.get(metric)
        for bound in ("min", "max"):
            limit = bounds.get(bound)
            if limit is None:
                continue
            if value is None:
                misses.append(Miss(metric, None, bound, float(limit)))
            elif (bound == "min" and value < limit) or (bound == "max" and value > limit):
                misses.append(Miss(metric, float(value), bound, float(limit)))
        drop = bounds.get(DROP)
        if drop is not None and champion is not None:
            miss = drop_miss(metric, value, float(drop), champion)
            if miss is not None:
                misses.append(miss)
    return misses


def drop_miss(metric: str, value: float | None, drop: float, champion: Champion) -> Miss | None:
    """The miss of a challenger worse than the champion by more than ``drop``, else None.

    A metric the champion has no value for cannot be compared: no miss.
    """
    best = champion.metrics.get(metric)
    if best is None:
        return None
    if value is None:
        return Miss(metric, None, DROP, drop, float(best), champion.model_date)
    higher = metric_direction(metric) == "higher"
    if (value >= best - drop) if higher else (value <= best + drop):
        return None
    return Miss(metric, float(value), DROP, drop, float(best), champion.model_date)


def check_gate_keys(gate: Mapping[str, Any], heads: Sequence[Head]) -> None:
    """Refuse gate keys that cannot address the model's heads, before anything is scored.

    A one-head model takes bare metrics (``auc``); one with several takes
    ``<head>.<metric>`` (``click.auc``), and bare ``rows``.

    :raises GateKeyError: naming the keys and the heads the model has.
    """
    names = [head.name for head in heads]
    by_name = {head.name: head for head in heads}
    problems = []
    for key in sorted(gate):
        head = key[: -len(metric_name(key)) - 1] if "." in key else None
        if len(heads) == 1 and head is not None:
            problems.append(f"{key}: this model has one head; name the metric alone")
        elif len(heads) > 1 and head is None and key != "rows":
            problems.append(f"{key}: this model has several heads; name one ({names[0]}.{key})")
        elif len(heads) > 1 and head is not None and head not in names:
            close = difflib.get_close_matches(head, names, n=1)
            hint = f"; did you mean {close[0]}.{metric_name(key)}?" if close else ""
            problems.append(f"{key}: no head {head!r}{hint}")
        else:
            kind = by_name[head].kind if head is not None else heads[0].kind
            computed = HEAD_METRICS[kind]
            if metric_name(key) not in computed:
                problems.append(
                    f"{key}: a {kind} head has no {metric_name(key)}; its metrics: "
                    f"{', '.join(computed)}"
                )
    if problems:
        raise GateKeyError(
            f"gate keys do not fit the model's heads {names}: " + "; ".join(problems)
        )
