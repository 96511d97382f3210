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

Each head of the model (:meth:`FeatureMap.heads
<dlflow_airflow.contract.fmap.FeatureMap.heads>`) is scored by its own
accumulator: binary, regression or multiclass (:mod:`tf_jobs.metrics`).
metrics.json of a one-head model holds its metrics at the top (a multiclass
head adds ``per_class`` and ``confusion_matrix``, also written as
``confusion_matrix.json``); a model with several heads has each head's
metrics under ``heads: {<head>: {...}}`` and, at the top, ``rows`` and every
number flattened as ``<head>.<metric>`` (``click.auc``): what the gate, the
champion comparison and the task's result read.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from dlflow_airflow.contract.tasks import MULTICLASS, REGRESSION, Head, TaskError, metric_key
from tf_jobs import inputs, model_io, plots
from tf_jobs.gate import Champion, GateMissedError, Miss, check_gate, check_gate_keys
from tf_jobs.harness import committing, configure_tensorflow, run_job
from tf_jobs.heads import split_labels, split_outputs
from tf_jobs.metrics import BinaryMetrics, MulticlassMetrics, RegressionMetrics
from tf_jobs.stage_input import StageInput, open_input, open_stage_input, stage_heads

Accumulator = BinaryMetrics | RegressionMetrics | MulticlassMetrics

CONFUSION_FILE = "confusion_matrix.json"
RESULT_MAX_CLASSES = 20
"""A multiclass head with more classes keeps its per-class metrics and confusion matrix
out of the task's result (XCom); metrics.json has them all."""


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
    heads: list[Head]
    data: StageInput
    output: str
    champion_rows: str | None = None

    @property
    def title(self) -> str:
        return f"{self.job.model.tag}@{self.model_date} on {self.job.date}"


def accumulator_for(head: Head) -> Accumulator:
    """The metrics a head of this kind is scored with."""
    if head.kind == MULTICLASS:
        return MulticlassMetrics(head.classes)
    if head.kind == REGRESSION:
        return RegressionMetrics()
    return BinaryMetrics()


@dataclass
class Scores:
    """One metric accumulator per head of the model, filled batch by batch."""

    heads: list[Head]
    accumulators: dict[str, Accumulator] = field(init=False)

    def __post_init__(self) -> None:
        self.accumulators = {head.name: accumulator_for(head) for head in self.heads}

    def update(self, labels: object, outputs: object) -> None:
        """Add one batch: labels and model outputs as numpy (arrays or dicts of them)."""
        truth = split_labels(labels, self.heads)
        predicted = split_outputs(outputs, self.heads)
        for head in self.heads:
            self.accumulators[head.name].update(truth[head.name], predicted[head.name])

    def by_head(self) -> dict[str, dict[str, Any]]:
        """Each head's metrics (``result()``), by head name."""
        return {name: accumulator.result() for name, accumulator in self.accumulators.items()}


def flat_metrics(heads: Sequence[Head], by_head: Mapping[str, Mapping[str, Any]]) -> dict:
    """The numbers the gate reads: a one-head model's own, or ``rows`` and every head's
    number as ``<head>.<metric>`` for a model with several."""
    if len(heads) == 1:
        return {k: v for k, v in by_head[heads[0].name].items() if _scalar(v)}
    flat: dict[str, Any] = {"rows": by_head[heads[0].name]["rows"]}
    for head in heads:
        for metric, value in by_head[head.name].items():
            if _scalar(value):
                flat[metric_key(head, metric, heads)] = value
    return flat


def head_record(accumulator: Accumulator, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One head's metrics as metrics.json keeps them, with the tables behind the plots."""
    record = dict(metrics)
    if isinstance(accumulator, BinaryMetrics):
        record["calibration_table"] = accumulator.calibration_table()
    if isinstance(accumulator, MulticlassMetrics):
        record["confusion_matrix"] = accumulator.confusion_matrix()
    return record


def run(job: JobConfig) -> dict[str, Any]:
    """Score the partition, commit metrics and plots, bless or not; returns the result."""
    plan = plan_evaluation(job)
    scores = score(plan)
    by_head = scores.by_head()
    computed = flat_metrics(plan.heads, by_head)
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
    if len(plan.heads) == 1:
        (head,) = plan.heads
        record = head_record(scores.accumulators[head.name], by_head[head.name])
        # The tables go last, after the gate and the champion, as they always have.
        tables = {
            k: record.pop(k) for k in ("calibration_table", "confusion_matrix") if k in record
        }
    else:
        record = computed
        tables = {
            "heads": {
                head.name: head_record(scores.accumulators[head.name], by_head[head.name])
                for head in plan.heads
            }
        }
    metrics = {
        **record,
        "task": plan.task,
        "date": job.date,
        "model_tag": job.model.tag,
        "model_date": plan.model_date,
        "feature_tag": job.feature.tag,
        "gate": gate_verdict(gate, misses, blessed, awaiting),
    }
    if plan.champion_rows:
        metrics.update(champion_section(champion, no_champion))
    metrics.update(tables)
    commit_metrics(plan, scores, metrics)
    evidence = {"evaluated_on": job.date, "metrics": plan.output, "gate": gate}
    if champion is not None:
        evidence["champion"] = champion.model
    record_blessing(plan.model_uri, blessed, evidence)
    apply_gate(plan, gate, misses, awaiting=awaiting)
    result = {**result_metrics(plan.heads, metrics), "output": plan.output, "blessed": blessed}
    return {**result, "awaiting_approval": True} if awaiting else result


def plan_evaluation(job: JobConfig) -> EvaluationPlan:
    """The contract's model, fmap and partitions for the run; the model checked, the input open.

    :raises ModelNotFoundError: no committed model (or, for ``latest``, no blessed one).
    :raises FmapError: the model was trained with another fmap.
    """
    io = stage_io(job)
    model = io.get(TRAINED_MODEL)
    model_io.require_committed(model.uri)
    fmap = FeatureMap.load(io.get(FMAP).uri)
    manifest = check_manifest(model.uri, fmap)
    task = model_io.task_of(manifest, job.model.name)
    heads = stage_heads(job, fmap, task)
    check_gate_keys(job.options.gate, heads)
    data = open_stage_input(io, job.options.input, fmap, heads, task=task, purpose="evaluate")
    compares = job.options.compares_champion
    return EvaluationPlan(
        job=job,
        model_uri=model.uri,
        model_date=model.date,
        fmap=fmap,
        task=task,
        heads=heads,
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
    task = model_io.task_of(check_manifest(record.model, fmap), plan.job.model.name)
    if task != plan.task:
        reason = f"the champion {record.model} is a {task} model, this one a {plan.task} model"
        print(f"gate: no champion to compare with ({reason})", flush=True)
        return None, reason
    try:
        heads = fmap.heads(task)
    except TaskError as exc:
        heads, reason = [], f"the champion's fmap {record.fmap}: {exc}"
    else:
        reason = ""
    if reason or _shape(heads) != _shape(plan.heads):
        reason = reason or (
            f"the champion {record.model} has heads {_shape(heads)}, "
            f"this model {_shape(plan.heads)}"
        )
        print(f"gate: no champion to compare with ({reason})", flush=True)
        return None, reason
    try:
        data = open_input(plan.champion_rows, "parquet", fmap, heads, task=task, purpose="score")
    except inputs.EncodedDataError as exc:  # e.g. a class the champion's fmap never saw
        reason = f"the champion {record.model} cannot score the run's rows: {exc}"
        print(f"gate: no champion to compare with ({reason})", flush=True)
        return None, reason
    rival = replace(
        plan,
        model_uri=record.model,
        model_date=record.model_date,
        fmap=fmap,
        heads=heads,
        data=data,
    )
    metrics = flat_metrics(heads, score(rival).by_head())
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


def score(plan: EvaluationPlan) -> Scores:
    """Score every row of the input with the model; returns the filled metric accumulators."""
    options = plan.job.options
    tf = configure_tensorflow(options.threads, options.seed)
    model = model_io.load_model(plan.model_uri)
    check_model_inputs(model, plan.fmap, plan.model_uri)
    dataset = plan.data.dataset(inputs.input_options(options, options.batch_size))
    # One traced graph instead of an eager call per batch.
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    scores = Scores(plan.heads)

    def numpy(tensors: Any) -> Any:  # a tensor, or a dict of them (one per head)
        return tf.nest.map_structure(lambda tensor: tensor.numpy(), tensors)

    with plan.data.reading():
        for features, labels in dataset:
            scores.update(numpy(labels), numpy(predict(features)))
    return scores


def commit_metrics(plan: EvaluationPlan, scores: Scores, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` (and the plots, unless ``plots: false``) and commit the partition.

    A multiclass head's confusion matrix is also written alone, as
    ``confusion_matrix.json`` (``<head>_confusion_matrix.json`` beside other heads).
    """
    with committing(plan.output) as staging:
        for head in plan.heads:
            accumulator = scores.accumulators[head.name]
            if isinstance(accumulator, MulticlassMetrics):
                confusion = json.dumps(accumulator.confusion_matrix(), indent=1)
                name = _head_prefix(head, plan.heads) + CONFUSION_FILE
                storage.write_text(f"{staging}/{name}", confusion)
        if plan.job.options.plots:
            metrics["plots"] = _write_plots(scores, staging, plan.title)
        storage.write_text(f"{staging}/{METRICS_FILE}", json.dumps(metrics, indent=1))


def result_metrics(heads: Sequence[Head], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What of metrics.json the task's result carries: no gate, no per-head detail, no
    tables (a multiclass head's confusion matrix and per-class metrics only up to
    RESULT_MAX_CLASSES classes)."""
    left_out = {"calibration_table", "gate", "heads"}
    if any(head.kind == MULTICLASS and head.width > RESULT_MAX_CLASSES for head in heads):
        left_out |= {"confusion_matrix", "per_class"}
    return {k: v for k, v in metrics.items() if k not in left_out}


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


def _write_plots(scores: Scores, folder: str, title: str) -> list:
    """Each head's plots; a model with several heads prefixes their files ``<head>_``."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plots skipped: matplotlib is not installed in the job's environment", flush=True)
        return []
    written: list[str] = []
    for head in scores.heads:
        accumulator = scores.accumulators[head.name]
        prefix = _head_prefix(head, scores.heads)
        head_title = f"{title} [{head.name}]" if prefix else title
        if isinstance(accumulator, BinaryMetrics):
            written += plots.binary_plots(accumulator, folder, head_title, prefix=prefix)
        elif isinstance(accumulator, MulticlassMetrics):
            written += plots.multiclass_plots(accumulator, folder, head_title, prefix=prefix)
        else:
            written += plots.regression_plots(accumulator, folder, head_title, prefix=prefix)
    return written


def _head_prefix(head: Head, heads: Sequence[Head]) -> str:
    """How a head's files are told apart: ``<head>_`` when the model has several."""
    return f"{head.name}_" if len(heads) > 1 else ""


def _shape(heads: Sequence[Head]) -> list[str]:
    """Heads as the champion comparison matches them: name and kind."""
    return [f"{head.name}:{head.kind}" for head in heads]


def _scalar(value: Any) -> bool:
    """A number (or None: not computed) the gate can read, not a table."""
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _summary(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v if v is not None else 'n/a'}"
        for k, v in metrics.items()
    )


def main(argv: Sequence[str] | None = None) -> None:
    run_job("evaluate", run, argv)


if __name__ == "__main__":
    main()
