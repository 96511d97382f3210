"""Streaming evaluation metrics: binary classification and regression.

Binary: AUC, PR-AUC, log loss, accuracy, calibration (mean score / positive
rate, 1.0 is perfect) and the curves behind the plots. Regression: MSE, MAE,
R2.

Evaluation visits a partition batch by batch; keeping every score to sort
them at the end would cost memory proportional to the table. Instead scores
are counted in a fixed histogram per class, over the *logit* of the score so
the resolution is as fine near 0.01 (typical click-through rates) as near
0.5. AUC from the histogram treats scores sharing a bin as ties; with
2**16 bins over logits in [-16, 16] that moves AUC by well under 1e-3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
        negatives = self.rows - self.positives
        if not self.positives or not negatives:
            return None
        neg_below = np.cumsum(self.neg_hist) - self.neg_hist
        # A positive beats every negative in a lower bin and half of those in its own.
        wins = (self.pos_hist * (neg_below + 0.5 * self.neg_hist)).sum(dtype=np.float64)
        return float(wins / (self.positives * negatives))

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


def _bins(scores: np.ndarray) -> np.ndarray:
    logits = np.log(scores) - np.log1p(-scores)
    position = (logits + LOGIT_RANGE) / (2 * LOGIT_RANGE) * AUC_BINS
    return np.clip(position, 0, AUC_BINS - 1).astype(np.int64)


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
