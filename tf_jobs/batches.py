"""Turn Arrow record batches of the encoded table into model inputs.

The one conversion used by training (Parquet -> tf.data), evaluation and
Spark predict (``mapInArrow``), so every stage feeds the model the same way.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dlflow_airflow.contract.fmap import FeatureMap, FmapError


def input_specs(fmap: FeatureMap) -> dict[str, tuple[np.dtype, int]]:
    """Model input name -> (dtype, width), in the fmap's stable order."""
    specs: dict[str, tuple[np.dtype, int]] = {}
    for bucket in fmap.buckets:
        if bucket.nums:
            specs[bucket.nums_column] = (np.dtype(np.float32), bucket.nums_width)
        if bucket.ctgs:
            specs[bucket.ctgs_column] = (np.dtype(np.int32), bucket.ctgs_width)
    return specs


def vector_column(batch: pa.RecordBatch, name: str, dtype: np.dtype, width: int) -> np.ndarray:
    """A list column of fixed width as a 2-D array, without a per-row loop."""
    try:
        column = batch.column(name)
    except KeyError:
        raise FmapError(
            f"encoded data has no column {name!r}; it has {batch.schema.names}"
        ) from None
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    rows = len(column)
    if values.size != rows * width:
        raise FmapError(
            f"column {name!r}: expected {width} values per row ({rows * width} in all), "
            f"got {values.size}; the data does not match the fmap"
        )
    return values.astype(dtype, copy=False).reshape(rows, width)


def inputs_from_arrow(batch: pa.RecordBatch, fmap: FeatureMap) -> dict[str, np.ndarray]:
    return {
        name: vector_column(batch, name, dtype, width)
        for name, (dtype, width) in input_specs(fmap).items()
    }
