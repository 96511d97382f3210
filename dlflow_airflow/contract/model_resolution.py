"""Which model partition a stage uses: ``model.date`` resolved against the run's date.

Pure Python (file access through :mod:`dlflow_airflow.contract.storage`), so evaluate,
Spark predict and the CLI share one rule::

    resolved = resolve_model_partition(layout, "dnn_v1", "latest", "2026-01-05", blessed_only=True)
    resolved.date, resolved.uri, resolved.blessed

- ``same``: the model trained for the run's own date.
- ``YYYY-MM-DD``: the model of that date.
- ``latest``: the newest model dated on or before the run's date.

A model partition counts only when complete (``_SUCCESS``). The evaluate
stage's quality gate writes a ``BLESSED`` marker into the model partition
when the model passes (and removes it when it does not): :func:`record_blessing`,
called by evaluate and by whoever approves a model by hand; with
``blessed_only`` an unblessed model is never chosen. :func:`resolve_champion`
names the blessed model a new one is compared with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.layout import Layout, check_date

BLESSED_MARKER = "BLESSED"
MANIFEST_FILE = "manifest.json"
"""Written by train beside the model: what it knew (fmap checksum, params, task...)."""


class ModelNotFoundError(FileNotFoundError):
    """No complete (or, when required, blessed) model where one was expected."""


class ModelNotBlessedError(ModelNotFoundError):
    """The model exists but did not pass the evaluate stage's quality gate."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model partition chosen for a run.

    :param date: the model date (also the date of the fmap it was trained with).
    :param uri: the model partition, e.g. ``<ws>/model/TAG=dnn_v1/dt=2026-01-01``.
    :param blessed: whether the partition holds the ``BLESSED`` marker.
    """

    date: str
    uri: str
    blessed: bool


def blessed_marker(model_uri: str) -> str:
    return f"{model_uri}/{BLESSED_MARKER}"


def is_blessed(model_uri: str) -> bool:
    return storage.exists(blessed_marker(model_uri))


def record_blessing(model_uri: str, blessed: bool, evidence: Mapping[str, Any]) -> None:
    """Write the model partition's ``BLESSED`` marker (holding ``evidence``), or remove it."""
    marker = blessed_marker(model_uri)
    if blessed:
        storage.write_text(marker, json.dumps(dict(evidence), indent=1, sort_keys=True))
    elif storage.exists(marker):
        filesystem, path = storage.resolve(marker)
        filesystem.delete_file(path)


def record_decision(model_uri: str, decision: Mapping[str, Any]) -> None:
    """Put a human decision on the model (e.g. who approved it, when) into its manifest,
    as its ``approval`` entry (replacing an earlier one).

    :raises ModelNotFoundError: the model partition has no manifest.
    """
    uri = f"{model_uri}/{MANIFEST_FILE}"
    if not storage.exists(uri):
        raise ModelNotFoundError(f"model {model_uri} has no {MANIFEST_FILE}: no decision recorded")
    manifest = json.loads(storage.read_text(uri))
    manifest["approval"] = dict(decision)
    storage.write_text(uri, json.dumps(manifest, indent=1))


def read_decision(model_uri: str) -> dict[str, Any] | None:
    """The human decision recorded on the model (its manifest's ``approval`` entry), or None."""
    uri = f"{model_uri}/{MANIFEST_FILE}"
    if not storage.exists(uri):
        return None
    return json.loads(storage.read_text(uri)).get("approval")


def resolve_model_partition(
    layout: Layout, model_tag: str, date_spec: str, run_date: str, *, blessed_only: bool
) -> ResolvedModel:
    """The model partition for ``date_spec`` (``same | latest | YYYY-MM-DD``) on ``run_date``.

    :param layout: the pipeline's storage layout.
    :param model_tag: ``model.tag`` of the pipeline.
    :param date_spec: ``model.date`` of the pipeline.
    :param run_date: the run's partition date, YYYY-MM-DD.
    :param blessed_only: refuse models that did not pass the quality gate.
    :raises ModelNotFoundError: no complete model matches (the message names the path).
    :raises ModelNotBlessedError: ``same`` or a fixed date names an unblessed model.
    :raises PartitionDateError: ``run_date`` or ``date_spec`` is not a valid date.
    """
    check_date(run_date)
    if date_spec == "latest":
        return _latest(layout, model_tag, run_date, blessed_only)
    model_date = run_date if date_spec == "same" else check_date(date_spec)
    uri = layout.model(model_tag, model_date)
    if not storage.is_complete(uri):
        raise ModelNotFoundError(
            f"no complete model at {uri} (model.date {date_spec!r}, run date {run_date}); "
            "did the train stage run for that date?"
        )
    blessed = is_blessed(uri)
    if blessed_only and not blessed:
        raise ModelNotBlessedError(
            f"model {uri} is not blessed: it missed the evaluate stage's quality gate "
            "(see that task's log and the evaluate partition's metrics.json)"
        )
    return ResolvedModel(date=model_date, uri=uri, blessed=blessed)


def _latest(
    layout: Layout, model_tag: str, run_date: str, blessed_only: bool, exclude: str | None = None
) -> ResolvedModel:
    root = layout.root("model", model_tag)
    skipped: list[str] = []
    for model_date in storage.complete_dates(root, run_date):
        if model_date == exclude:
            continue
        uri = layout.model(model_tag, model_date)
        blessed = is_blessed(uri)
        if blessed_only and not blessed:
            skipped.append(model_date)
            continue
        return ResolvedModel(date=model_date, uri=uri, blessed=blessed)
    kind = "blessed model" if blessed_only else "complete model"
    hint = f"; complete but not blessed: {', '.join(skipped)}" if skipped else ""
    raise ModelNotFoundError(f"no {kind} under {root} dated on or before {run_date}{hint}")


def resolve_champion(
    layout: Layout, model_tag: str, run_date: str, exclude: str
) -> ResolvedModel | None:
    """The champion a new model is compared with: the newest complete blessed model of
    ``model_tag`` dated on or before ``run_date``, other than ``exclude`` (the new
    model's own date); None when there is none (the tag's first model).
    """
    try:
        return _latest(layout, model_tag, run_date, blessed_only=True, exclude=exclude)
    except ModelNotFoundError:
        return None
