from __future__ import annotations

import numpy as np
import pytest

from tf_jobs.metrics import (
    AUC_BINS,
    MULTICLASS_BIN_BUDGET,
    BinaryMetrics,
    MulticlassMetrics,
    class_bins,
    exact_auc,
)

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


def _multiclass_rows(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and softmax probabilities that lean towards the true class."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(
        classes, rows, p=np.linspace(1, 2, classes) / np.linspace(1, 2, classes).sum()
    )
    logits = rng.normal(0.0, 1.0, (rows, classes))
    logits[np.arange(rows), labels] += 1.2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def test_multiclass_metrics_match_sklearn_across_batches() -> None:
    from sklearn import metrics as sk

    labels, probabilities = _multiclass_rows(12_000, 4, seed=3)
    classes = ("bike", "bus", "car", "walk")
    metrics = MulticlassMetrics(classes)
    for start in range(0, labels.size, 2_500):
        metrics.update(labels[start : start + 2_500], probabilities[start : start + 2_500])
    result = metrics.result()
    predicted = probabilities.argmax(axis=1)

    assert result["rows"] == labels.size
    assert result["unseen_rows"] == 0
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert result["macro_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
    assert result["weighted_f1"] == pytest.approx(
        sk.f1_score(labels, predicted, average="weighted")
    )
    assert result["log_loss"] == pytest.approx(sk.log_loss(labels, probabilities), rel=1e-6)
    for i, name in enumerate(classes):
        expected = sk.roc_auc_score(labels == i, probabilities[:, i])
        assert result["per_class"][name]["auc"] == pytest.approx(expected, abs=0.01)
        assert result["per_class"][name]["support"] == int((labels == i).sum())
    assert result["auc"] == pytest.approx(
        sk.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"), abs=0.01
    )
    matrix = metrics.confusion_matrix()
    assert matrix["classes"] == list(classes)
    assert matrix["matrix"] == sk.confusion_matrix(labels, predicted).tolist()


def test_multiclass_keys_are_the_class_values_as_strings_and_unseen_rows_are_counted() -> None:
    metrics = MulticlassMetrics((3, 7, 11))
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    metrics.update(np.array([0, 1, 1, -1]), probabilities)
    result = metrics.result()
    assert list(result["per_class"]) == ["3", "7", "11"]
    assert result["rows"] == 3
    assert result["unseen_rows"] == 1
    assert result["accuracy"] == pytest.approx(2 / 3)
    # Class 11 was predicted once and never true: precision 0, no recall, F1 0.
    assert result["per_class"]["11"] == {
        "support": 0,
        "predicted": 1,
        "precision": 0.0,
        "recall": None,
        "f1": 0.0,
        "auc": None,
    }
    assert metrics.confusion_matrix() == {
        "classes": ["3", "7", "11"],
        "matrix": [[1, 0, 0], [0, 1, 1], [0, 0, 0]],
    }
    with pytest.raises(ValueError, match="2 probabilities per row for 3 classes"):
        metrics.update(np.array([0]), np.array([[0.5, 0.5]]))


def test_many_classes_keep_memory_bounded() -> None:
    assert class_bins(3) == AUC_BINS
    assert class_bins(1000) * 1000 <= 2 * MULTICLASS_BIN_BUDGET
    metrics = MulticlassMetrics(tuple(range(1000)))
    assert metrics.pos_hist.nbytes <= 8 * 2 * MULTICLASS_BIN_BUDGET
