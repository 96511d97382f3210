"""The quality gate: metric bounds a model must meet to be blessed.

``evaluate: {gate: {auc: {min: 0.7}, log_loss: {max: 0.5}}}``. A model that
meets every bound gets a ``BLESSED`` marker in its partition (see
:mod:`dlflow_airflow.contract.model_resolution`); one that misses any loses it, and
predict with ``model.date: latest`` passes it over.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.model_resolution import blessed_marker


class GateMissedError(RuntimeError):
    """The model missed the gate and the stage is set to fail (``gate_miss: fail``)."""


@dataclass(frozen=True)
class Miss:
    metric: str
    value: float | None
    bound: str  # "min" or "max"
    limit: float

    def describe(self) -> str:
        if self.value is None:
            return f"{self.metric} was not computed (needs {self.bound} {self.limit:g})"
        sign = "<" if self.bound == "min" else ">"
        return (
            f"{self.metric} {self.value:.4f} {sign} {self.bound} {self.limit:g} "
            f"(by {abs(self.value - self.limit):.4f})"
        )


def check_gate(metrics: Mapping[str, Any], gate: Mapping[str, Mapping[str, Any]]) -> list[Miss]:
    """Every bound the metrics miss; a metric the job did not compute is a miss too."""
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
    return misses


def record_blessing(model_uri: str, blessed: bool, evidence: Mapping[str, Any]) -> None:
    """Write (or remove) the model partition's ``BLESSED`` marker."""
    marker = blessed_marker(model_uri)
    if blessed:
        storage.write_text(marker, json.dumps(dict(evidence), indent=1, sort_keys=True))
    elif storage.exists(marker):
        filesystem, path = storage.resolve(marker)
        filesystem.delete_file(path)
