"""Models beyond one score: labels fed per task (Parquet and TFRecord), their checks,
and a model of each task trained end to end that learns its synthetic signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dlflow_airflow.contract.artifacts import ENCODING_FILE
from dlflow_airflow.contract.fmap import FmapError
from dlflow_airflow.contract.layout import local_path
from dlflow_airflow.contract.tasks import UNSEEN_CLASS
from tests.tf_jobs.conftest import (
    CLASSES,
    FEATURE_TAG,
    MULTILABEL_LABELS,
    TRAIN_DATE,
    Workspace,
    task_fmap,
    task_job,
    task_table,
    write_partition,
)
from tests.tf_jobs.test_tfrecord_input import write_tfrecords
from tf_jobs import inputs, model_io, tfrecord_input, train
from tf_jobs.batches import inputs_from_arrow
from tf_jobs.inputs import EncodedDataError, InputOptions
from tf_jobs.models import ModelConfigError

pytestmark = pytest.mark.tf

TASKS = ("multiclass", "multilabel", "multitask")


def _workspace(tmp_path: Path, task: str) -> Workspace:
    ws = Workspace(uri=f"file://{tmp_path}", fmap=task_fmap(task))
    ws.fmap.save(ws.layout.femodel(FEATURE_TAG, TRAIN_DATE))
    return ws


def _shapes(labels: object) -> object:
    if isinstance(labels, dict):
        return {name: (tuple(v.shape), v.dtype.name) for name, v in labels.items()}
    return tuple(labels.shape), labels.dtype.name  # type: ignore[attr-defined]


EXPECTED = {
    "multiclass": ((100, 1), "int32"),
    "multilabel": ((100, 2), "float32"),
    "multitask": {"click": ((100, 1), "float32"), "dwell": ((100, 1), "float32")},
}


@pytest.mark.parametrize("task", TASKS)
def test_parquet_and_tfrecord_labels_are_shaped_per_task(tmp_path: Path, task: str) -> None:
    ws = _workspace(tmp_path, task)
    fmap, heads = ws.fmap, ws.fmap.heads(task)
    table = task_table(task, 250, 3)
    write_partition(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), table, parts=1)
    write_tfrecords(ws.layout.tfrecord(FEATURE_TAG, TRAIN_DATE), table, parts=1)
    options = InputOptions(batch_size=100)

    source = inputs.open_encoded(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), fmap, heads)
    arrays = list(inputs.iter_arrays(source, fmap, heads, options, task=task))
    assert _shapes(arrays[0][1]) == EXPECTED[task]
    parquet = list(inputs.make_dataset(source, fmap, heads, options, rows=250, task=task))
    records = tfrecord_input.open_tfrecord(ws.layout.tfrecord(FEATURE_TAG, TRAIN_DATE))
    tfrecord = list(tfrecord_input.make_dataset(records, fmap, heads, options, rows=250, task=task))
    for batches in (parquet, tfrecord):
        assert [_rows(y) for _, y in batches] == [100, 100, 50]
        labels = batches[0][1]
        numpy = (
            {k: v.numpy() for k, v in labels.items()}
            if isinstance(labels, dict)
            else labels.numpy()
        )
        assert _shapes(numpy) == EXPECTED[task]
    # The same rows, the same labels, from either input.
    for (_, a), (_, b) in zip(parquet, tfrecord, strict=True):
        if isinstance(a, dict):
            for name in a:
                np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=1e-6)
        else:
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def _rows(labels: object) -> int:
    if isinstance(labels, dict):
        return int(next(iter(labels.values())).shape[0])
    return int(labels.shape[0])  # type: ignore[attr-defined]


def test_shuffled_multitask_batches_keep_rows_and_labels_together(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "multitask")
    heads = ws.fmap.heads("multitask")
    write_partition(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), task_table("multitask", 300, 4))
    source = inputs.open_encoded(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), ws.fmap, heads)
    options = InputOptions(batch_size=64, shuffle=True, shuffle_buffer=128, seed=3)
    batches = list(inputs.iter_arrays(source, ws.fmap, heads, options, task="multitask"))
    assert sum(len(y["click"]) for _, y in batches) == 300
    for x, y in batches:  # the labels are functions of the inputs: a shuffle keeps them aligned
        age = x["user_nums"][:, 0]
        np.testing.assert_array_equal(y["click"][:, 0], (age > 0.5).astype(np.float32))


# ---------------------------------------------------------------- label checks


def _multiclass_with(ws: Workspace, labels: list[int], record: dict | None) -> str:
    table = task_table("multiclass", len(labels), 5)
    table = table.set_column(
        table.schema.get_field_index("label"), "label", pa.array(labels, pa.int32())
    )
    uri = ws.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, table, parts=1)
    if record is not None:
        (Path(local_path(uri)) / ENCODING_FILE).write_text(json.dumps(record))
    return uri


def test_unseen_classes_are_named_with_their_counts(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "multiclass")
    unseen = {"label": {"rows": 3, "values": {"bird": 2, "cow": 1}}}
    record = {"model_date": TRAIN_DATE, "unseen_labels": unseen}
    labels = [0, 1, 2, UNSEEN_CLASS, UNSEEN_CLASS, UNSEEN_CLASS, 2, 1]
    uri = _multiclass_with(ws, labels, record)
    with pytest.raises(EncodedDataError) as info:
        train.run(task_job(ws, "multiclass"))
    message = str(info.value)
    assert f"label column 'label' in {uri}: 3 rows hold a value the fmap did not see" in message
    assert "3 classes ['cat', 'dog', 'fish']" in message
    assert f"'bird': 2, 'cow': 1 (from {uri}/{ENCODING_FILE})" in message
    assert "refit: true" in message
    assert not Path(local_path(ws.layout.model("dnn_v1", TRAIN_DATE))).exists()


def test_out_of_range_class_index_without_a_record(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "multiclass")
    uri = _multiclass_with(ws, [0, 1, 7, 7, 2], None)
    with pytest.raises(EncodedDataError) as info:
        train.run(task_job(ws, "multiclass"))
    message = str(info.value)
    assert "2 rows hold no class index (7 (2 rows))" in message
    assert f"per-value counts are in {uri}/{ENCODING_FILE} under unseen_labels" in message


def test_a_string_label_column_asks_for_a_refit(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "multiclass")
    table = task_table("multiclass", 6, 5)
    table = table.set_column(
        table.schema.get_field_index("label"), "label", pa.array(["cat", "dog"] * 3)
    )
    write_partition(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), table, parts=1)
    with pytest.raises(EncodedDataError, match="holds string, not numbers"):
        train.run(task_job(ws, "multiclass"))


def test_every_binary_head_is_checked(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "multilabel")
    table = task_table("multilabel", 6, 5)
    table = table.set_column(
        table.schema.get_field_index("liked"), "liked", pa.array([0, 1, 3, 0, 1, 0])
    )
    write_partition(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), table, parts=1)
    with pytest.raises(EncodedDataError, match=r"'liked' .* other than 0 and 1 \(3\)"):
        train.run(task_job(ws, "multilabel"))


def test_heads_that_do_not_fit_the_fmap_or_the_task(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "multitask")
    write_partition(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), task_table("multitask", 50, 1))
    body = task_job(ws, "multitask").body()
    body["model"]["heads"] = {}  # dwell read as binary, but the fit encoded it for regression
    from dlflow_airflow.contract.jobconf import JobConfig

    with pytest.raises(FmapError, match="dwell as binary.*refit the fmap"):
        train.run(JobConfig.from_body(TRAIN_DATE, body, job="train"))
    with pytest.raises(ModelConfigError, match="a binary model learns exactly one label"):
        train.run(ws.job(labels=("click", "dwell")))
    # A binary model on an fmap fitted for multitask labels.
    with pytest.raises(FmapError, match="learns one label; the fmap has 2"):
        train.run(ws.job(labels=("click",)))


# ---------------------------------------------------------------- training learns


def _train(tmp_path: Path, task: str, params: dict | None = None, **options: object) -> tuple:
    """Train the task's model on 3000 synthetic rows; its scores on 600 held-out rows."""
    ws = _workspace(tmp_path, task)
    table = task_table(task, 3000, 11)
    write_partition(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), table)
    if options.get("input") == "tfrecord":
        write_tfrecords(ws.layout.tfrecord(FEATURE_TAG, TRAIN_DATE), table)
    params = {
        "epochs": 8,
        "batch_size": 64,
        "hidden_units": [32],
        "learning_rate": 0.01,
        **(params or {}),
    }
    result = train.run(task_job(ws, task, params=params, options=dict(options)))
    holdout = task_table(task, 600, 12).combine_chunks()
    model = model_io.load_model(result["model"])
    scores = model(inputs_from_arrow(holdout.to_batches()[0], ws.fmap))
    manifest = json.loads((Path(local_path(result["model"])) / "manifest.json").read_text())
    return result, holdout, scores, manifest


def test_dnn_classifier_learns_three_classes(tmp_path: Path) -> None:
    result, holdout, scores, manifest = _train(tmp_path, "multiclass")
    assert (result["rows"], result["epochs"], result["task"]) == (3000, 8, "multiclass")
    predicted = np.argmax(scores.numpy(), axis=1)
    truth = holdout.column("label").to_numpy()
    assert (predicted == truth).mean() > 0.9
    assert manifest["task"] == "multiclass"
    assert manifest["heads"] == [
        {"name": "score", "label": "label", "kind": "multiclass", "classes": list(CLASSES)}
    ]
    assert manifest["feature"]["label"] == "label"


def test_dnn_multilabel_classifier_learns_each_label(tmp_path: Path) -> None:
    _, holdout, scores, manifest = _train(tmp_path, "multilabel", input="tfrecord")
    assert scores.shape == (600, 2)
    for i, label in enumerate(MULTILABEL_LABELS):
        accuracy = ((scores.numpy()[:, i] > 0.5) == holdout.column(label).to_numpy()).mean()
        assert accuracy > 0.9, label
    assert [h["label"] for h in manifest["heads"]] == list(MULTILABEL_LABELS)
    assert manifest["feature"]["labels"] == list(MULTILABEL_LABELS)


@pytest.mark.parametrize("experts", [0, 2])
def test_dnn_multitask_learns_both_heads(tmp_path: Path, experts: int) -> None:
    result, holdout, outputs, manifest = _train(tmp_path, "multitask", {"experts": experts})
    assert [(h["label"], h["kind"]) for h in manifest["heads"]] == [
        ("click", "binary"),
        ("dwell", "regression"),
    ]
    click = outputs["click"].numpy()[:, 0]
    assert ((click > 0.5) == holdout.column("click").to_numpy()).mean() > 0.9
    dwell = holdout.column("dwell").to_numpy()
    mse = float(np.mean((outputs["dwell"].numpy()[:, 0] - dwell) ** 2))
    assert mse < 0.2 * float(np.var(dwell))
    history = json.loads((Path(local_path(result["model"])) / "history.json").read_text())
    assert {"click_loss", "dwell_loss"} <= set(history["epochs"][-1])
