"""Apply a fitted fmap to a raw-feature frame: every transform a Spark expression.

Numeric features become one ``array<float>`` per bucket: nulls take their
fitted fill value, then the fitted statistics normalise them
(:mod:`spark_jobs.normalizers`), then the bucket's missing indicators follow. Categoricals use a
literal-map lookup (small vocabularies) or a broadcast join (large ones),
with distinct reserved ids for unseen values and nulls
(:class:`~dlflow_airflow.contract.fmap.IdLayout`). Output columns are exactly
the primary keys, the labels and :meth:`FeatureMap.input_columns`.
"""

from __future__ import annotations

import difflib
import json
import logging

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract.fmap import (
    FORMAT_VERSION,
    ID_LAYOUTS,
    Bucket,
    Feature,
    FeatureMap,
    IdLayout,
    Normalizers,
)
from dlflow_airflow.contract.schema import FeatureSpec, method_params
from spark_jobs import sql_text
from spark_jobs.columns import col, cols, quote
from spark_jobs.encode_labels import label_columns
from spark_jobs.feature_types import (
    EncodeError,
    UnknownFeatureError,
    column_type,
    dtype_category,
    element_values,
    feature_fields,
)
from spark_jobs.normalizers import impute, missing_indicator, normalize, pnorm

log = logging.getLogger(__name__)

# Vocabularies up to this size become a literal map in the plan (Spark hashes a
# large literal map's keys once and looks values up in that table); larger ones
# are looked up through a broadcast hash join, which keeps the vocabulary out of
# the plan. Measured (1M rows, 2 cores, Spark 4.2): the literal map 0.22 s vs the
# join 0.32 s at 2,000 values, 0.27 vs 0.31 s at 20,000, 0.97 vs 0.81 s at 200,000.
MAP_LOOKUP_LIMIT = 20_000
# The literal map's type, as SQL text (no quote or backslash: the same under any parser setting).
MAP_TYPE = "'MAP<STRING, INT>'"


def check_fmap(fmap: FeatureMap, frame: DataFrame, feature: FeatureSpec, source: str) -> None:
    """Refuse an fmap that does not fit this raw table (schema drift)."""
    if list(fmap.primary_keys) != feature.primary_keys or list(fmap.labels) != feature.labels:
        raise EncodeError(
            f"fmap {source} was fitted with primary keys {list(fmap.primary_keys)} and labels "
            f"{list(fmap.labels)}, the job has {feature.primary_keys} and {feature.labels}; "
            "refit it (encode option refit: true, with a model date)"
        )
    types = {f.name: f for f in frame.schema.fields}
    for bucket in fmap.buckets:
        for wanted in (*bucket.nums, *bucket.ctgs):
            found = types.get(wanted.name)
            if found is None:
                close = difflib.get_close_matches(wanted.name, list(types), n=3)
                hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise UnknownFeatureError(
                    f"fmap {source} needs column {wanted.name!r} (bucket {bucket.name!r}), "
                    f"but the raw table has no such column{hint}"
                )
            if column_type(found) != dtype_category(wanted.dtype):
                raise EncodeError(
                    f"column {wanted.name!r} is {found.dataType.simpleString()} now but the "
                    f"fmap {source} encodes it as {wanted.dtype}; refit it (refit: true)"
                )
    known = {f.name for f in fmap.features}
    extra = [f.name for f in feature_fields(frame.schema, feature) if f.name not in known]
    if extra:
        log.warning("columns %s are not in the reused fmap %s and are left out", extra, source)


def reserved_ids(feature: Feature, value: str, found: str, layout: IdLayout) -> str:
    """SQL text: the id of ``value`` given ``found`` (SQL text), its vocabulary id or
    null: the null id for a null value, the unseen id for a value not in the vocabulary.

    ``found`` appears once: in two branches of a ``CASE`` Spark evaluated the
    look-up twice per row (it shares no subexpression across conditional branches).
    """
    null_id, unseen_id = feature.offset + layout.null, feature.offset + layout.unseen
    return f"CASE WHEN {value} IS NULL THEN {null_id} ELSE coalesce({found}, {unseen_id}) END"


def category_id(feature: Feature, value: str, layout: IdLayout = ID_LAYOUTS[FORMAT_VERSION]) -> str:
    """SQL text: the id of ``value`` (SQL text): ``offset + first + i`` for
    ``vocab[i]``, else the null or unseen id."""
    vocab = feature.meta.get("vocab", [])
    if not vocab:
        return reserved_ids(feature, value, "CAST(NULL AS INT)", layout)
    start = feature.offset + layout.first
    # One JSON literal, parsed once at planning (Spark folds it into a literal map):
    # ``F.lit(vocab)`` would make a call to the JVM per value (0.6 s for 2,000 values).
    ids = sql_text.string(json.dumps({v: start + i for i, v in enumerate(vocab)}))
    return reserved_ids(
        feature, value, f"try_element_at(from_json({ids}, {MAP_TYPE}), {value})", layout
    )


def _join_vocab(
    spark: SparkSession, frame: DataFrame, feature: Feature, id_column: str, layout: IdLayout
) -> DataFrame:
    """Add ``id_column`` (the vocabulary id, null if absent) through a broadcast join."""
    vocab = feature.meta["vocab"]
    value_column = f"{id_column}_value"
    start = feature.offset + layout.first
    table = spark.createDataFrame(
        [(v, start + i) for i, v in enumerate(vocab)],
        T.StructType(
            [
                T.StructField(value_column, T.StringType(), False),
                T.StructField(id_column, T.IntegerType(), False),
            ]
        ),
    )
    joined = frame.join(F.broadcast(table), col(feature.name) == F.col(value_column), how="left")
    return joined.drop(value_column)


def numeric_vector(
    bucket: Bucket, types: dict[str, T.DataType], normalizers: Normalizers
) -> Column:
    """The bucket's ``<bucket>_nums`` column (``array<float>``): the imputed and
    normalised feature positions, then one 0/1 position per missing indicator.

    Built as one SQL expression (:mod:`spark_jobs.sql_text`): one call to the JVM
    per bucket rather than dozens per feature position.
    """
    values: list[str] = []
    stats: list[dict[str, float | None]] = []
    flags: dict[str, str] = {}
    for feature in bucket.nums:
        raw = element_values(
            feature.name, types[feature.name], feature.size, feature.meta.get("keys")
        )
        fitted = normalizers.of(bucket.name, feature.name)
        fills = fitted.get("fill") or [None] * feature.size  # none in older statistics
        values += impute(raw, fills)
        stats += [{k: v[i] for k, v in fitted.items()} for i in range(feature.size)]
        if feature.name in bucket.missing_indicators:
            flags[feature.name] = missing_indicator(raw)
    indicators = [flags[name] for name in bucket.missing_indicators]
    if bucket.encode and bucket.method == "pnorm":  # a function of the whole vector
        p = float(method_params("pnorm", bucket.params)["p"])
        vector = pnorm(f"array({', '.join(values)})", p)
        if indicators:
            vector = f"concat({vector}, array({', '.join(indicators)}))"
        return F.expr(f"CAST({vector} AS ARRAY<FLOAT>)").alias(bucket.nums_column)
    positions = normalize(values, stats, bucket.method, bucket.params, bucket.encode)
    return F.expr(float_array([*positions, *indicators])).alias(bucket.nums_column)


# The encoded arrays' elements are nullable, as every encoded table has had them
# (Parquet's optional elements): an array of non-null values would be written with
# required elements. So elements go through an exact, nullable identity, which costs
# less than a cast of the whole array; the outer cast to the same type is dropped by
# Spark then, and types an array of constants (folded into a literal) as nullable.


def float_array(positions: list[str]) -> str:
    """SQL text: the ``array<float>`` of the ``positions`` (SQL text of doubles, none
    null), each cast to float and multiplied by 1 with ``try_multiply`` (exact for
    every float, NaN, infinities and -0.0 included; nullable). Every position, since
    Spark folds a constant one (a feature constant at fit) into a non-null literal.

    Not a cast of an array of doubles: Spark casts an array element by element into
    boxed objects, 8% of the encoded write on ``bench/encode.py``'s table (1.48 s
    against 1.36 s, medians of seven).
    """
    floats = [f"try_multiply(CAST({p} AS FLOAT), CAST(1 AS FLOAT))" for p in positions]
    return f"CAST(array({', '.join(floats)}) AS ARRAY<FLOAT>)"


def id_array(ids: list[str]) -> str:
    """SQL text: the ``array<int>`` of the ``ids`` (SQL text, none null, each reading
    its column); the first through ``nullif(id, -1)``, the id itself (ids are never
    negative; nullable). Spark folds an integer ``try_multiply`` by 1 away,
    nullability and all."""
    return f"CAST(array({', '.join([f'nullif({ids[0]}, -1)', *ids[1:]])}) AS ARRAY<INT>)"


def encode_frame(
    spark: SparkSession, frame: DataFrame, fmap: FeatureMap, normalizers: Normalizers
) -> DataFrame:
    """The encoded table: keys, labels, then one array column per bucket field."""
    types = {f.name: f.dataType for f in frame.schema.fields}
    layout = fmap.id_layout
    ids: dict[tuple[str, str], str] = {}
    for b, bucket in enumerate(fmap.buckets):
        for c, feature in enumerate(bucket.ctgs):
            value = quote(feature.name)
            if len(feature.meta.get("vocab", [])) > MAP_LOOKUP_LIMIT:
                id_column = f"__dlflow_id_{b}_{c}"
                frame = _join_vocab(spark, frame, feature, id_column, layout)
                found = quote(id_column)
                ids[(bucket.name, feature.name)] = reserved_ids(feature, value, found, layout)
            else:
                ids[(bucket.name, feature.name)] = category_id(feature, value, layout)
    outputs = [*cols(fmap.primary_keys), *label_columns(fmap)]
    for bucket in fmap.buckets:
        if bucket.nums:
            outputs.append(numeric_vector(bucket, types, normalizers))
        if bucket.ctgs:
            values = [ids[(bucket.name, f.name)] for f in bucket.ctgs]
            outputs.append(F.expr(id_array(values)).alias(bucket.ctgs_column))
    return frame.select(*outputs)


def write_options(fmap: FeatureMap) -> dict[str, str]:
    """Parquet writer options of an encoded table: no dictionary encoding, and no
    column statistics for the feature arrays.

    Normalised numbers are mostly distinct, so Parquet builds a dictionary for each
    column chunk only to drop it once it grows too large; key columns are mostly
    distinct too; nothing filters on the arrays' elements by their min and max.
    Measured on ``bench/encode.py``'s table (1M rows, 2 cores, medians of five): the
    write 1.52 s instead of 1.67 s, files ~6% larger, read back as plain values.
    """
    options = {"parquet.enable.dictionary": "false"}
    for column in fmap.input_columns():
        options[f"parquet.column.statistics.enabled#{column}.list.element"] = "false"
    return options
