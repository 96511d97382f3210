"""Built-in models beyond the DNN, and user models by module:attr and entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dlflow_airflow.contract import plugins
from dlflow_airflow.contract.layout import local_path
from tests.tf_jobs.conftest import (
    EVAL_DATE,
    FEATURE_TAG,
    TRAIN_DATE,
    Workspace,
    encoded_table,
    make_fmap,
    write_partition,
)
from tf_jobs import evaluate, models, train
from tf_jobs.inputs import EncodedDataError
from tf_jobs.models import ModelConfigError

pytestmark = pytest.mark.tf

EXAMPLE = "examples.wide_and_deep:WIDE_AND_DEEP"


def _regression_table(rows: int, seed: int) -> pa.Table:
    table = encoded_table(rows, seed)
    age = pc.list_element(table["user_nums"], 0).to_numpy()
    noise = np.random.default_rng(seed).normal(0.0, 0.05, rows)
    label = pa.array((3.0 * age + 1.0 + noise).astype(np.float64))
    return table.set_column(table.schema.get_field_index("label"), "label", label)


def test_dnn_regressor_trains_and_evaluates_mse_mae_r2(fresh_workspace: Workspace) -> None:
    layout = fresh_workspace.layout
    write_partition(layout.encoded(FEATURE_TAG, TRAIN_DATE), _regression_table(3000, 1))
    write_partition(layout.encoded(FEATURE_TAG, EVAL_DATE), _regression_table(1000, 2))
    params = {"epochs": 4, "batch_size": 64, "hidden_units": [16], "learning_rate": 0.01}
    train.run(fresh_workspace.job(model_name="dnn_regressor", params=params))
    result = evaluate.run(
        fresh_workspace.job(
            EVAL_DATE,
            kind="evaluate",
            model_name="dnn_regressor",
            params=params,
            options={"gate": {"r2": {"min": 0.5}}},
        )
    )
    assert result["task"] == "regression"
    assert result["r2"] > 0.5 and result["mse"] < 0.5 and result["mae"] < 0.6
    assert result["blessed"] is True
    folder = Path(local_path(result["output"]))
    assert (folder / "predicted_vs_actual.png").exists()


def test_a_regression_label_is_refused_by_the_binary_classifier(
    fresh_workspace: Workspace,
) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, _regression_table(50, 3))
    with pytest.raises(EncodedDataError, match="values other than 0 and 1") as info:
        train.run(fresh_workspace.job())
    assert uri in str(info.value)


def test_deepfm_learns_the_ctr_signal(fresh_workspace: Workspace) -> None:
    layout = fresh_workspace.layout
    write_partition(layout.encoded(FEATURE_TAG, TRAIN_DATE), encoded_table(4000, 1))
    write_partition(layout.encoded(FEATURE_TAG, EVAL_DATE), encoded_table(1500, 2))
    params = {"epochs": 3, "batch_size": 128, "hidden_units": [16], "learning_rate": 0.01}
    trained = train.run(fresh_workspace.job(model_name="deepfm", params=params))
    manifest = json.loads((Path(local_path(trained["model"])) / "manifest.json").read_text())
    assert manifest["model"]["name"] == "deepfm"
    result = evaluate.run(
        fresh_workspace.job(EVAL_DATE, kind="evaluate", model_name="deepfm", params=params)
    )
    assert result["auc"] > 0.8


def test_deepfm_fm_term_is_the_pairwise_interaction() -> None:
    import keras

    fmap = make_fmap()
    spec = models.get_model("deepfm")
    model = models.build_model(spec, fmap, models.resolve_params(spec, {"embedding_dim": 4}))
    assert sorted(t.name for t in model.inputs) == sorted(fmap.input_columns())
    assert model.get_layer("fm").trainable is False
    fields = keras.Model(model.inputs, model.get_layer("fm").input)
    batch = {
        "user_nums": np.array([[0.2, 0.7]], np.float32),
        "user_ctgs": np.array([[3, 8]], np.int32),
        "item_ctgs": np.array([[1]], np.int32),
    }
    pairwise = fields(batch).numpy()
    # (sum v)^2 - sum v^2 summed over k, halved, equals sum over pairs <v_i, v_j>.
    stacked = keras.Model(model.inputs, model.get_layer("fields").output)(batch).numpy()[0]
    expected = sum(
        float(stacked[i] @ stacked[j])
        for i in range(len(stacked))
        for j in range(i + 1, len(stacked))
    )
    assert 0.5 * pairwise.sum() == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_example_user_model_by_module_attr(fresh_workspace: Workspace) -> None:
    write_partition(fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE), encoded_table(800, 4))
    params = {"epochs": 1, "batch_size": 128, "deep_units": [8]}
    result = train.run(fresh_workspace.job(model_name=EXAMPLE, params=params))
    manifest = json.loads((Path(local_path(result["model"])) / "manifest.json").read_text())
    assert manifest["model"]["name"] == "wide_and_deep"
    assert manifest["params"]["deep_units"] == [8]
    with pytest.raises(ModelConfigError, match="deep_units must be positive"):
        models.resolve_params(models.get_model(EXAMPLE), {"deep_units": []})


def test_user_model_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "my_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[dlflow_airflow.models]\nwide_and_deep = {EXAMPLE}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins._group.cache_clear()  # entry points are read once per process
    try:
        assert models.get_model("wide_and_deep").name == "wide_and_deep"
        with pytest.raises(ModelConfigError, match="wide_and_deep"):
            models.get_model("wide_and_dep")
    finally:
        plugins._group.cache_clear()


def test_module_attr_that_is_not_a_model_spec() -> None:
    with pytest.raises(
        ModelConfigError, match="is a function, not a dlflow_airflow.contract.models.ModelSpec"
    ):
        models.get_model("examples.wide_and_deep:build")
    with pytest.raises(ModelConfigError, match="cannot import module 'no_such_pkg'"):
        models.get_model("no_such_pkg:MODEL")
