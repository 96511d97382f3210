"""input: tfrecord — batch-then-parse reading of encode's TFRecord part files, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dlflow_airflow.contract.layout import local_path
from tests.tf_jobs.conftest import FEATURE_TAG, TRAIN_DATE, Workspace, encoded_table
from tests.tf_jobs.conftest import write_partition as write_parquet
from tf_jobs import tfrecord_input, train
from tf_jobs.inputs import EncodedDataError, InputOptions

pytestmark = pytest.mark.tf

PARAMS = {"epochs": 2, "batch_size": 128, "hidden_units": [8]}


def write_tfrecords(uri: str, table: pa.Table, parts: int = 2) -> list[Path]:
    """Part files of tf.train.Example records with the table's columns, plus _SUCCESS.

    Typed as encode writes them: integers and integer lists as int64 lists, floats
    and float lists as float lists.
    """
    import tensorflow as tf

    def feature(value: object) -> tf.train.Feature:
        values = value if isinstance(value, list) else [value]
        if all(isinstance(v, int) for v in values):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    folder = Path(local_path(uri))
    folder.mkdir(parents=True, exist_ok=True)
    rows = table.to_pylist()
    step = -(-len(rows) // parts)
    paths = []
    for i in range(parts):
        path = folder / f"part-{i:05d}-test.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for row in rows[i * step : (i + 1) * step]:
                features = {name: feature(value) for name, value in row.items()}
                example = tf.train.Example(features=tf.train.Features(feature=features))
                writer.write(example.SerializeToString())
        paths.append(path)
    (folder / "_SUCCESS").touch()
    return paths


def test_tfrecord_batches_equal_the_parquet_batches(fresh_workspace: Workspace) -> None:
    from tf_jobs import inputs

    layout = fresh_workspace.layout
    table = encoded_table(300, 6)
    write_tfrecords(layout.tfrecord(FEATURE_TAG, TRAIN_DATE), table, parts=1)
    write_parquet(layout.encoded(FEATURE_TAG, TRAIN_DATE), table, parts=1)
    options = InputOptions(batch_size=128, shuffle=False)
    fmap = fresh_workspace.fmap
    heads = fmap.heads("binary")
    source = tfrecord_input.open_tfrecord(layout.tfrecord(FEATURE_TAG, TRAIN_DATE))
    from_records = list(
        tfrecord_input.make_dataset(source, fmap, heads, options, rows=300, task="binary")
    )
    parquet = inputs.open_encoded(layout.encoded(FEATURE_TAG, TRAIN_DATE), fmap, heads)
    from_parquet = list(inputs.make_dataset(parquet, fmap, heads, options, rows=300, task="binary"))
    assert [len(b[1]) for b in from_records] == [128, 128, 44]
    for (x1, y1), (x2, y2) in zip(from_records, from_parquet, strict=True):
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())
        for name in fmap.input_columns():
            assert x1[name].dtype == x2[name].dtype
            np.testing.assert_array_equal(x1[name].numpy(), x2[name].numpy())


def test_train_from_tfrecords(fresh_workspace: Workspace) -> None:
    write_tfrecords(fresh_workspace.layout.tfrecord(FEATURE_TAG, TRAIN_DATE), encoded_table(600, 7))
    result = train.run(fresh_workspace.job(params=PARAMS, options={"input": "tfrecord"}))
    assert (result["rows"], result["epochs"]) == (600, 2)


def test_folder_without_part_files(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.tfrecord(FEATURE_TAG, TRAIN_DATE)
    folder = Path(local_path(uri))
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").touch()
    (folder / ".part-00000.tfrecord.crc").write_bytes(b"x")
    with pytest.raises(EncodedDataError, match=r"has no part files \(\*\.tfrecord\[\.gz\]\)"):
        train.run(fresh_workspace.job(params=PARAMS, options={"input": "tfrecord"}))


def test_parquet_folder_without_part_files(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    Path(local_path(uri)).mkdir(parents=True)
    (Path(local_path(uri)) / "_SUCCESS").touch()
    with pytest.raises(EncodedDataError, match="has no part files") as info:
        train.run(fresh_workspace.job(params=PARAMS))
    assert uri in str(info.value)


def test_corrupt_tfrecord_file_is_named(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.tfrecord(FEATURE_TAG, TRAIN_DATE)
    paths = write_tfrecords(uri, encoded_table(400, 8))
    data = bytearray(paths[1].read_bytes())
    data[200:210] = b"\xff" * 10  # flip bytes inside a record: its crc no longer matches
    paths[1].write_bytes(bytes(data))
    with pytest.raises(EncodedDataError, match="corrupt TFRecord file") as info:
        train.run(fresh_workspace.job(params=PARAMS, options={"input": "tfrecord"}))
    assert str(paths[1]) in str(info.value)
