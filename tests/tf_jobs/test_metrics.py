from __future__ import annotations

import numpy as np
import pytest

from tf_jobs.metrics import BinaryMetrics, exact_auc

pytestmark = pytest.mark.tf


def test_streaming_metrics_match_direct_computation() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(50_000) < 0.03).astype(np.float32)
    # Skewed scores near a low click-through rate, where a linear histogram would be coarse.
    scores = 1 / (1 + np.exp(-(rng.normal(-3.5, 1.0, labels.size) + 1.2 * labels)))
    metrics = BinaryMetrics()
    for start in range(0, labels.size, 7_000):
        metrics.update(labels[start : start + 7_000], scores[start : start + 7_000])
    result = metrics.result()

    assert result["rows"] == labels.size
    assert result["positives"] == int(labels.sum())
    assert result["auc"] == pytest.approx(exact_auc(labels, scores), abs=1e-4)
    expected_loss = -np.mean(labels * np.log(scores) + (1 - labels) * np.log(1 - scores))
    assert result["log_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert result["accuracy"] == pytest.approx(np.mean((scores >= 0.5) == (labels == 1)))


def test_exact_auc_counts_ties_half() -> None:
    assert exact_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.5, 0.5])) == 0.875
    metrics = BinaryMetrics()
    metrics.update(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.5, 0.5]))
    assert metrics.auc() == 0.875


def test_one_class_has_no_auc_and_nan_scores_fail() -> None:
    metrics = BinaryMetrics()
    metrics.update(np.zeros(3), np.array([0.2, 0.4, 0.6]))
    assert metrics.result()["auc"] is None
    with pytest.raises(ValueError, match="non-finite"):
        metrics.update(np.zeros(1), np.array([np.nan]))
