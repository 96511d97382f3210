"""PNG plots beside ``metrics.json``: ROC, PR and calibration, or predicted vs actual.

matplotlib is imported here only, inside the evaluate job, with the
file-only ``Agg`` backend (no display on a worker).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from pyarrow import fs

from dlflow_airflow.contract import storage
from tf_jobs.metrics import BinaryMetrics, RegressionMetrics

ROC_FILE = "roc.png"
PR_FILE = "pr.png"
CALIBRATION_FILE = "calibration.png"
PREDICTED_FILE = "predicted_vs_actual.png"


def binary_plots(metrics: BinaryMetrics, folder_uri: str, title: str) -> list[str]:
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
        _save(ROC_FILE, roc, folder_uri),
        _save(PR_FILE, pr, folder_uri),
        _save(CALIBRATION_FILE, calibration, folder_uri),
    ]


def regression_plots(metrics: RegressionMetrics, folder_uri: str, title: str) -> list[str]:
    def scatter(ax) -> None:
        ax.scatter(metrics.sample_labels, metrics.sample_scores, s=4, alpha=0.4)
        low = min(metrics.sample_labels + metrics.sample_scores, default=0.0)
        high = max(metrics.sample_labels + metrics.sample_scores, default=1.0)
        ax.plot([low, high], [low, high], linestyle="--", color="grey")
        ax.set(xlabel="actual", ylabel="predicted", title=f"Predicted vs actual {title}")

    return [_save(PREDICTED_FILE, scatter, folder_uri)]


def _save(name: str, draw: Callable, folder_uri: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, ax = plt.subplots(figsize=(5, 4), dpi=100)
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
