"""Streaming evaluation metrics: binary classification, regression, multiclass.

Binary: AUC, PR-AUC, log loss, accuracy, calibration (mean score / positive
rate, 1.0 is perfect) and the curves behind the plots. Regression: MSE, MAE,
R2. Multiclass: accuracy, macro and weighted F1, log loss, one-vs-rest AUC
per class (``auc`` is their mean) and the confusion matrix.

Evaluation visits a partition batch by batch; keeping every score to sort
them at the end would cost memory proportional to the table. Instead scores
are counted in a fixed histogram per class, over the *logit* of the score so
the resolution is as fine near 0.01 (typical click-through rates) as near
0.5. AUC from the histogram treats scores sharing a bin as ties; with
2**16 bins over logits in [-16, 16] that moves AUC by well under 1e-3.
A multiclass head keeps such a histogram pair per class, with fewer bins
when there are many classes (:func:`class_bins`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

AUC_BINS = 1 << 16
LOGIT_RANGE = 16.0
# Scores are clipped away from 0 and 1 before the log: a confident wrong
# answer costs about 16 nats instead of infinity.
LOG_LOSS_EPS = 1e-7
CALIBRATION_BINS = 10


@dataclass
class BinaryMetrics:
    """Accumulates labels (0/1) and scores (probabilities) over many batches."""

    threshold: float = 0.5
    rows: int = 0
    positives: int = 0
    correct: int = 0
    loss_sum: float = 0.0
    score_sum: float = 0.0
    pos_hist: np.ndarray = field(default_factory=lambda: np.zeros(AUC_BINS, np.int64))
    neg_hist: np.ndarray = field(default_factory=lambda: np.zeros(AUC_BINS, np.int64))
    # Calibration: rows, score sums and positives per score decile [0, 0.1), ... [0.9, 1].
    cal_rows: np.ndarray = field(default_factory=lambda: np.zeros(CALIBRATION_BINS, np.int64))
    cal_scores: np.ndarray = field(default_factory=lambda: np.zeros(CALIBRATION_BINS))
    cal_positives: np.ndarray = field(default_factory=lambda: np.zeros(CALIBRATION_BINS, np.int64))

    def update(self, labels: np.ndarray, scores: np.ndarray) -> None:
        labels = np.asarray(labels, np.float64).reshape(-1)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if labels.shape != scores.shape:
            raise ValueError(f"{labels.size} labels but {scores.size} scores")
        if not np.isfinite(scores).all():
            raise ValueError("the model produced non-finite scores (NaN or inf)")
        positive = labels == 1.0
        clipped = np.clip(scores, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        self.rows += labels.size
        self.positives += int(positive.sum())
        self.correct += int(((scores >= self.threshold) == positive).sum())
        self.loss_sum -= float(
            np.where(positive, np.log(clipped), np.log1p(-clipped)).sum(dtype=np.float64)
        )
        self.score_sum += float(scores.sum())
        bins = _bins(clipped)
        self.pos_hist += np.bincount(bins[positive], minlength=AUC_BINS)
        self.neg_hist += np.bincount(bins[~positive], minlength=AUC_BINS)
        decile = np.clip((scores * CALIBRATION_BINS).astype(np.int64), 0, CALIBRATION_BINS - 1)
        self.cal_rows += np.bincount(decile, minlength=CALIBRATION_BINS)
        self.cal_scores += np.bincount(decile, weights=scores, minlength=CALIBRATION_BINS)
        self.cal_positives += np.bincount(decile[positive], minlength=CALIBRATION_BINS)

    def auc(self) -> float | None:
        """Area under the ROC curve; None when only one class was seen."""
        return histogram_auc(self.pos_hist, self.neg_hist)

    def roc_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(false positive rate, true positive rate), thresholds from high to low."""
        tp = np.r_[0, np.cumsum(self.pos_hist[::-1])]
        fp = np.r_[0, np.cumsum(self.neg_hist[::-1])]
        return fp / max(fp[-1], 1), tp / max(tp[-1], 1)

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) at every histogram threshold, from high to low."""
        tp = np.cumsum(self.pos_hist[::-1])
        fp = np.cumsum(self.neg_hist[::-1])
        seen = (tp + fp) > 0
        tp, fp = tp[seen], fp[seen]
        return tp / max(self.positives, 1), tp / (tp + fp)

    def pr_auc(self) -> float | None:
        """Average precision: precision summed over recall steps; None without positives."""
        if not self.positives or self.positives == self.rows:
            return None
        recall, precision = self.pr_curve()
        steps = np.diff(np.r_[0.0, recall])
        return float((steps * precision).sum())

    def calibration_table(self) -> list[dict[str, float | int]]:
        """Per score decile: rows, mean score and observed positive rate."""
        table = []
        for i in range(CALIBRATION_BINS):
            rows = int(self.cal_rows[i])
            if rows:
                table.append(
                    {
                        "bin": i,
                        "rows": rows,
                        "mean_score": float(self.cal_scores[i] / rows),
                        "positive_rate": float(self.cal_positives[i] / rows),
                    }
                )
        return table

    def result(self) -> dict[str, float | int | None]:
        if not self.rows:
            raise ValueError("no rows were evaluated")
        positive_rate = self.positives / self.rows
        mean_score = self.score_sum / self.rows
        return {
            "rows": self.rows,
            "positives": self.positives,
            "positive_rate": positive_rate,
            "auc": self.auc(),
            "pr_auc": self.pr_auc(),
            "log_loss": self.loss_sum / self.rows,
            "accuracy": self.correct / self.rows,
            "mean_score": mean_score,
            # Predicted over observed positives: 1.0 is calibrated, > 1 over-predicts.
            "calibration": mean_score / positive_rate if positive_rate else None,
        }


# Regression rows kept for the predicted-vs-actual plot.
SAMPLE_ROWS = 5000


@dataclass
class RegressionMetrics:
    """Accumulates labels and predictions for MSE, MAE and R2 over many batches."""

    rows: int = 0
    sq_err: float = 0.0
    abs_err: float = 0.0
    label_sum: float = 0.0
    label_sq_sum: float = 0.0
    sample_labels: list[float] = field(default_factory=list)
    sample_scores: list[float] = field(default_factory=list)

    def update(self, labels: np.ndarray, scores: np.ndarray) -> None:
        labels = np.asarray(labels, np.float64).reshape(-1)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if labels.shape != scores.shape:
            raise ValueError(f"{labels.size} labels but {scores.size} scores")
        if not np.isfinite(scores).all():
            raise ValueError("the model produced non-finite predictions (NaN or inf)")
        error = scores - labels
        self.rows += labels.size
        self.sq_err += float((error * error).sum())
        self.abs_err += float(np.abs(error).sum())
        self.label_sum += float(labels.sum())
        self.label_sq_sum += float((labels * labels).sum())
        room = SAMPLE_ROWS - len(self.sample_labels)
        if room > 0:
            self.sample_labels.extend(labels[:room].tolist())
            self.sample_scores.extend(scores[:room].tolist())

    def result(self) -> dict[str, float | int | None]:
        if not self.rows:
            raise ValueError("no rows were evaluated")
        total = self.label_sq_sum - self.label_sum**2 / self.rows
        return {
            "rows": self.rows,
            "mse": self.sq_err / self.rows,
            "mae": self.abs_err / self.rows,
            "r2": 1.0 - self.sq_err / total if total > 0 else None,
            "mean_label": self.label_sum / self.rows,
        }


# Histogram bins kept for all classes of a multiclass head together (two int64 arrays).
MULTICLASS_BIN_BUDGET = 1 << 20
MIN_CLASS_BINS = 1 << 10


def class_bins(classes: int) -> int:
    """Histogram bins per class: AUC_BINS for a few classes, fewer (a power of two, at
    least MIN_CLASS_BINS) so that all classes stay within MULTICLASS_BIN_BUDGET."""
    bins = AUC_BINS
    while bins > MIN_CLASS_BINS and bins * classes > MULTICLASS_BIN_BUDGET:
        bins //= 2
    return bins


@dataclass
class MulticlassMetrics:
    """Accumulates class indices and per-class probabilities over many batches.

    :param classes: the head's classes (index i is ``classes[i]``); results are keyed
        by their values as strings.

    A label outside the classes (encode's UNSEEN_CLASS: a value the fmap's fit
    never saw) cannot be scored: such rows are counted in ``unseen_rows`` and
    left out of every other metric.
    """

    classes: tuple[str | int, ...]
    rows: int = 0
    unseen_rows: int = 0
    loss_sum: float = 0.0
    confusion: np.ndarray = field(init=False)
    pos_hist: np.ndarray = field(init=False)
    all_hist: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        width = len(self.classes)
        if width < 2:
            raise ValueError(f"a multiclass head needs two classes or more, not {width}")
        self.bins = class_bins(width)
        self.confusion = np.zeros((width, width), np.int64)
        # Per class, its score on rows of that class (positives) and on every row.
        self.pos_hist = np.zeros(width * self.bins, np.int64)
        self.all_hist = np.zeros(width * self.bins, np.int64)

    @property
    def names(self) -> list[str]:
        return [str(value) for value in self.classes]

    def update(self, labels: np.ndarray, probabilities: np.ndarray) -> None:
        width = len(self.classes)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        probabilities = np.asarray(probabilities, np.float64).reshape(labels.size, -1)
        if probabilities.shape[1] != width:
            raise ValueError(f"{probabilities.shape[1]} probabilities per row for {width} classes")
        if not np.isfinite(probabilities).all():
            raise ValueError("the model produced non-finite probabilities (NaN or inf)")
        known = (labels >= 0) & (labels < width)
        self.unseen_rows += int(labels.size - known.sum())
        labels, probabilities = labels[known], probabilities[known]
        rows = np.arange(labels.size)
        self.rows += labels.size
        predicted = probabilities.argmax(axis=1)
        self.confusion += np.bincount(labels * width + predicted, minlength=width * width).reshape(
            width, width
        )
        clipped = np.clip(probabilities, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        self.loss_sum -= float(np.log(clipped[rows, labels]).sum(dtype=np.float64))
        # Flat (class, bin) cells: class k's histogram is the slice [k*bins, (k+1)*bins).
        cells = _bins(clipped, self.bins) + np.arange(width) * self.bins
        self.all_hist += np.bincount(cells.reshape(-1), minlength=width * self.bins)
        self.pos_hist += np.bincount(cells[rows, labels], minlength=width * self.bins)

    def class_aucs(self) -> list[float | None]:
        """One-vs-rest ROC AUC of each class; None for a class absent (or alone) in the rows."""
        pos = self.pos_hist.reshape(len(self.classes), self.bins)
        neg = self.all_hist.reshape(len(self.classes), self.bins) - pos
        return [histogram_auc(p, n) for p, n in zip(pos, neg, strict=True)]

    def confusion_matrix(self) -> dict[str, list]:
        """Rows: true class; columns: predicted class; both in ``classes`` order."""
        return {"classes": self.names, "matrix": self.confusion.tolist()}

    def result(self) -> dict[str, Any]:
        if not self.rows:
            raise ValueError(
                "no rows were evaluated"
                + (
                    f" ({self.unseen_rows} rows of classes the fmap never saw)"
                    if self.unseen_rows
                    else ""
                )
            )
        true_pos = np.diag(self.confusion).astype(np.float64)
        support = self.confusion.sum(axis=1)
        predicted = self.confusion.sum(axis=0)
        f1_denominator = support + predicted
        # A class neither present nor predicted has no F1; macro F1 averages the others.
        f1 = np.divide(
            2 * true_pos, f1_denominator, out=np.zeros_like(true_pos), where=f1_denominator > 0
        )
        scored = f1_denominator > 0
        aucs = self.class_aucs()
        present = [auc for auc in aucs if auc is not None]
        per_class = {
            name: {
                "support": int(support[i]),
                "predicted": int(predicted[i]),
                "precision": float(true_pos[i] / predicted[i]) if predicted[i] else None,
                "recall": float(true_pos[i] / support[i]) if support[i] else None,
                "f1": float(f1[i]) if scored[i] else None,
                "auc": aucs[i],
            }
            for i, name in enumerate(self.names)
        }
        return {
            "rows": self.rows,
            "unseen_rows": self.unseen_rows,
            "accuracy": float(true_pos.sum() / self.rows),
            "macro_f1": float(f1[scored].mean()),
            "weighted_f1": float((f1 * support).sum() / self.rows),
            "log_loss": self.loss_sum / self.rows,
            # Mean one-vs-rest AUC over the classes that have one.
            "auc": float(np.mean(present)) if present else None,
            "per_class": per_class,
        }


def histogram_auc(pos_hist: np.ndarray, neg_hist: np.ndarray) -> float | None:
    """ROC AUC from per-bin counts of positives and negatives (ascending scores, ties in a
    bin count half); None when either class is absent."""
    positives = int(pos_hist.sum())
    negatives = int(neg_hist.sum())
    if not positives or not negatives:
        return None
    neg_below = np.cumsum(neg_hist) - neg_hist
    # A positive beats every negative in a lower bin and half of those in its own.
    wins = (pos_hist * (neg_below + 0.5 * neg_hist)).sum(dtype=np.float64)
    return float(wins / (positives * negatives))


def _bins(scores: np.ndarray, bins: int = AUC_BINS) -> np.ndarray:
    logits = np.log(scores) - np.log1p(-scores)
    position = (logits + LOGIT_RANGE) / (2 * LOGIT_RANGE) * bins
    return np.clip(position, 0, bins - 1).astype(np.int64)


def exact_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC by ranks (ties count half): the reference the histogram is checked against."""
    labels = np.asarray(labels).reshape(-1) == 1
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, np.float64)
    sorted_scores = scores[order]
    # Average ranks over runs of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], scores.size]
    averages = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(averages, ends - starts)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if not positives or not negatives:
        return math.nan
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))
