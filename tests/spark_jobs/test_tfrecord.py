from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql import types as T

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import FeatureMap
from dlflow_airflow.contract.layout import local_path
from spark_jobs import encode
from spark_jobs.tfrecord import (
    TFRecordError,
    column_specs,
    crc32c,
    crc32c_python,
    frame_record,
    masked_crc32c,
    packed_varints,
    serialize_batch,
)

from .conftest import DATE, DEMO_ROWS

SCHEMA = T.StructType(
    [
        T.StructField("uid", T.LongType()),
        T.StructField("name", T.StringType()),
        T.StructField("weight", T.DoubleType()),
        T.StructField("flag", T.BooleanType()),
        T.StructField("u_nums", T.ArrayType(T.FloatType())),
        T.StructField("u_ctgs", T.ArrayType(T.IntegerType())),
    ]
)
BATCH = pa.RecordBatch.from_pydict(
    {
        "uid": pa.array([1, -5, None, 2**40], pa.int64()),
        "name": pa.array(["a", None, "héllo", ""]),
        "weight": pa.array([1.5, None, 0.0, 2.0], pa.float64()),
        "flag": pa.array([True, False, None, True]),
        "u_nums": pa.array([[0.25, 0.5], [0.75, 1.0], None, []], pa.list_(pa.float32())),
        "u_ctgs": pa.array(
            [[1, 200, 70000], [0, 5, 9], [3, 2, 1], [2**31 - 1, 0, 128]], pa.list_(pa.int32())
        ),
    }
)


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == crc32c_python(b"123456789") == 0xE3069283
    data = bytes(range(256)) * 3
    assert crc32c(data) == crc32c_python(data)
    crc = crc32c(b"abc")
    assert masked_crc32c(b"abc") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


def test_framing() -> None:
    framed = frame_record(b"hello")
    (length,) = struct.unpack("<Q", framed[:8])
    assert length == 5 and framed[12:17] == b"hello" and len(framed) == 21
    assert struct.unpack("<I", framed[8:12])[0] == masked_crc32c(framed[:8])
    assert struct.unpack("<I", framed[17:])[0] == masked_crc32c(b"hello")


def test_varints_match_protobuf_encoding() -> None:
    from google.protobuf.internal.encoder import _VarintBytes

    values = np.array([0, 1, 127, 128, 300, 2**31 - 1, -1, -(2**40), 2**62], dtype=np.int64)
    buffer, ends = packed_varints(values)
    expected = [_VarintBytes(int(v) & (2**64 - 1)) for v in values]
    assert buffer == b"".join(expected)
    assert ends.tolist() == np.cumsum([len(e) for e in expected]).tolist()


@pytest.mark.tf
def test_examples_parse_with_tensorflow_protos() -> None:
    import tensorflow as tf

    records = serialize_batch(BATCH, column_specs(SCHEMA))
    parsed = []
    for record in records:
        features = tf.train.Example.FromString(record).features.feature
        parsed.append(
            {k: list(getattr(v, v.WhichOneof("kind")).value) for k, v in features.items()}
        )
    assert parsed[0] == {
        "uid": [1],
        "name": [b"a"],
        "weight": [1.5],
        "flag": [1],
        "u_nums": [0.25, 0.5],
        "u_ctgs": [1, 200, 70000],
    }
    assert parsed[1] == {"uid": [-5], "flag": [0], "u_nums": [0.75, 1.0], "u_ctgs": [0, 5, 9]}
    assert parsed[2] == {"name": ["héllo".encode()], "weight": [0.0], "u_ctgs": [3, 2, 1]}
    assert parsed[3]["uid"] == [2**40] and parsed[3]["u_nums"] == []
    assert parsed[3]["u_ctgs"] == [2**31 - 1, 0, 128] and parsed[3]["name"] == [b""]
    # A slice serializes its own rows only.
    assert serialize_batch(BATCH.slice(1, 2), column_specs(SCHEMA)) == records[1:3]


@pytest.mark.tf
def test_framed_file_reads_with_tf_data(tmp_path: Path) -> None:
    import tensorflow as tf

    records = serialize_batch(BATCH, column_specs(SCHEMA))
    path = tmp_path / "part.tfrecord"
    path.write_bytes(b"".join(frame_record(r) for r in records))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records


def test_unsupported_types_are_named() -> None:
    schema = T.StructType([T.StructField("when", T.DateType())])
    with pytest.raises(TFRecordError, match="'when' has type date"):
        column_specs(schema)


@pytest.mark.spark
@pytest.mark.tf
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_encode_tfrecords_read_back_like_the_parquet(
    pipeline: Any, spark: Any, compression: str
) -> None:
    import tensorflow as tf

    job = pipeline.job("encode", options={"tfrecord": True, "tfrecord_compression": compression})
    result = encode.run(spark, job)
    assert result["fmap_reused"] and result["tfrecord"] == job.layout.tfrecord("ctr", DATE)
    assert storage.is_complete(result["tfrecord"])
    suffix = ".tfrecord.gz" if compression == "gzip" else ".tfrecord"
    names = [n for n in storage.list_names(result["tfrecord"]) if n.startswith("part-")]
    assert names and all(n.endswith(suffix) for n in names)
    assert not [n for n in storage.list_names(result["tfrecord"]) if n.endswith(".tmp")]

    fmap = FeatureMap.load(result["fmap"])
    spec = {
        "uid": tf.io.FixedLenFeature([], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    for bucket in fmap.buckets:
        if bucket.nums:
            spec[bucket.nums_column] = tf.io.FixedLenFeature([bucket.nums_width], tf.float32)
        if bucket.ctgs:
            spec[bucket.ctgs_column] = tf.io.FixedLenFeature([bucket.ctgs_width], tf.int64)
    assert set(spec) == {"uid", "label", *fmap.input_columns()}
    files = [f"{local_path(result['tfrecord'])}/{n}" for n in names]
    dataset = tf.data.TFRecordDataset(
        files, compression_type="GZIP" if compression == "gzip" else ""
    )
    (parsed,) = dataset.batch(DEMO_ROWS * 2).map(lambda s: tf.io.parse_example(s, spec))
    assert parsed["uid"].shape[0] == DEMO_ROWS

    order = np.argsort(parsed["uid"].numpy())
    parquet = spark.read.parquet(result["output"]).orderBy("uid").toPandas()
    assert (parsed["uid"].numpy()[order] == parquet["uid"].to_numpy()).all()
    assert (parsed["label"].numpy()[order] == parquet["label"].to_numpy()).all()
    for column in fmap.input_columns():
        expected = np.stack(parquet[column].to_numpy())
        got = parsed[column].numpy()[order]
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected.astype(got.dtype))
