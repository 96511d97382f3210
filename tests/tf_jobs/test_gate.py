"""The gate's bounds, champion comparison included: pure, no TensorFlow."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dlflow_airflow.contract.options import (
    METRIC_DIRECTION,
    TF_METRICS,
    EvaluateOptions,
    metric_direction,
)
from dlflow_airflow.contract.tasks import BINARY, REGRESSION, Head
from tf_jobs.gate import Champion, GateKeyError, Miss, check_gate, check_gate_keys

CHAMPION = Champion(
    "2026-01-01",
    "file:///ws/model/TAG=m1/dt=2026-01-01",
    {"auc": 0.80, "log_loss": 0.40, "r2": 0.5, "mse": 1.0},
)


def _drop(metric: str, drop: float) -> dict[str, dict[str, float]]:
    return {metric: {"max_drop_vs_blessed": drop}}


@pytest.mark.parametrize(
    ("metric", "value", "missed"),
    [
        ("auc", 0.796, False),  # worse by 0.004, within the drop
        ("auc", 0.80, False),
        ("auc", 0.90, False),
        ("auc", 0.794, True),  # worse by 0.006
        ("log_loss", 0.404, False),  # lower is better: higher by 0.004 is within
        ("log_loss", 0.30, False),
        ("log_loss", 0.406, True),
        ("r2", 0.49, True),
        ("mse", 0.9, False),
        ("mse", 1.01, True),
    ],
)
def test_a_challenger_misses_only_when_worse_than_the_champion_by_more_than_the_drop(
    metric: str, value: float, missed: bool
) -> None:
    misses = check_gate({metric: value}, _drop(metric, 0.005), CHAMPION)
    assert bool(misses) is missed
    if missed:
        assert misses[0] == Miss(
            metric, value, "max_drop_vs_blessed", 0.005, CHAMPION.metrics[metric], "2026-01-01"
        )


def test_the_miss_names_both_values_the_drop_and_the_champion_date() -> None:
    (higher,) = check_gate({"auc": 0.7512}, _drop("auc", 0.005), CHAMPION)
    assert higher.describe() == (
        "auc 0.7512 < champion's 0.8000 - max_drop_vs_blessed 0.005 "
        "(champion model of 2026-01-01; down by 0.0488)"
    )
    (lower,) = check_gate({"log_loss": 0.5}, _drop("log_loss", 0.01), CHAMPION)
    assert lower.describe() == (
        "log_loss 0.5000 > champion's 0.4000 + max_drop_vs_blessed 0.01 "
        "(champion model of 2026-01-01; up by 0.1000)"
    )


def test_min_and_max_still_apply_beside_the_drop() -> None:
    gate = {"auc": {"min": 0.85, "max_drop_vs_blessed": 0.1}}
    (miss,) = check_gate({"auc": 0.82}, gate, CHAMPION)
    assert (miss.bound, miss.limit) == ("min", 0.85)
    both = check_gate({"auc": 0.5}, gate, CHAMPION)
    assert [m.bound for m in both] == ["min", "max_drop_vs_blessed"]


def test_without_a_champion_the_drop_is_not_applied() -> None:
    assert check_gate({"auc": 0.1}, _drop("auc", 0.0)) == []
    # Nor for a metric the champion has no value for (it could not be computed).
    assert check_gate({"accuracy": 0.1}, _drop("accuracy", 0.0), CHAMPION) == []


def test_a_metric_the_challenger_lacks_misses() -> None:
    (miss,) = check_gate({}, _drop("auc", 0.005), CHAMPION)
    assert miss.value is None
    assert miss.describe() == "auc was not computed (needs max_drop_vs_blessed 0.005)"


def test_every_direction_is_of_a_computed_metric() -> None:
    assert set(METRIC_DIRECTION) < set(TF_METRICS)
    undirected = set(TF_METRICS) - set(METRIC_DIRECTION)
    assert undirected == {"calibration", "positive_rate", "mean_score", "rows"}


HEADS = [Head("click", "click", BINARY), Head("revenue", "revenue", REGRESSION)]


def test_a_head_metric_is_gated_by_its_key_and_compared_by_its_metric_direction() -> None:
    metrics = {"rows": 100, "click.auc": 0.65, "revenue.mse": 2.0, "revenue.r2": 0.3}
    gate = {"click.auc": {"min": 0.7}, "revenue.mse": {"max_drop_vs_blessed": 0.1}}
    champion = Champion("2026-01-01", "file:///m", {"click.auc": 0.7, "revenue.mse": 1.5})
    low, worse = check_gate(metrics, gate, champion)
    assert low.describe() == "click.auc 0.6500 < min 0.7 (by 0.0500)"
    assert worse.describe().startswith("revenue.mse 2.0000 > champion's 1.5000 + ")
    assert check_gate(metrics, {"click.auc": {"min": 0.6}, "revenue.r2": {"min": 0.2}}) == []


def test_gate_options_accept_head_keys_and_refuse_unknown_or_aimless_metrics() -> None:
    options = EvaluateOptions(
        gate={"click.auc": {"min": 0.7, "max_drop_vs_blessed": 0.01}, "macro_f1": {"min": 0.5}}
    )
    assert set(options.gate) == {"click.auc", "macro_f1"}
    assert options.compares_champion
    with pytest.raises(ValidationError, match=r"unknown gate metric \['click.auk'\]"):
        EvaluateOptions(gate={"click.auk": {"min": 0.7}})
    with pytest.raises(ValidationError, match="click.rows.max_drop_vs_blessed"):
        EvaluateOptions(gate={"click.rows": {"max_drop_vs_blessed": 1}})
    with pytest.raises(ValidationError, match="unknown gate metric"):
        EvaluateOptions(gate={".auc": {"min": 0.7}})
    assert metric_direction("click.weighted_f1") == "higher"
    assert metric_direction("a.b.log_loss") == "lower"


def test_gate_keys_must_fit_the_model_heads() -> None:
    check_gate_keys({"click.auc": {}, "revenue.mse": {}, "rows": {}}, HEADS)
    check_gate_keys({"auc": {}}, [Head("score", "label", BINARY)])
    with pytest.raises(GateKeyError, match=r"clik.auc: no head 'clik'; did you mean click.auc\?"):
        check_gate_keys({"clik.auc": {}}, HEADS)
    with pytest.raises(GateKeyError, match=r"auc: this model has several heads; name one"):
        check_gate_keys({"auc": {}}, HEADS)
    with pytest.raises(GateKeyError, match="this model has one head"):
        check_gate_keys({"score.auc": {}}, [Head("score", "label", BINARY)])
    with pytest.raises(GateKeyError, match=r"revenue.auc: a regression head has no auc; its"):
        check_gate_keys({"revenue.auc": {}}, HEADS)
    with pytest.raises(GateKeyError, match="pr_auc: a multiclass head has no pr_auc"):
        check_gate_keys({"pr_auc": {}}, [Head("score", "species", "multiclass", ("a", "b"))])
