"""Evaluate per task: one accumulator per head, metrics.json's layout, plots, the gate on
``<head>.<metric>`` and the champion compared head by head.

The models are hand-built Keras models with fixed weights (no training), so the
metrics are known: a multitask model whose ``click`` head is sigmoid(8 age - 4)
and whose ``revenue`` head is ``2 spend + bias``, and a multiclass model that
reads the class off ``age`` in thirds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from dlflow_airflow.contract.artifacts import ENCODING_FILE, ChampionRecord
from dlflow_airflow.contract.fmap import FeatureMap
from dlflow_airflow.contract.layout import local_path
from dlflow_airflow.contract.model_resolution import MANIFEST_FILE
from dlflow_airflow.contract.tasks import (
    BINARY,
    MULTICLASS,
    MULTITASK,
    REGRESSION,
    Head,
    LabelEncoding,
)
from tests.tf_jobs.conftest import (
    EVAL_DATE,
    EVAL_ROWS,
    FEATURE_TAG,
    MODEL_TAG,
    TRAIN_DATE,
    Workspace,
    encoded_table,
    make_fmap,
    write_partition,
)
from tf_jobs import evaluate
from tf_jobs.evaluate import Scores, flat_metrics, result_metrics
from tf_jobs.gate import GateKeyError

CLASSES = ("bike", "bus", "car")
CHAMPION_DATE = "2025-12-31"


# ------------------------------------------------------------------ without TensorFlow


def test_several_heads_flatten_to_head_dot_metric() -> None:
    heads = [Head("click", "click", BINARY), Head("revenue", "revenue", REGRESSION)]
    scores = Scores(heads)
    labels = {"click": np.array([[0], [1], [1], [0]]), "revenue": np.array([[1.0], [2], [3], [4]])}
    outputs = {"click": np.array([[0.2], [0.9], [0.6], [0.4]]), "revenue": labels["revenue"] + 1}
    scores.update(labels, outputs)
    flat = flat_metrics(heads, scores.by_head())
    assert flat["rows"] == 4
    assert flat["click.auc"] == 1.0
    assert flat["revenue.mse"] == 1.0
    assert not any(key in flat for key in ("auc", "mse"))


def test_a_multiclass_head_keeps_big_tables_out_of_the_result() -> None:
    small = Head("score", "mode", MULTICLASS, CLASSES)
    big = Head("score", "mode", MULTICLASS, tuple(range(21)))
    record = {"accuracy": 0.5, "per_class": {}, "confusion_matrix": {}, "gate": {}}
    assert set(result_metrics([small], record)) == {"accuracy", "per_class", "confusion_matrix"}
    assert set(result_metrics([big], record)) == {"accuracy"}


def test_confusion_plots_draw_few_and_many_classes(tmp_path: Path) -> None:
    from tf_jobs import plots
    from tf_jobs.metrics import MulticlassMetrics

    rng = np.random.default_rng(0)
    for classes in (3, 30):
        metrics = MulticlassMetrics(tuple(range(classes)))
        metrics.update(rng.integers(0, classes, 500), rng.dirichlet(np.ones(classes), 500))
        folder = tmp_path / str(classes)
        written = plots.multiclass_plots(metrics, f"file://{folder}", "t", prefix="mode_")
        assert written == ["mode_confusion_matrix.png"]
        assert (folder / written[0]).read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ evaluate end to end


def _table(rows: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    """conftest's encoded inputs without its label; returns them with (age, spend)."""
    table = encoded_table(rows, seed)
    nums = np.asarray(table.column("user_nums").combine_chunks().flatten()).reshape(-1, 2)
    return table.drop_columns(["label"]), nums


def _fmap(labels: tuple[LabelEncoding, ...], model_date: str = TRAIN_DATE) -> FeatureMap:
    return replace(
        make_fmap(model_date), labels=tuple(e.name for e in labels), label_encodings=labels
    )


def _commit_model(ws: Workspace, model: Any, fmap: FeatureMap, task: str, date: str) -> str:
    from tf_jobs import model_io

    uri = ws.layout.model(MODEL_TAG, date)
    model_io.save_model(model, uri)
    manifest = {
        "model": {"tag": MODEL_TAG, "name": f"hand_built_{task}", "date": date},
        "task": task,
        "fmap_checksum": fmap.checksum,
    }
    folder = Path(local_path(uri))
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    (folder / "_SUCCESS").touch()
    return uri


def _features(fmap: FeatureMap) -> tuple[dict[str, Any], Any]:
    """The model's inputs and (age, spend); the categories join through zero embeddings so
    every input is used."""
    import keras

    from tf_jobs.models import model_inputs

    inputs = model_inputs(fmap)
    zeros = [
        keras.layers.Flatten()(
            keras.layers.Embedding(16, 1, embeddings_initializer="zeros", trainable=False)(
                inputs[name]
            )
        )
        for name in ("user_ctgs", "item_ctgs")
    ]
    return inputs, keras.layers.Concatenate()([inputs["user_nums"], *zeros])


def _dense(x: Any, name: str, weights: list[list[float]], bias: list[float], act: str) -> Any:
    import keras

    layer = keras.layers.Dense(len(bias), activation=act, name=name)
    out = layer(x)
    kernel = np.zeros((5, len(bias)), np.float32)
    kernel[:2] = np.asarray(weights, np.float32)
    layer.set_weights([kernel, np.asarray(bias, np.float32)])
    return out


def _multitask_model(fmap: FeatureMap, revenue_bias: float) -> Any:
    import keras

    inputs, x = _features(fmap)
    click = _dense(x, "click", [[8.0], [0.0]], [-4.0], "sigmoid")
    revenue = _dense(x, "revenue", [[0.0], [2.0]], [revenue_bias], "linear")
    return keras.Model(inputs, {"click": click, "revenue": revenue})


def _multiclass_model(fmap: FeatureMap) -> Any:
    import keras

    inputs, x = _features(fmap)
    probabilities = _dense(x, "score", [[-12.0, 0.0, 12.0], [0, 0, 0]], [4.0, 0.0, -8.0], "softmax")
    return keras.Model(inputs, probabilities)


@pytest.fixture(scope="module")
def multitask_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """click (binary) and revenue (regression) labels; a model at TRAIN_DATE, and a better
    champion at CHAMPION_DATE whose rows encode wrote for EVAL_DATE."""
    root = tmp_path_factory.mktemp("multitask")
    encodings = (LabelEncoding("click", BINARY), LabelEncoding("revenue", REGRESSION))
    ws = Workspace(uri=f"file://{root}", fmap=_fmap(encodings))
    ws.fmap.save(ws.layout.femodel(FEATURE_TAG, TRAIN_DATE))
    table, nums = _table(EVAL_ROWS, 2)
    rng = np.random.default_rng(7)
    click = (8 * nums[:, 0] - 4 + rng.logistic(size=EVAL_ROWS) > 0).astype(np.int64)
    revenue = 2 * nums[:, 1] + rng.normal(0.0, 0.1, EVAL_ROWS)
    table = table.append_column("click", pa.array(click)).append_column(
        "revenue", pa.array(revenue)
    )
    write_partition(ws.layout.encoded(FEATURE_TAG, EVAL_DATE), table)
    # The challenger's revenue is off by 0.3; the champion's is right.
    _commit_model(ws, _multitask_model(ws.fmap, 0.3), ws.fmap, MULTITASK, TRAIN_DATE)
    champion_fmap = _fmap(encodings, CHAMPION_DATE)
    champion_fmap.save(ws.layout.femodel(FEATURE_TAG, CHAMPION_DATE))
    champion = _commit_model(
        ws, _multitask_model(champion_fmap, 0.0), champion_fmap, MULTITASK, CHAMPION_DATE
    )
    rows = ws.layout.champion(MODEL_TAG, EVAL_DATE)
    write_partition(rows, table, success=False)
    record = ChampionRecord(
        CHAMPION_DATE,
        champion,
        ws.layout.femodel(FEATURE_TAG, CHAMPION_DATE),
        champion_fmap.checksum,
    )
    (Path(local_path(rows)) / ENCODING_FILE).write_text(record.to_json())
    (Path(local_path(rows)) / "_SUCCESS").touch()
    return ws


@pytest.fixture(scope="module")
def multiclass_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("multiclass")
    encodings = (LabelEncoding("mode", MULTICLASS, CLASSES, (1, 1, 1)),)
    ws = Workspace(uri=f"file://{root}", fmap=_fmap(encodings))
    ws.fmap.save(ws.layout.femodel(FEATURE_TAG, TRAIN_DATE))
    table, nums = _table(EVAL_ROWS, 3)
    rng = np.random.default_rng(8)
    noisy_age = nums[:, 0] + rng.normal(0.0, 0.08, EVAL_ROWS)
    mode = np.clip((noisy_age * 3).astype(np.int32), 0, 2)
    write_partition(
        ws.layout.encoded(FEATURE_TAG, EVAL_DATE), table.append_column("mode", pa.array(mode))
    )
    _commit_model(ws, _multiclass_model(ws.fmap), ws.fmap, MULTICLASS, TRAIN_DATE)
    return ws


def _evaluate(ws: Workspace, labels: tuple[str, ...], model: str, **options: Any) -> Any:
    heads = {"revenue": REGRESSION} if "revenue" in labels else None
    job = ws.job(
        EVAL_DATE,
        kind="evaluate",
        model_name=model,
        labels=labels,
        params={},
        options=options,
        heads=heads,
    )
    return evaluate.run(job)


def _written(ws: Workspace) -> tuple[dict[str, Any], Path]:
    folder = Path(local_path(ws.layout.evaluate(MODEL_TAG, EVAL_DATE)))
    return json.loads((folder / "metrics.json").read_text()), folder


@pytest.mark.tf
def test_a_multitask_model_is_scored_and_gated_head_by_head(multitask_ws: Workspace) -> None:
    gate = {"click.auc": {"min": 0.7}, "revenue.mse": {"max": 0.05}}
    result = _evaluate(multitask_ws, ("click", "revenue"), "dnn_multitask", gate=gate)
    metrics, folder = _written(multitask_ws)

    assert metrics["task"] == MULTITASK
    assert metrics["rows"] == EVAL_ROWS
    assert set(metrics["heads"]) == {"click", "revenue"}
    assert metrics["heads"]["click"]["auc"] == metrics["click.auc"] > 0.8
    assert len(metrics["heads"]["click"]["calibration_table"]) >= 5
    # Off by 0.3 everywhere: mse about 0.09 + 0.01 noise.
    assert metrics["revenue.mse"] == pytest.approx(0.1, abs=0.01)
    assert metrics["gate"]["missed"] == [
        f"revenue.mse {metrics['revenue.mse']:.4f} > max 0.05 "
        f"(by {metrics['revenue.mse'] - 0.05:.4f})"
    ]
    assert result["blessed"] is False
    # The result carries the flat numbers, not the per-head detail.
    assert "heads" not in result
    assert result["click.auc"] == metrics["click.auc"]
    plots = {"click_roc.png", "click_pr.png", "click_calibration.png"}
    assert set(metrics["plots"]) == plots | {"revenue_predicted_vs_actual.png"}
    for plot in metrics["plots"]:
        assert (folder / plot).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.tf
def test_the_champion_is_compared_head_by_head(multitask_ws: Workspace) -> None:
    gate = {"revenue.mse": {"max_drop_vs_blessed": 0.01}, "click.auc": {"max_drop_vs_blessed": 0}}
    _evaluate(multitask_ws, ("click", "revenue"), "dnn_multitask", gate=gate, plots=False)
    metrics, _ = _written(multitask_ws)

    champion = metrics["champion"]
    assert champion["model_date"] == CHAMPION_DATE
    assert champion["metrics"]["revenue.mse"] == pytest.approx(0.01, abs=0.003)
    # The click heads are the same model: no drop.
    assert champion["metrics"]["click.auc"] == metrics["click.auc"]
    (missed,) = metrics["gate"]["missed"]
    assert missed.startswith(f"revenue.mse {metrics['revenue.mse']:.4f} > champion's ")
    assert f"(champion model of {CHAMPION_DATE}" in missed


@pytest.mark.tf
def test_gate_keys_naming_no_head_fail_before_scoring(multitask_ws: Workspace) -> None:
    with pytest.raises(GateKeyError, match="did you mean click.auc"):
        _evaluate(
            multitask_ws, ("click", "revenue"), "dnn_multitask", gate={"clik.auc": {"min": 1}}
        )


@pytest.mark.tf
def test_a_multiclass_model_gets_class_metrics_and_a_confusion_matrix(
    multiclass_ws: Workspace,
) -> None:
    gate = {"macro_f1": {"min": 0.7}, "auc": {"min": 0.9}}
    result = _evaluate(multiclass_ws, ("mode",), "dnn_classifier", gate=gate)
    metrics, folder = _written(multiclass_ws)

    assert metrics["task"] == MULTICLASS
    assert metrics["rows"] == EVAL_ROWS
    assert metrics["accuracy"] > 0.8
    assert metrics["macro_f1"] > 0.7 and metrics["weighted_f1"] > 0.7
    assert metrics["auc"] > 0.9
    assert list(metrics["per_class"]) == list(CLASSES)
    matrix = metrics["confusion_matrix"]
    assert matrix["classes"] == list(CLASSES)
    assert sum(map(sum, matrix["matrix"])) == EVAL_ROWS
    assert json.loads((folder / "confusion_matrix.json").read_text()) == matrix
    assert metrics["plots"] == ["confusion_matrix.png"]
    assert (folder / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert metrics["gate"]["missed"] == []
    assert result["blessed"] is True
    # Three classes: the table fits the result.
    assert result["confusion_matrix"] == matrix


@pytest.mark.tf
def test_a_binary_model_keeps_its_metrics_json_layout(
    workspace: Workspace, trained: dict[str, Any]
) -> None:
    _evaluate(workspace, ("label",), "dnn_binary_classifier", gate={"auc": {"min": 0.5}})
    metrics, _ = _written(workspace)
    assert list(metrics) == [
        *("rows", "positives", "positive_rate", "auc", "pr_auc", "log_loss", "accuracy"),
        *("mean_score", "calibration", "task", "date", "model_tag", "model_date"),
        *("feature_tag", "gate", "calibration_table", "plots"),
    ]
    assert metrics["plots"] == ["roc.png", "pr.png", "calibration.png"]


@pytest.mark.tf
def test_a_trained_multilabel_model_is_evaluated_per_label(tmp_path: Path) -> None:
    """The built-in multilabel model (one output of one column per label), trained briefly."""
    from tf_jobs import train

    encodings = (LabelEncoding("click", BINARY), LabelEncoding("like", BINARY))
    ws = Workspace(uri=f"file://{tmp_path}", fmap=_fmap(encodings))
    ws.fmap.save(ws.layout.femodel(FEATURE_TAG, TRAIN_DATE))
    for date, seed in ((TRAIN_DATE, 4), (EVAL_DATE, 5)):
        table, nums = _table(2000, seed)
        rng = np.random.default_rng(seed)
        click = (8 * nums[:, 0] - 4 + rng.logistic(size=2000) > 0).astype(np.int64)
        like = (rng.random(2000) < 0.3).astype(np.int64)
        table = table.append_column("click", pa.array(click)).append_column("like", pa.array(like))
        write_partition(ws.layout.encoded(FEATURE_TAG, date), table)
    params = {"epochs": 2, "batch_size": 128, "hidden_units": [8], "learning_rate": 0.02}
    labels = ("click", "like")
    train.run(ws.job(model_name="dnn_multilabel_classifier", labels=labels, params=params))
    gate = {"click.auc": {"min": 0.7}, "like.log_loss": {"max": 0.01}}
    result = _evaluate(ws, labels, "dnn_multilabel_classifier", gate=gate, plots=False)

    assert result["click.auc"] > 0.7
    assert 0.3 < result["like.auc"] < 0.7  # like is noise
    assert result["rows"] == 2000
    assert not result["blessed"]
    metrics, _ = _written(ws)
    assert set(metrics["heads"]) == set(labels)
    assert [m.split(" ")[0] for m in metrics["gate"]["missed"]] == ["like.log_loss"]
