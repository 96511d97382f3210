"""A small workspace for the TensorFlow jobs: an fmap and encoded partitions, written
with pyarrow the way the Spark encode job lays them out (no Spark needed).

Labels follow a known function of the inputs plus noise, so a trained model
must reach a clearly better-than-chance AUC.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlflow_airflow.contract.fmap import Bucket, Feature, FeatureMap
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.layout import Layout, local_path
from dlflow_airflow.contract.tasks import LabelEncoding

FEATURE_TAG = "ctr_v1"
MODEL_TAG = "dnn_v1"
TRAIN_DATE = "2026-01-01"
EVAL_DATE = "2026-01-02"
TRAIN_ROWS = 6000
EVAL_ROWS = 3000
# Small and quick: the tests check behaviour, not model quality.
FAST_PARAMS = {"epochs": 3, "batch_size": 256, "hidden_units": [16], "learning_rate": 0.01}


def make_fmap(model_date: str = TRAIN_DATE) -> FeatureMap:
    """Two buckets: ``user`` with numbers and categories, ``item`` with categories only."""
    user = Bucket(
        name="user",
        method="minmax",
        nums=(
            Feature(name="age", dtype="double", size=1, offset=0, meta={"min": 0, "max": 1}),
            Feature(name="spend", dtype="double", size=1, offset=1, meta={"min": 0, "max": 1}),
        ),
        ctgs=(
            Feature(name="city", dtype="string", size=6, offset=0, meta={"vocab": list("abcde")}),
            Feature(name="device", dtype="string", size=4, offset=6, meta={"vocab": list("xyz")}),
        ),
    )
    item = Bucket(
        name="item",
        method="minmax",
        ctgs=(
            Feature(
                name="category", dtype="string", size=5, offset=0, meta={"vocab": list("pqrs")}
            ),
        ),
    )
    return FeatureMap(
        feature_tag=FEATURE_TAG,
        model_date=model_date,
        primary_keys=("uid",),
        labels=("label",),
        buckets=(user, item),
    )


def encoded_table(rows: int, seed: int, label_values: np.ndarray | None = None) -> pa.Table:
    """An encoded table whose label depends on age, city and category."""
    rng = np.random.default_rng(seed)
    age = rng.random(rows, dtype=np.float32)
    spend = rng.random(rows, dtype=np.float32)
    city = rng.integers(1, 6, rows, dtype=np.int32)  # ids 1..5 (0 is unseen)
    device = 6 + rng.integers(0, 4, rows, dtype=np.int32)  # ids 6..9, 6 is unseen
    category = rng.integers(0, 5, rows, dtype=np.int32)
    logit = 4.0 * (age - 0.5) + np.where(city >= 4, 1.5, -1.5) + np.where(category == 2, 1.0, 0.0)
    labels = (logit + rng.normal(0.0, 1.0, rows) > 0).astype(np.int64)
    if label_values is not None:
        labels = label_values
    return pa.table(
        {
            "uid": pa.array(np.arange(rows, dtype=np.int64)),
            "label": pa.array(labels),
            "user_nums": _list_column(np.stack([age, spend], axis=1), pa.float32()),
            "user_ctgs": _list_column(np.stack([city, device], axis=1), pa.int32()),
            "item_ctgs": _list_column(category.reshape(-1, 1), pa.int32()),
        }
    )


def _list_column(values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    rows, width = values.shape
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), type=value_type))


def write_partition(uri: str, table: pa.Table, parts: int = 2, success: bool = True) -> None:
    """Part files plus ``_SUCCESS``, like a Spark job's output folder."""
    path = Path(local_path(uri))
    path.mkdir(parents=True, exist_ok=True)
    step = -(-table.num_rows // parts) if table.num_rows and parts else 1
    for i in range(parts):
        pq.write_table(table.slice(i * step, step), path / f"part-{i:05d}-test.snappy.parquet")
    # Files a reader must skip.
    (path / ".part-00000-test.snappy.parquet.crc").write_bytes(b"crc")
    if success:
        (path / "_SUCCESS").touch()


@dataclass(frozen=True)
class Workspace:
    uri: str
    fmap: FeatureMap

    @property
    def layout(self) -> Layout:
        return Layout(self.uri)

    def job(
        self,
        date: str = TRAIN_DATE,
        *,
        kind: str = "train",
        model_name: str = "dnn_binary_classifier",
        params: dict[str, Any] | None = None,
        labels: tuple[str, ...] = ("label",),
        model_date: str = TRAIN_DATE,
        options: dict[str, Any] | None = None,
        heads: dict[str, str] | None = None,
    ) -> JobConfig:
        """The ``kind`` job's document (``train`` or ``evaluate``), parsed as that job parses it.

        No ``stage``: ``kind`` supplies the stage's default tags, like a job run by hand.
        """
        return JobConfig.from_body(
            date,
            {
                "workspace": self.uri,
                "feature": {"tag": FEATURE_TAG, "primary_keys": ["uid"], "labels": list(labels)},
                "model": {
                    "tag": MODEL_TAG,
                    "name": model_name,
                    "date": model_date,
                    "params": dict(FAST_PARAMS if params is None else params),
                    "heads": dict(heads or {}),
                },
                "options": {"threads": 2, **(options or {})},
            },
            job=kind,
        )


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """fmap at TRAIN_DATE; encoded partitions for TRAIN_DATE and EVAL_DATE."""
    root = tmp_path_factory.mktemp("ws")
    ws = Workspace(uri=f"file://{root}", fmap=make_fmap())
    ws.fmap.save(ws.layout.femodel(FEATURE_TAG, TRAIN_DATE))
    write_partition(ws.layout.encoded(FEATURE_TAG, TRAIN_DATE), encoded_table(TRAIN_ROWS, 1))
    write_partition(ws.layout.encoded(FEATURE_TAG, EVAL_DATE), encoded_table(EVAL_ROWS, 2), 3)
    return ws


@pytest.fixture(scope="session")
def trained(workspace: Workspace) -> dict[str, Any]:
    """The result of one real training run, shared by the tests that need a model."""
    from tf_jobs import train

    return train.run(workspace.job())


@pytest.fixture
def fresh_workspace(tmp_path: Path) -> Workspace:
    """A workspace holding only the fmap, for error cases that write their own data."""
    ws = Workspace(uri=f"file://{tmp_path}", fmap=make_fmap())
    ws.fmap.save(ws.layout.femodel(FEATURE_TAG, TRAIN_DATE))
    return ws


# ---------------------------------------------------------------- tasks beyond one score

CLASSES = ("cat", "dog", "fish")
"""The multiclass label's classes: encode writes the index (``UNSEEN_CLASS`` for others)."""
MULTILABEL_LABELS = ("clicked", "liked")
MULTITASK_LABELS = ("click", "dwell")  # a binary head and a regression head
MULTITASK_HEADS = {"dwell": "regression"}  # model.heads (click is binary by default)
TASK_MODELS = {
    "binary": "dnn_binary_classifier",
    "regression": "dnn_regressor",
    "multiclass": "dnn_classifier",
    "multilabel": "dnn_multilabel_classifier",
    "multitask": "dnn_multitask",
}


def task_fmap(task: str, model_date: str = TRAIN_DATE) -> FeatureMap:
    """:func:`make_fmap` with the labels a ``task`` model learns, as the fit records them."""
    encodings = {
        "binary": (LabelEncoding("label", "binary"),),
        "regression": (LabelEncoding("label", "regression"),),
        "multiclass": (LabelEncoding("label", "multiclass", CLASSES, (100, 100, 100)),),
        "multilabel": tuple(LabelEncoding(name, "binary") for name in MULTILABEL_LABELS),
        "multitask": (LabelEncoding("click", "binary"), LabelEncoding("dwell", "regression")),
    }[task]
    return replace(
        make_fmap(model_date),
        labels=tuple(e.name for e in encodings),
        label_encodings=encodings,
    )


def task_table(task: str, rows: int, seed: int) -> pa.Table:
    """:func:`encoded_table`'s inputs with labels a ``task`` model can learn from them.

    multiclass: the third of ``age`` (class index 0, 1, 2); multilabel: ``age > 0.5``
    and ``city >= 4``; multitask: ``click`` is ``age > 0.5``, ``dwell`` is
    ``2 * spend + (city >= 4)`` plus a little noise.
    """
    table = encoded_table(rows, seed)
    nums = np.array(table.column("user_nums").to_pylist(), np.float32).reshape(rows, 2)
    ctgs = np.array(table.column("user_ctgs").to_pylist(), np.int32).reshape(rows, 2)
    age, spend, big_city = nums[:, 0], nums[:, 1], (ctgs[:, 0] >= 4)
    if task in ("binary", "regression"):
        return table
    if task == "multiclass":
        labels = {"label": np.minimum((age * 3).astype(np.int32), 2)}
    elif task == "multilabel":
        labels = {"clicked": (age > 0.5).astype(np.int64), "liked": big_city.astype(np.int64)}
    else:
        noise = np.random.default_rng(seed).normal(0.0, 0.05, rows)
        labels = {
            "click": (age > 0.5).astype(np.int64),
            "dwell": (2.0 * spend + big_city + noise).astype(np.float64),
        }
    table = table.drop_columns(["label"])
    for name, values in labels.items():
        table = table.append_column(name, pa.array(values))
    return table


def task_job(ws: Workspace, task: str, **kwargs: Any) -> JobConfig:
    """``ws.job`` for the ``task`` model of :data:`TASK_MODELS` with its labels and heads."""
    kind = kwargs.pop("kind", "train")
    date = kwargs.pop("date", TRAIN_DATE)
    labels = task_fmap(task).labels
    body = ws.job(date, kind=kind, model_name=TASK_MODELS[task], labels=labels, **kwargs).body()
    if task == "multitask":
        body["model"]["heads"] = dict(MULTITASK_HEADS)
    return JobConfig.from_body(date, body, job=kind)
