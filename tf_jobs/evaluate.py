"""Evaluate a committed model on one encoded partition and apply the quality gate.

Run by the evaluate operator::

    python -m tf_jobs.evaluate --date 2026-01-02 --job '{"workspace": ..., "model": ...}'

The artifact contract (:func:`~dlflow_airflow.contract.artifacts.stage_io`)
names the model and the fmap of its date: ``model.date`` ``same``, a date, or
``latest`` (the newest *blessed* model, the same rule predict uses). The job
checks the model's manifest against the fmap, scores
``encoded/TAG=<feature>/dt=<date>`` (or the TFRecords with ``input:
tfrecord``) and commits ``metrics.json`` plus PNG plots to
``evaluate/TAG=<model>/dt=<date>``. Then the gate: a model meeting every
bound gets ``BLESSED`` in its partition, one missing any loses it. The last
line printed is the task's result: the metrics, ``output`` and ``blessed``.

With ``max_drop_vs_blessed`` in the gate, the champion (the blessed model
encode found, see :class:`~dlflow_airflow.contract.artifacts.ChampionRecord`)
is scored too, on the run's rows encoded with its own fmap (the
CHAMPION_FEATURE partition), and the new model may not be worse than it by
more than the drop; metrics.json records both. With ``approval`` a model
meeting every bound is not blessed here: it awaits a person's decision.

Options: :class:`~dlflow_airflow.contract.options.EvaluateOptions` (``input``,
``gate``, ``gate_miss``, ``plots``, ``batch_size``, ``threads``, ``seed``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    CHAMPION_FEATURE,
    EVALUATE_RESULT,
    FMAP,
    METRICS_FILE,
    TRAINED_MODEL,
    ChampionRecord,
    stage_io,
)
from dlflow_airflow.contract.fmap import FeatureMap, FmapError
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.model_resolution import record_blessing
from tf_jobs import inputs, model_io, models, plots
from tf_jobs.gate import Champion, GateMissedError, Miss, check_gate
from tf_jobs.harness import committing, configure_tensorflow, run_job
from tf_jobs.metrics import BinaryMetrics, RegressionMetrics
from tf_jobs.stage_input import StageInput, open_input, open_stage_input

Accumulator = BinaryMetrics | RegressionMetrics


@dataclass(frozen=True)
class EvaluationPlan:
    """What one evaluation scores, settled before TensorFlow starts.

    :param model_uri: the model partition the contract names for the run.
    :param model_date: its date (also the date of the fmap it was trained with).
    :param output: the evaluate partition this run commits.
    :param champion_rows: the CHAMPION_FEATURE partition, when the gate compares
        the model with the champion.
    """

    job: JobConfig
    model_uri: str
    model_date: str
    fmap: FeatureMap
    task: str
    data: StageInput
    output: str
    champion_rows: str | None = None

    @property
    def title(self) -> str:
        return f"{self.job.model.tag}@{self.model_date} on {self.job.date}"


def run(job: JobConfig) -> dict[str, Any]:
    """Score the partition, commit metrics and plots, bless or not; returns the result."""
    plan = plan_evaluation(job)
    accumulator = score(plan)
    computed = accumulator.result()
    print(f"evaluate {plan.title}: {_summary(computed)} -> {plan.output}", flush=True)
    # Plain {metric: {min, max, ...}} mappings: what check_gate reads and metrics.json records.
    gate = {
        metric: bound.model_dump(exclude_none=True) for metric, bound in job.options.gate.items()
    }
    champion, no_champion = score_champion(plan) if plan.champion_rows else (None, None)
    misses = check_gate(computed, gate, champion)
    # Human approval (gate: {approval: true}): a model meeting every bound waits for a person.
    awaiting = not misses and bool(getattr(job.options, "approval", False))
    blessed = not misses and not awaiting
    metrics = {
        **computed,
        "task": plan.task,
        "date": job.date,
        "model_tag": job.model.tag,
        "model_date": plan.model_date,
        "feature_tag": job.feature.tag,
        "gate": gate_verdict(gate, misses, blessed, awaiting),
    }
    if plan.champion_rows:
        metrics.update(champion_section(champion, no_champion))
    if isinstance(accumulator, BinaryMetrics):
        metrics["calibration_table"] = accumulator.calibration_table()
    commit_metrics(plan, accumulator, metrics)
    evidence = {"evaluated_on": job.date, "metrics": plan.output, "gate": gate}
    if champion is not None:
        evidence["champion"] = champion.model
    record_blessing(plan.model_uri, blessed, evidence)
    apply_gate(plan, gate, misses, awaiting=awaiting)
    result = {k: v for k, v in metrics.items() if k not in ("calibration_table", "gate")}
    result = {**result, "output": plan.output, "blessed": blessed}
    return {**result, "awaiting_approval": True} if awaiting else result


def plan_evaluation(job: JobConfig) -> EvaluationPlan:
    """The contract's model, fmap and partitions for the run; the model checked, the input open.

    :raises ModelNotFoundError: no committed model (or, for ``latest``, no blessed one).
    :raises FmapError: the model was trained with another fmap.
    """
    label = inputs.single_label(job.feature.labels)
    io = stage_io(job)
    model = io.get(TRAINED_MODEL)
    model_io.require_committed(model.uri)
    fmap = FeatureMap.load(io.get(FMAP).uri)
    manifest = check_manifest(model.uri, fmap)
    task = manifest.get("task") or models.get_model(job.model.name).task
    data = open_stage_input(io, job.options.input, fmap, label, task=task, purpose="evaluate")
    compares = job.options.compares_champion
    return EvaluationPlan(
        job=job,
        model_uri=model.uri,
        model_date=model.date,
        fmap=fmap,
        task=task,
        data=data,
        output=io.get(EVALUATE_RESULT).uri,
        champion_rows=io.get(CHAMPION_FEATURE).uri if compares else None,
    )


def score_champion(plan: EvaluationPlan) -> tuple[Champion | None, str | None]:
    """The champion scored on the run's rows encoded with its own fmap, or why there is none.

    :raises ContractError: encode did not record a champion for the run.
    :raises FmapError: the champion was trained with another fmap than its date's.
    """
    assert plan.champion_rows is not None
    record = ChampionRecord.read(plan.champion_rows)
    if record.model_date is None or record.model is None or record.fmap is None:
        reason = record.reason or "encode recorded no champion"
        print(f"gate: no champion to compare with ({reason})", flush=True)
        return None, reason
    fmap = FeatureMap.load(record.fmap)
    if record.fmap_checksum is not None and record.fmap_checksum != fmap.checksum:
        reason = f"the fmap {record.fmap} changed since encode wrote the champion's rows"
        print(f"gate: no champion to compare with ({reason}; rerun encode)", flush=True)
        return None, reason
    task = check_manifest(record.model, fmap).get("task") or plan.task
    if task != plan.task:
        reason = f"the champion {record.model} is a {task} model, this one a {plan.task} model"
        print(f"gate: no champion to compare with ({reason})", flush=True)
        return None, reason
    label = plan.data.label
    data = open_input(plan.champion_rows, "parquet", fmap, label, task=task, purpose="score")
    rival = replace(
        plan, model_uri=record.model, model_date=record.model_date, fmap=fmap, data=data
    )
    metrics = score(rival).result()
    print(f"champion {rival.title}: {_summary(metrics)}", flush=True)
    return Champion(record.model_date, record.model, metrics), None


def gate_verdict(
    gate: dict[str, Any], misses: list[Miss], blessed: bool, awaiting: bool
) -> dict[str, Any]:
    """metrics.json's ``gate`` entry: the bounds, the misses, and whether the model is blessed."""
    verdict = {"bounds": gate, "missed": [m.describe() for m in misses], "blessed": blessed}
    return {**verdict, "awaiting_approval": True} if awaiting else verdict


def champion_section(champion: Champion | None, reason: str | None) -> dict[str, Any]:
    """metrics.json's ``champion`` entry: whom the model was compared with, or why nobody."""
    if champion is None:
        return {"champion": None, "champion_reason": reason}
    entry = {"model_date": champion.model_date, "model": champion.model}
    return {"champion": {**entry, "metrics": dict(champion.metrics)}}


def score(plan: EvaluationPlan) -> Accumulator:
    """Score every row of the input with the model; returns the filled metric accumulator."""
    options = plan.job.options
    tf = configure_tensorflow(options.threads, options.seed)
    model = model_io.load_model(plan.model_uri)
    check_model_inputs(model, plan.fmap, plan.model_uri)
    dataset = plan.data.dataset(inputs.input_options(options, options.batch_size))
    # One traced graph instead of an eager call per batch.
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    accumulator: Accumulator = (
        BinaryMetrics() if plan.task == models.BINARY else RegressionMetrics()
    )
    with plan.data.reading():
        for features, labels in dataset:
            accumulator.update(labels.numpy(), predict(features).numpy())
    return accumulator


def commit_metrics(plan: EvaluationPlan, accumulator: Accumulator, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` (and the plots, unless ``plots: false``) and commit the partition."""
    with committing(plan.output) as staging:
        if plan.job.options.plots:
            metrics["plots"] = _write_plots(accumulator, staging, plan.title)
        storage.write_text(f"{staging}/{METRICS_FILE}", json.dumps(metrics, indent=1))


def apply_gate(
    plan: EvaluationPlan, gate: dict[str, Any], misses: list[Miss], *, awaiting: bool = False
) -> None:
    """Report the gate's outcome; a miss fails the task with ``gate_miss: fail``.

    :param awaiting: every bound is met, but a person approves the blessing.
    :raises GateMissedError: a bound was missed and ``gate_miss`` is ``fail``.
    """
    if not misses:
        met = f"{len(gate)} bound(s) met"
        if awaiting:
            print(f"gate: model {plan.model_uri} awaits approval ({met})", flush=True)
        else:
            print(f"gate: model {plan.model_uri} is blessed ({met})", flush=True)
        return
    missed = "; ".join(m.describe() for m in misses)
    print(f"gate: model {plan.model_uri} is NOT blessed; missed: {missed}", flush=True)
    if plan.job.options.gate_miss == "fail":
        raise GateMissedError(f"model {plan.model_uri} missed the gate: {missed}")


def check_manifest(model_uri: str, fmap: FeatureMap) -> dict[str, Any]:
    """The model's manifest; refuses a model trained on another fmap (its inputs differ)."""
    manifest = model_io.read_manifest(model_uri)
    trained_with = manifest.get("fmap_checksum")
    if trained_with != fmap.checksum:
        raise FmapError(
            f"model {model_uri} was trained with fmap {trained_with}, but the fmap of "
            f"{fmap.feature_tag}/{fmap.model_date} is {fmap.checksum}"
        )
    return manifest


def check_model_inputs(model: Any, fmap: FeatureMap, model_uri: str) -> None:
    names = sorted(tensor.name for tensor in model.inputs)
    expected = sorted(fmap.input_columns())
    if names != expected:
        raise FmapError(f"model {model_uri} takes inputs {names}, but the fmap gives {expected}")


def _write_plots(accumulator: Accumulator, folder: str, title: str) -> list:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plots skipped: matplotlib is not installed in the job's environment", flush=True)
        return []
    if isinstance(accumulator, BinaryMetrics):
        return plots.binary_plots(accumulator, folder, title)
    return plots.regression_plots(accumulator, folder, title)


def _summary(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v if v is not None else 'n/a'}"
        for k, v in metrics.items()
    )


def main(argv: Sequence[str] | None = None) -> None:
    run_job("evaluate", run, argv)


if __name__ == "__main__":
    main()
