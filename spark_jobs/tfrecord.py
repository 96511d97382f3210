"""TFRecord part files written from ``mapInArrow`` tasks: no JVM jar, no TensorFlow.

Each record is a ``tf.train.Example`` serialized by hand (protobuf wire
format)::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }
    Feature  { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; }

and framed as TensorFlow reads it: ``uint64 length (LE)``, masked crc32c of
the length, the data, masked crc32c of the data. Column types map to
features: integers and booleans -> int64_list, floats -> float_list, strings
and binary -> bytes_list, ``array<float>`` -> float_list, ``array<int>`` ->
int64_list. A null value leaves its feature out of the record.

Each task writes ``part-NNNNN-<run id>.tfrecord[.gz]`` under a hidden
temporary name and renames it when complete; the run id is shared by all
tasks, so a retried task replaces its own part instead of adding one.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from dlflow_airflow.contract import storage

COMPRESSIONS = ("none", "gzip")
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF

# Feature field tags (field number << 3 | wire type 2).
_BYTES_LIST, _FLOAT_LIST, _INT64_LIST = b"\x0a", b"\x12", b"\x1a"
_KINDS = {"bytes": _BYTES_LIST, "float": _FLOAT_LIST, "int64": _INT64_LIST}


class TFRecordError(ValueError):
    """A table cannot be written as TFRecords."""


# ---------------------------------------------------------------- crc32c


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


def crc32c_python(data: bytes) -> int:
    """Pure-Python crc32c (Castagnoli); the fallback when google-crc32c is absent."""
    table = _TABLE
    crc = _U32
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


_TABLE = _crc32c_table()

try:
    from google_crc32c import value as crc32c
except ImportError:  # pragma: no cover - exercised only without the C extension
    crc32c = crc32c_python


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, masked crc of the length, data, masked crc of the data."""
    length = struct.pack("<Q", len(data))
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc32c(length)),
            data,
            struct.pack("<I", masked_crc32c(data)),
        )
    )


# ---------------------------------------------------------------- protobuf


@functools.lru_cache(maxsize=4096)
def _varint_small(value: int) -> bytes:
    return _varint_slow(value)


def _varint_slow(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64: ten-byte two's complement
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint(value: int) -> bytes:
    return _varint_small(value) if 0 <= value < 4096 else _varint_slow(value)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + varint(len(payload)) + payload


def packed_varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """All ``values`` varint-encoded into one buffer, and each value's end offset."""
    unsigned = values.astype(np.int64, copy=False).view(np.uint64)
    sizes = np.ones(unsigned.shape, dtype=np.int64)
    for shift in range(7, 64, 7):
        sizes += unsigned >= (np.uint64(1) << np.uint64(shift))
    ends = np.cumsum(sizes)
    out = np.zeros(int(ends[-1]) if ends.size else 0, dtype=np.uint8)
    starts = ends - sizes
    for k in range(int(sizes.max()) if sizes.size else 0):
        has = sizes > k
        chunk = (unsigned[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (sizes[has] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[has] + k] = (chunk | more).astype(np.uint8)
    return out.tobytes(), ends


# ---------------------------------------------------------------- columns


@dataclass(frozen=True)
class ColumnSpec:
    """How one column becomes one Example feature."""

    name: str
    kind: str  # bytes | float | int64
    is_list: bool


def column_specs(schema: T.StructType) -> list[ColumnSpec]:
    """Specs for a Spark schema; raises :class:`TFRecordError` for other types."""
    return [_spec(field.name, field.dataType) for field in schema.fields]


def _spec(name: str, data_type: T.DataType) -> ColumnSpec:
    is_list = isinstance(data_type, T.ArrayType)
    value_type = data_type.elementType if is_list else data_type
    if isinstance(value_type, (T.IntegralType, T.BooleanType)):
        kind = "int64"
    elif isinstance(value_type, (T.FloatType, T.DoubleType)):
        kind = "float"
    elif not is_list and isinstance(value_type, (T.StringType, T.BinaryType)):
        kind = "bytes"
    else:
        raise TFRecordError(
            f"column {name!r} has type {data_type.simpleString()}, which this TFRecord "
            "writer does not hold (integers, booleans, floats, strings, binary, and arrays "
            "of numbers)"
        )
    return ColumnSpec(name, kind, is_list)


def _column_payloads(column: pa.Array, spec: ColumnSpec) -> list[bytes | None]:
    """Per row, the serialized ``Feature`` message (None for a null value)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if spec.is_list:
        values = column.flatten()
        offsets = column.offsets.to_numpy() - column.offsets[0].as_py()
        if values.null_count:
            raise TFRecordError(f"column {spec.name!r} has null list elements")
    else:
        values = column if spec.kind == "bytes" else _fill_nulls(column)
        offsets = np.arange(len(column) + 1, dtype=np.int64)

    tag = _KINDS[spec.kind]
    if spec.kind == "bytes":
        texts = values.to_pylist()
        return [
            _field(tag, _field(b"\x0a", _as_bytes(text))) if ok else None
            for text, ok in zip(texts, valid, strict=True)
        ]
    if spec.kind == "float":
        buffer = values.to_numpy(zero_copy_only=False).astype("<f4").tobytes()
        ends = offsets * 4
    else:
        numbers = values.to_numpy(zero_copy_only=False).astype(np.int64)
        buffer, value_ends = packed_varints(numbers)
        ends = np.concatenate(([0], value_ends))[offsets]
    starts_list, ends_list = ends[:-1].tolist(), ends[1:].tolist()
    payloads: list[bytes | None] = []
    for start, end, ok in zip(starts_list, ends_list, valid, strict=True):
        if not ok:
            payloads.append(None)
            continue
        inner = _field(b"\x0a", buffer[start:end]) if end > start else b""
        payloads.append(_field(tag, inner))
    return payloads


def _fill_nulls(column: pa.Array) -> pa.Array:
    """Nulls as zeros, so the values convert to numpy (null rows are left out anyway)."""
    if not column.null_count:
        return column
    zero = False if pa.types.is_boolean(column.type) else 0
    return pc.fill_null(column, pa.scalar(zero, column.type))


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def serialize_batch(batch: pa.RecordBatch, specs: list[ColumnSpec]) -> list[bytes]:
    """Each row of ``batch`` as a serialized ``tf.train.Example``."""
    keys = [_field(b"\x0a", spec.name.encode("utf-8")) for spec in specs]
    columns = [_column_payloads(batch.column(spec.name), spec) for spec in specs]
    records = []
    for row in zip(*columns, strict=True):
        entries = b"".join(
            _field(b"\x0a", key + _field(b"\x12", feature))
            for key, feature in zip(keys, row, strict=True)
            if feature is not None
        )
        records.append(_field(b"\x0a", entries) if entries else b"")
    return records


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class WriteResult:
    files: tuple[str, ...]
    rows: int


def part_name(partition: int, run_id: str, compression: str) -> str:
    suffix = ".tfrecord.gz" if compression == "gzip" else ".tfrecord"
    return f"part-{partition:05d}-{run_id}{suffix}"


def write_partition(
    batches: Iterator[pa.RecordBatch],
    *,
    folder: str,
    run_id: str,
    compression: str,
    specs: list[ColumnSpec],
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: write one part file; yield (file, rows)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    attempt = context.attemptNumber() if context else 0
    name = part_name(partition, run_id, compression)
    filesystem, base = storage.resolve(folder)
    temporary = f"{base}/.{name}.attempt-{attempt}.tmp"
    rows = 0
    stream = None
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if stream is None:
                codec = "gzip" if compression == "gzip" else None
                stream = filesystem.open_output_stream(temporary, compression=codec)
            stream.write(b"".join(frame_record(r) for r in serialize_batch(batch, specs)))
            rows += batch.num_rows
    finally:
        if stream is not None:
            stream.close()
    if stream is not None:
        filesystem.move(temporary, f"{base}/{name}")
    yield pa.RecordBatch.from_pydict(
        {"file": [name if rows else None], "rows": [rows]},
        schema=pa.schema([("file", pa.string()), ("rows", pa.int64())]),
    )


def write_tfrecords(frame: DataFrame, folder: str, *, compression: str = "none") -> WriteResult:
    """Write ``frame`` (a Spark DataFrame) as TFRecord part files into ``folder``.

    :param folder: a staging folder URI; commit it afterwards.
    :param compression: ``none`` or ``gzip`` (``.tfrecord.gz``, read with
        ``TFRecordDataset(..., compression_type="GZIP")``).
    """
    if compression not in COMPRESSIONS:
        raise TFRecordError(f"compression {compression!r} is not one of {COMPRESSIONS}")
    specs = column_specs(frame.schema)
    filesystem, base = storage.resolve(folder)
    filesystem.create_dir(base, recursive=True)
    writer = functools.partial(
        write_partition,
        folder=folder,
        run_id=uuid.uuid4().hex[:12],
        compression=compression,
        specs=specs,
    )
    reports = frame.mapInArrow(writer, "file string, rows long").collect()
    files = tuple(sorted(r["file"] for r in reports if r["file"]))
    _remove_temporaries(folder)
    return WriteResult(files=files, rows=sum(r["rows"] for r in reports))


def _remove_temporaries(folder: str) -> None:
    """Delete what failed task attempts left behind."""
    filesystem, base = storage.resolve(folder)
    for name in storage.list_names(folder):
        if name.startswith(".part-") and name.endswith(".tmp"):
            filesystem.delete_file(f"{base}/{name}")
