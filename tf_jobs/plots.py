"""PNG plots beside ``metrics.json``: ROC, PR and calibration, predicted vs actual, or
the confusion matrix; per head, file names prefixed with the head for a model with several.

matplotlib is imported here only, inside the evaluate job, with the
file-only ``Agg`` backend (no display on a worker).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import numpy as np
from pyarrow import fs

from dlflow_airflow.contract import storage
from tf_jobs.metrics import BinaryMetrics, MulticlassMetrics, RegressionMetrics

ROC_FILE = "roc.png"
PR_FILE = "pr.png"
CALIBRATION_FILE = "calibration.png"
PREDICTED_FILE = "predicted_vs_actual.png"
CONFUSION_FILE = "confusion_matrix.png"
# Above this many classes the matrix has no tick labels nor counts in its cells.
LABELLED_CLASSES = 20


def binary_plots(
    metrics: BinaryMetrics, folder_uri: str, title: str, *, prefix: str = ""
) -> list[str]:
    """Write ROC, PR and calibration plots into ``folder_uri``; returns the file names."""

    def roc(ax) -> None:
        fpr, tpr = metrics.roc_curve()
        ax.plot(fpr, tpr, label=f"AUC {metrics.auc() or float('nan'):.4f}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC {title}")

    def pr(ax) -> None:
        recall, precision = metrics.pr_curve()
        ax.plot(recall, precision, label=f"PR-AUC {metrics.pr_auc() or float('nan'):.4f}")
        ax.set(xlabel="recall", ylabel="precision", title=f"PR {title}")

    def calibration(ax) -> None:
        table = metrics.calibration_table()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.plot(
            [row["mean_score"] for row in table],
            [row["positive_rate"] for row in table],
            marker="o",
            label="model",
        )
        ax.set(
            xlabel="mean predicted", ylabel="observed positive rate", title=f"Calibration {title}"
        )

    return [
        _save(prefix + ROC_FILE, roc, folder_uri),
        _save(prefix + PR_FILE, pr, folder_uri),
        _save(prefix + CALIBRATION_FILE, calibration, folder_uri),
    ]


def regression_plots(
    metrics: RegressionMetrics, folder_uri: str, title: str, *, prefix: str = ""
) -> list[str]:
    def scatter(ax) -> None:
        ax.scatter(metrics.sample_labels, metrics.sample_scores, s=4, alpha=0.4)
        low = min(metrics.sample_labels + metrics.sample_scores, default=0.0)
        high = max(metrics.sample_labels + metrics.sample_scores, default=1.0)
        ax.plot([low, high], [low, high], linestyle="--", color="grey")
        ax.set(xlabel="actual", ylabel="predicted", title=f"Predicted vs actual {title}")

    return [_save(prefix + PREDICTED_FILE, scatter, folder_uri)]


def multiclass_plots(
    metrics: MulticlassMetrics, folder_uri: str, title: str, *, prefix: str = ""
) -> list[str]:
    """The confusion matrix: rows true, columns predicted; shaded by the share of each
    true class (its recall on the diagonal), labelled with counts when small enough."""
    counts = metrics.confusion
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = metrics.names
    labelled = len(names) <= LABELLED_CLASSES

    def confusion(ax) -> None:
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.figure.colorbar(image, ax=ax, label="share of the true class")
        if labelled:
            ticks = range(len(names))
            ax.set_xticks(ticks, names, rotation=45, ha="right")
            ax.set_yticks(ticks, names)
            for (row, col), count in np.ndenumerate(counts):
                color = "white" if shares[row, col] > 0.5 else "black"
                ax.text(col, row, str(count), ha="center", va="center", color=color, fontsize=7)
        ax.set(xlabel="predicted", ylabel="true", title=f"Confusion {title}")

    size = 4 + min(len(names), 40) * 0.15
    return [_save(prefix + CONFUSION_FILE, confusion, folder_uri, figsize=(size + 1, size))]


def _save(name: str, draw: Callable, folder_uri: str, figsize: tuple[float, float] = (5, 4)) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, ax = plt.subplots(figsize=figsize, dpi=100)
    try:
        draw(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
        figure.tight_layout()
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name)
            figure.savefig(local, format="png")
            filesystem, path = storage.resolve(f"{folder_uri}/{name}")
            filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
            fs.copy_files(local, path, destination_filesystem=filesystem)
    finally:
        plt.close(figure)
    return name
