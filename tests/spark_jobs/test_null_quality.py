"""Model quality under nulls on a real data set: a drifted day that loses 15% of two
informative columns scores (almost) as well as the clean day.

The data is scikit-learn's bundled breast-cancer table (569 rows, 30 numeric
columns), split 70/30 into a training date and a test date. The test rows are
also written a second time, as a third date, with 15% of the values of the two
columns that separate the classes best set to null. The pipeline is the
default one a new user writes: no buckets (every column goes to ``default``,
``minmax``, nulls imputed with the fitted mean), ``dnn_binary_classifier``;
encode reuses the training date's fmap for both test dates, and evaluate scores
the same model on each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from .conftest import job_body, parse_job, write_raw_frame

pytestmark = [pytest.mark.spark, pytest.mark.tf]

TRAIN, CLEAN, DRIFTED = "2026-03-01", "2026-03-02", "2026-03-03"
NULLED = ("worst_perimeter", "worst_concave_points")
NULL_SHARE = 0.15
MAX_DROP = 0.005  # the bound on the AUC lost to the nulls
PARAMS = {"epochs": 40, "batch_size": 32}


def _table() -> tuple[Any, list[str]]:
    """The data set as a pandas frame with ``uid``, ``label`` and snake_case columns."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame = frame.rename(columns={"target": "label"})
    frame.insert(0, "uid", np.arange(len(frame), dtype=np.int64))
    return frame, [c for c in frame.columns if c not in ("uid", "label")]


def _single_feature_auc(values: np.ndarray, labels: np.ndarray) -> float:
    """Rank AUC of one column on its own, whichever direction separates better."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    auc = (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return max(auc, 1 - auc)


def _job(kind: str, workspace: str, date: str, model_date: str, **options: Any) -> Any:
    body = job_body(workspace, tag="cancer", model_date=model_date, buckets={}, options=options)
    body["model"]["params"] = PARAMS
    return parse_job(kind, date, body)


def test_nulls_in_two_informative_columns_cost_at_most_half_a_point_of_auc(
    spark: Any, workspace: str
) -> None:
    from spark_jobs import encode
    from tf_jobs import evaluate, train

    frame, _ = _table()
    labels = frame["label"].to_numpy()
    for name in NULLED:  # the two columns matter: each alone separates the classes
        assert _single_feature_auc(frame[name].to_numpy(), labels) > 0.96

    rng = np.random.default_rng(11)
    shuffled = rng.permutation(len(frame))
    cut = int(0.7 * len(frame))
    train_rows, test_rows = frame.iloc[shuffled[:cut]], frame.iloc[shuffled[cut:]]
    drifted = test_rows.copy()
    for name in NULLED:
        drifted[name] = drifted[name].mask(rng.random(len(drifted)) < NULL_SHARE)
        assert drifted[name].isna().mean() == pytest.approx(NULL_SHARE, abs=0.05)

    for date, rows in ((TRAIN, train_rows), (CLEAN, test_rows), (DRIFTED, drifted)):
        write_raw_frame(spark, workspace, "cancer", date, rows)

    encode.run(spark, _job("encode", workspace, TRAIN, "same"))
    train.run(_job("train", workspace, TRAIN, "same", threads=2))
    auc = {}
    for date in (CLEAN, DRIFTED):
        encoded = encode.run(spark, _job("encode", workspace, date, TRAIN))
        assert encoded["fmap_reused"] is True
        result = evaluate.run(_job("evaluate", workspace, date, TRAIN, threads=2, plots=False))
        assert result["rows"] == len(test_rows)
        auc[date] = result["auc"]

    assert auc[CLEAN] > 0.97, f"the clean model is not a real model: auc {auc[CLEAN]:.4f}"
    drop = auc[CLEAN] - auc[DRIFTED]
    assert drop <= MAX_DROP, (
        f"15% nulls in {NULLED} cost {drop:.4f} AUC ({auc[CLEAN]:.4f} -> {auc[DRIFTED]:.4f})"
    )
