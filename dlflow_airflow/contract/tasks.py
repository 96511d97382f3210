"""What a model learns: its task, its heads, how labels are encoded and scored (no TensorFlow).

Every model of the catalogue declares a *task* (:attr:`ModelSpec.task
<dlflow_airflow.contract.models.ModelSpec>`); the label checks, the fit, the
train loss, evaluate's metrics and predict's columns all key on it, never on
the model's name.

=============  ===========================  ======================================
task           labels                       heads (one per scored output)
=============  ===========================  ======================================
binary         one, 0/1                     ``score``: P(label = 1)
regression     one, a number                ``score``: the predicted value
multiclass     one, a string or an integer  ``score``: one probability per class
multilabel     one or more, each 0/1        ``<label>`` per label: P(label = 1)
multitask      one or more, each binary or  ``<label>`` per label (``model.heads``
               regression                   says which; binary by default)
=============  ===========================  ======================================

A multiclass label goes through the fmap: the fit records its classes with
their row counts (:class:`LabelEncoding`), encode writes the class's index
(:data:`UNSEEN_CLASS` for a value the fit never saw), predict writes one
probability column per class and the predicted class decoded back to the
label's own value (:func:`prediction_columns`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BINARY = "binary"
REGRESSION = "regression"
MULTICLASS = "multiclass"
MULTILABEL = "multilabel"
MULTITASK = "multitask"
TASKS = (BINARY, REGRESSION, MULTICLASS, MULTILABEL, MULTITASK)
SINGLE_LABEL_TASKS = (BINARY, REGRESSION, MULTICLASS)
HEAD_KINDS = (BINARY, REGRESSION)
"""What each head of a multitask model may be (``model.heads``)."""

HEAD_METRICS = {
    BINARY: (
        "rows",
        "positives",
        "positive_rate",
        "auc",
        "pr_auc",
        "log_loss",
        "accuracy",
        "mean_score",
        "calibration",
    ),
    REGRESSION: ("rows", "mse", "mae", "r2", "mean_label"),
    MULTICLASS: ("rows", "unseen_rows", "accuracy", "macro_f1", "weighted_f1", "log_loss", "auc"),
}
"""The metrics evaluate computes for a head of each kind (what a gate key may name)."""

SCORE = "score"
"""The one output of a binary or regression model, and the prefix of predict's columns."""
UNSEEN_CLASS = -1
"""The encoded index of a multiclass label value the fit did not see."""
MAX_CLASSES = 1000
"""The most classes a multiclass label may have (more is almost surely an id column)."""


class TaskError(ValueError):
    """Labels, heads and task do not fit together."""


@dataclass(frozen=True)
class LabelEncoding:
    """How encode writes one label column, recorded in the fmap at fit.

    :param kind: ``binary`` / ``regression`` (written as it is) or ``multiclass``
        (written as the index of its class in ``classes``).
    :param classes: multiclass: every class seen at fit, sorted (strings or integers,
        the label's own values).
    :param counts: rows per class at fit, in the order of ``classes``.
    """

    name: str
    kind: str
    classes: tuple[str | int, ...] = ()
    counts: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == MULTICLASS:
            body.update(classes=list(self.classes), counts=list(self.counts))
        return body

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelEncoding:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            classes=tuple(data.get("classes", ())),
            counts=tuple(int(c) for c in data.get("counts", ())),
        )


@dataclass(frozen=True)
class Head:
    """One scored output of a model.

    :param name: the model output it reads (``score``, or the label's name).
    :param label: the label column it learns.
    :param kind: ``binary``, ``regression`` or ``multiclass``.
    :param classes: multiclass: the label's classes (index i = ``classes[i]``).

    A one-head model's output is its head whatever its name; a model with
    several heads gives either one output per head, named after its label
    (multitask), or one output of one column per head in label order (multilabel).
    """

    name: str
    label: str
    kind: str
    classes: tuple[str | int, ...] = ()

    @property
    def width(self) -> int:
        """Values per row of this head's output."""
        return len(self.classes) if self.kind == MULTICLASS else 1


def check_task(task: str, where: str = "") -> str:
    if task not in TASKS:
        raise TaskError(f"{where}unknown task {task!r}; tasks: {', '.join(TASKS)}")
    return task


def label_problems(task: str, labels: Sequence[str], heads: Mapping[str, str]) -> list[str]:
    """What is wrong with ``feature.labels`` and ``model.heads`` for a ``task`` model.

    Checked at validate time (a pipeline with train or evaluate needs its labels).
    """
    problems: list[str] = []
    if task in SINGLE_LABEL_TASKS and len(labels) != 1:
        problems.append(
            f"a {task} model learns exactly one label; feature.labels has {len(labels)} "
            f"({', '.join(labels) or 'none'})"
            + ("; several labels need a multilabel or multitask model" if labels else "")
        )
    if task in (MULTILABEL, MULTITASK) and not labels:
        problems.append(f"a {task} model needs feature.labels (one head per label)")
    if heads and task != MULTITASK:
        problems.append(f"model.heads is read by multitask models only; this one is {task}")
    for name, kind in heads.items():
        if name not in labels:
            problems.append(f"model.heads.{name}: not one of feature.labels {list(labels)}")
        if kind not in HEAD_KINDS:
            problems.append(f"model.heads.{name}: {kind!r} is not one of {', '.join(HEAD_KINDS)}")
    return problems


def label_kinds(task: str, labels: Sequence[str], heads: Mapping[str, str]) -> dict[str, str]:
    """How each label is encoded for a ``task`` model: what the fit records.

    :raises TaskError: the labels do not suit the task (see :func:`label_problems`).
    """
    problems = label_problems(task, labels, heads)
    if problems:
        raise TaskError("; ".join(problems))
    if task == MULTITASK:
        return {label: heads.get(label, BINARY) for label in labels}
    if task == MULTILABEL:
        return dict.fromkeys(labels, BINARY)
    return dict.fromkeys(labels, task)


def heads_of(task: str, encodings: Sequence[LabelEncoding]) -> list[Head]:
    """The heads of a ``task`` model trained on labels encoded as ``encodings`` (the fmap's).

    :raises TaskError: the fmap encoded a label another way than the task reads it
        (refit the fmap after changing the model's task or heads).
    """
    check_task(task)
    if not encodings:
        raise TaskError(f"a {task} model needs a label; the fmap has none")
    if task in SINGLE_LABEL_TASKS:
        if len(encodings) != 1:
            raise TaskError(f"a {task} model learns one label; the fmap has {len(encodings)}")
        (encoding,) = encodings
        _expect_kind(encoding, (task,), task)
        return [Head(SCORE, encoding.name, encoding.kind, encoding.classes)]
    if task == MULTILABEL:
        for encoding in encodings:
            _expect_kind(encoding, (BINARY,), task)
        return [Head(e.name, e.name, BINARY) for e in encodings]
    for encoding in encodings:
        _expect_kind(encoding, HEAD_KINDS, task)
    return [Head(e.name, e.name, e.kind) for e in encodings]


def _expect_kind(encoding: LabelEncoding, kinds: Sequence[str], task: str) -> None:
    if encoding.kind not in kinds:
        raise TaskError(
            f"label {encoding.name!r} was encoded as {encoding.kind} when its fmap was fitted; "
            f"a {task} model reads it as {' or '.join(kinds)}: refit the fmap "
            "(encode option refit: true) after changing the model's task or heads"
        )


def default_encodings(labels: Sequence[str], task: str) -> list[LabelEncoding]:
    """The encodings of an fmap fitted before labels were recorded: numbers as they are."""
    kind = task if task in (BINARY, REGRESSION) else REGRESSION
    return [LabelEncoding(label, kind) for label in labels]


_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def class_column(label: str, value: str | int) -> str:
    """Predict's probability column of one class: ``<label>_<class>`` (unsafe characters
    as ``_``)."""
    return f"{label}_{_UNSAFE.sub('_', str(value))}"


def predicted_column(label: str) -> str:
    """Predict's column holding the predicted class, decoded to the label's own value."""
    return f"{label}_predicted"


def prediction_columns(heads: Sequence[Head], task: str) -> list[str]:
    """Predict's output columns for the ``heads`` of a ``task`` model, in order.

    Binary and regression models keep their one ``score`` column; a multiclass
    head gives one probability column per class and the predicted class; every
    head of a multilabel or multitask model is ``score_<label>``.
    """
    if task in (BINARY, REGRESSION):
        return [SCORE]
    names: list[str] = []
    for head in heads:
        if head.kind == MULTICLASS:
            names += [class_column(head.label, value) for value in head.classes]
            names.append(predicted_column(head.label))
        else:
            names.append(f"{SCORE}_{head.label}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TaskError(
            f"predict's columns {duplicates} would repeat: two classes of one label differ "
            "only in characters a column name cannot hold; rename those classes in merge"
        )
    return names


def metric_key(head: Head, metric: str, heads: Sequence[Head]) -> str:
    """How the gate and metrics.json address ``metric`` of ``head``: the bare metric for a
    one-head model, ``<head>.<metric>`` for a model with several."""
    return metric if len(heads) == 1 else f"{head.name}.{metric}"
