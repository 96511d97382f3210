"""Encode: raw features -> fmap + normaliser statistics + encoded table (+ TFRecords).

Reads ``layout.raw(feature.tag, date)``. The fmap (``fmap.json``) and the
normaliser statistics (``normalizers.json``) live together at
``layout.femodel(feature.tag, model_date)``: existing ones are reused (so a
model date's encoding stays fixed while new dates are encoded with it) unless
``options.refit`` is true; otherwise they are fitted on this date's data.

Every transform is a Spark expression (see :mod:`spark_jobs.normalizers`);
categoricals use a literal-map lookup (small vocabularies) or a broadcast join
(large ones), with distinct reserved ids for unseen values and nulls
(:class:`~dlflow_airflow.contract.fmap.IdLayout`). Output columns are exactly the
primary keys, the labels and :meth:`FeatureMap.input_columns`. Column types:
:mod:`spark_jobs.feature_types`.

Options: ``refit`` (bool), ``tfrecord`` (bool), ``tfrecord_compression``
(``none`` | ``gzip``).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import (
    FMAP_FILE,
    FORMAT_VERSION,
    ID_LAYOUTS,
    NORMALIZERS_FILE,
    VOCAB_START,
    Bucket,
    Feature,
    FeatureMap,
    IdLayout,
    Normalizers,
)
from dlflow_airflow.contract.jobconf import JobConfig
from spark_jobs import vocabulary
from spark_jobs.feature_types import (
    ARRAY,
    MAP,
    SCALAR,
    STRING,
    EncodeError,
    UnknownFeatureError,
    UnsupportedColumnTypeError,
    as_double,
    column_type,
    dtype_category,
    element_values,
)
from spark_jobs.normalizers import METHODS, fitted_names, normalize, pnorm, statistic_aggs
from spark_jobs.paths import discard, latest_partition, require_complete
from spark_jobs.session import run_job
from spark_jobs.tfrecord import COMPRESSIONS, write_tfrecords

__all__ = [
    "EncodeError",
    "UnknownFeatureError",
    "UnsupportedColumnTypeError",
    "fit_fmap",
    "encode_frame",
    "run",
]

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "default"
MANY_CATEGORIES = vocabulary.MANY_CATEGORIES
# Vocabularies up to this size become a literal map in the plan; larger ones
# are looked up through a broadcast hash join, since a map lookup scans its
# keys. Measured (2M rows, 2 cores): even at ~30 values, the join 2x faster at
# 200, 4x at 2000, 17x at 10000.
MAP_LOOKUP_LIMIT = 64


@dataclass(frozen=True)
class BucketConf:
    """One bucket as configured (``buckets.<name>`` in the pipeline YAML)."""

    name: str
    method: str = "minmax"
    params: dict[str, Any] = field(default_factory=dict)
    encode: bool = True
    min_count: int = 1
    max_size: int | None = None
    features: tuple[str, ...] = ()

    @classmethod
    def from_job(cls, name: str, conf: dict[str, Any]) -> BucketConf:
        method = conf.get("method") or "minmax"
        if method not in METHODS:
            raise EncodeError(
                f"bucket {name!r}: method {method!r} is not supported; use {', '.join(METHODS)}"
            )
        return cls(
            name=name,
            method=method,
            params=dict(conf.get("params") or {}),
            encode=bool(conf.get("encode", True)),
            min_count=int(conf.get("min_count") or 1),
            max_size=conf.get("max_size"),
            features=tuple(conf.get("features") or ()),
        )


# ---------------------------------------------------------------- planning


def feature_fields(schema: T.StructType, job: JobConfig) -> list[T.StructField]:
    """The raw columns that become features, in table order."""
    reserved = {*job.feature.primary_keys, *job.feature.labels, *job.feature.drop_columns}
    return [f for f in schema.fields if f.name not in reserved]


def plan_buckets(
    fields: list[T.StructField], job: JobConfig, all_columns: list[str]
) -> list[BucketConf]:
    """The non-empty buckets with their features; leftovers go to ``default``."""
    names = [f.name for f in fields]
    plan: dict[str, BucketConf] = {}
    placed: dict[str, str] = {}
    for bucket, conf in job.buckets.items():
        parsed = BucketConf.from_job(bucket, conf)
        for name in parsed.features:
            if name not in names:
                raise UnknownFeatureError(_unknown_feature(bucket, name, names, all_columns))
            if name in placed:
                raise EncodeError(
                    f"feature {name!r} is in two buckets: {placed[name]!r} and {bucket!r}"
                )
            placed[name] = bucket
        plan[bucket] = parsed
    rest = tuple(n for n in names if n not in placed)
    if rest:
        default = plan.get(DEFAULT_BUCKET, BucketConf(DEFAULT_BUCKET))
        plan[DEFAULT_BUCKET] = BucketConf(
            **{**default.__dict__, "features": (*default.features, *rest)}
        )
    return [conf for conf in plan.values() if conf.features]


def _unknown_feature(bucket: str, name: str, names: list[str], all_columns: list[str]) -> str:
    if name in all_columns:
        return (
            f"bucket {bucket!r} lists {name!r}, which is a primary key, label or dropped "
            "column, not a feature"
        )
    message = f"bucket {bucket!r} lists {name!r}, but the raw table has no such column"
    close = difflib.get_close_matches(name, names, n=3)
    if close:
        return f"{message}; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"{message}; its features: {names}"


# ---------------------------------------------------------------- fitting


def numeric_value(column: str, data_type: T.DataType) -> Column:
    """A scalar feature as a double: booleans 0/1, NaN as null."""
    return as_double(F.col(column), data_type)


def _stats(row: Any, prefix: str) -> dict[str, float | None]:
    return {name: _float(row[f"{prefix}{name}"]) for name in ("min", "max", "mean", "std")}


def _probe_array_sizes(frame: DataFrame, arrays: list[str]) -> dict[str, int]:
    """Each array column's size in its first non-null row (a short job each), so the
    statistics of its positions join the one fit aggregation, which then checks
    that every row has that size."""
    sizes = {}
    for name in arrays:
        first = frame.where(F.col(name).isNotNull()).select(F.size(name).alias("n")).first()
        if first is None:
            raise EncodeError(
                f"array column {name!r} is null in every row: cannot learn its size; "
                "drop it with feature.drop_columns"
            )
        sizes[name] = int(first["n"])
    return sizes


def _check_array_sizes(row: Any, arrays: list[str]) -> None:
    for i, name in enumerate(arrays):
        low, high = row[f"__amin{i}"], row[f"__amax{i}"]
        if low != high:
            raise EncodeError(
                f"array column {name!r} holds arrays of sizes {low} to {high}; encode needs "
                "one fixed size per array column"
            )
        if low == 0:
            raise EncodeError(f"array column {name!r} holds only empty arrays")


def fit_fmap(frame: DataFrame, job: JobConfig, model_date: str) -> tuple[FeatureMap, Normalizers]:
    """Fit every bucket on ``frame`` in two passes: one aggregation (row count, array
    sizes, statistics of scalars and array positions) and one ``groupBy`` (vocabularies
    of strings and map keys, with the statistics of each map key's values)."""
    fields = feature_fields(frame.schema, job)
    categories = {f.name: column_type(f) for f in fields}
    types = {f.name: f.dataType for f in fields}
    plan = plan_buckets(fields, job, frame.columns)
    conf_of = {name: conf for conf in plan for name in conf.features}
    scalars = [n for n, c in categories.items() if c == SCALAR]
    arrays = [n for n, c in categories.items() if c == ARRAY]

    sizes = _probe_array_sizes(frame, arrays)
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, name in enumerate(arrays):
        size = F.when(F.col(name).isNotNull(), F.size(name))
        aggs += [F.min(size).alias(f"__amin{i}"), F.max(size).alias(f"__amax{i}")]
        element = types[name].elementType  # type: ignore[attr-defined]
        for k in range(sizes[name]):
            value = as_double(F.try_element_at(F.col(name), F.lit(k + 1)), element)
            aggs += statistic_aggs(value, f"__a{i}_{k}_")
    for i, name in enumerate(scalars):
        aggs += statistic_aggs(numeric_value(name, types[name]), f"__s{i}_")
    requests = [
        vocabulary.VocabRequest(
            name, categories[name] == MAP, conf_of[name].min_count, conf_of[name].max_size
        )
        for name, category in categories.items()
        if category in (STRING, MAP)
    ]
    first = frame.agg(*aggs).first()
    if first["__rows"] == 0:
        raise EncodeError("the raw table has no rows: cannot fit an fmap on it")
    _check_array_sizes(first, arrays)
    vocabs = vocabulary.fit_vocabularies(frame, requests, many=MANY_CATEGORIES)
    stats: dict[str, list[dict[str, float | None]]] = {
        name: [_stats(first, f"__s{i}_")] for i, name in enumerate(scalars)
    }
    for i, name in enumerate(arrays):
        stats[name] = [_stats(first, f"__a{i}_{k}_") for k in range(sizes[name])]

    for name, category in categories.items():
        if category == MAP:
            fitted_keys = vocabs[name]
            stats[name] = [fitted_keys.stats[key] for key in fitted_keys.values]

    buckets, fitted = [], {}
    for conf in plan:
        num_features, ctg_features, keep = [], [], fitted_names(conf.method, conf.encode)
        bucket_stats: dict[str, dict[str, list[float | None]]] = {}
        num_offset = ctg_offset = 0
        for name in conf.features:
            dtype, category = types[name].simpleString(), categories[name]
            if category == STRING:
                vocab = vocabs[name].values
                size = len(vocab) + VOCAB_START
                ctg_features.append(
                    Feature(name, dtype, size, ctg_offset, {"vocab": vocab}, conf.encode)
                )
                ctg_offset += size
                continue
            meta = {"keys": vocabs[name].values} if category == MAP else {}
            size = len(stats.get(name, []))
            if size == 0:
                log.warning("map feature %r has no keys; it takes no position", name)
                continue
            if category == SCALAR and stats[name][0]["min"] is None:
                log.warning("numeric feature %r is null in every row; it encodes as 0", name)
            shape = (1,) if category == SCALAR else (size,)
            num_features.append(
                Feature(name, dtype, size, num_offset, meta, conf.encode, shape=shape)
            )
            num_offset += size
            if keep:
                bucket_stats[name] = {k: [s[k] for s in stats[name]] for k in keep}
        buckets.append(
            Bucket(
                conf.name,
                conf.method,
                tuple(num_features),
                tuple(ctg_features),
                params=dict(conf.params),
                encode=conf.encode,
            )
        )
        if bucket_stats:
            fitted[conf.name] = bucket_stats
    fmap = FeatureMap(
        feature_tag=job.feature.tag,
        model_date=model_date,
        primary_keys=tuple(job.feature.primary_keys),
        labels=tuple(job.feature.labels),
        buckets=tuple(b for b in buckets if b.nums or b.ctgs),
    )
    return fmap, Normalizers(fmap.checksum, fitted)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# ---------------------------------------------------------------- applying


def check_fmap(fmap: FeatureMap, frame: DataFrame, job: JobConfig, source: str) -> None:
    """Refuse an fmap that does not fit this raw table (schema drift)."""
    if tuple(fmap.primary_keys) != tuple(job.feature.primary_keys) or tuple(fmap.labels) != tuple(
        job.feature.labels
    ):
        raise EncodeError(
            f"fmap {source} was fitted with primary keys {list(fmap.primary_keys)} and labels "
            f"{list(fmap.labels)}, the job has {list(job.feature.primary_keys)} and "
            f"{list(job.feature.labels)}; set encode option refit: true"
        )
    types = {f.name: f for f in frame.schema.fields}
    for bucket in fmap.buckets:
        for feature in (*bucket.nums, *bucket.ctgs):
            found = types.get(feature.name)
            if found is None:
                close = difflib.get_close_matches(feature.name, list(types), n=3)
                hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise UnknownFeatureError(
                    f"fmap {source} needs column {feature.name!r} (bucket {bucket.name!r}), "
                    f"but the raw table has no such column{hint}"
                )
            if column_type(found) != dtype_category(feature.dtype):
                raise EncodeError(
                    f"column {feature.name!r} is {found.dataType.simpleString()} now but the "
                    f"fmap {source} encodes it as {feature.dtype}; set refit: true"
                )
    known = {f.name for f in fmap.features}
    extra = [f.name for f in feature_fields(frame.schema, job) if f.name not in known]
    if extra:
        log.warning("columns %s are not in the reused fmap %s and are left out", extra, source)


def reserved_ids(feature: Feature, value: Column, found: Column, layout: IdLayout) -> Column:
    """The id of ``value`` given ``found``, its vocabulary id or null: the null id
    for a null value, the unseen id for a value not in the vocabulary."""
    return (
        F.when(value.isNull(), F.lit(feature.offset + layout.null))
        .when(found.isNull(), F.lit(feature.offset + layout.unseen))
        .otherwise(found)
    )


def category_id(
    feature: Feature, value: Column, layout: IdLayout = ID_LAYOUTS[FORMAT_VERSION]
) -> Column:
    """A value's id: ``offset + first + i`` for ``vocab[i]``, else the null or unseen id."""
    vocab = feature.meta.get("vocab", [])
    if not vocab:
        return reserved_ids(feature, value, F.lit(None).cast("int"), layout)
    start = feature.offset + layout.first
    lookup = F.map_from_arrays(F.lit(vocab), F.lit(list(range(start, start + len(vocab)))))
    return reserved_ids(feature, value, F.try_element_at(lookup, value), layout)


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
    joined = frame.join(F.broadcast(table), F.col(feature.name) == F.col(value_column), how="left")
    return joined.drop(value_column)


def numeric_vector(
    bucket: Bucket, types: dict[str, T.DataType], normalizers: Normalizers
) -> Column:
    """The bucket's ``<bucket>_nums`` column (``array<float>``)."""
    values: list[Column] = []
    stats: list[dict[str, float | None]] = []
    for feature in bucket.nums:
        values += element_values(
            feature.name, types[feature.name], feature.size, feature.meta.get("keys")
        )
        fitted = normalizers.of(bucket.name, feature.name)
        stats += [{k: v[i] for k, v in fitted.items()} for i in range(feature.size)]
    if bucket.encode and bucket.method == "pnorm":
        vector = pnorm(F.array(*values), float(bucket.params.get("p", 2)))
    else:
        vector = F.array(*normalize(values, stats, bucket.method, bucket.params, bucket.encode))
    return vector.cast("array<float>").alias(bucket.nums_column)


def encode_frame(
    spark: SparkSession, frame: DataFrame, fmap: FeatureMap, normalizers: Normalizers
) -> DataFrame:
    """The encoded table: keys, labels, then one array column per bucket field."""
    types = {f.name: f.dataType for f in frame.schema.fields}
    layout = fmap.id_layout
    ids: dict[tuple[str, str], Column] = {}
    for b, bucket in enumerate(fmap.buckets):
        for c, feature in enumerate(bucket.ctgs):
            value = F.col(feature.name)
            if len(feature.meta.get("vocab", [])) > MAP_LOOKUP_LIMIT:
                id_column = f"__dlflow_id_{b}_{c}"
                frame = _join_vocab(spark, frame, feature, id_column, layout)
                found = F.col(id_column)
                ids[(bucket.name, feature.name)] = reserved_ids(feature, value, found, layout)
            else:
                ids[(bucket.name, feature.name)] = category_id(feature, value, layout)
    outputs = [F.col(c) for c in (*fmap.primary_keys, *fmap.labels)]
    for bucket in fmap.buckets:
        if bucket.nums:
            outputs.append(numeric_vector(bucket, types, normalizers))
        if bucket.ctgs:
            values = [ids[(bucket.name, f.name)] for f in bucket.ctgs]
            outputs.append(F.array(*values).cast("array<int>").alias(bucket.ctgs_column))
    return frame.select(*outputs)


def check_labels(frame: DataFrame, job: JobConfig, source: str) -> None:
    """A binary model's labels must be 0 or 1 in every row."""
    if "binary" not in job.model.name or not job.feature.labels:
        return
    bad = [~F.col(c).cast("double").isin(0.0, 1.0) | F.col(c).isNull() for c in job.feature.labels]
    condition = bad[0]
    for more in bad[1:]:
        condition = condition | more
    sample = frame.where(condition).select(*job.feature.labels).limit(3).collect()
    if sample:
        values = [row.asDict() for row in sample]
        raise EncodeError(
            f"{source}: model {job.model.name!r} is binary, so labels {list(job.feature.labels)} "
            f"must be 0 or 1 in every row; found e.g. {values}"
        )


# ---------------------------------------------------------------- the job


def resolve_model_date(job: JobConfig) -> str:
    """The femodel date: ``model.date`` or, for ``latest``, the newest fmap up to ``date``."""
    if job.model.date != "latest":
        return job.model_date
    root = job.layout.root("femodel", job.feature.tag)
    partition = latest_partition(root, job.date)
    if partition is None:
        raise EncodeError(
            f"model.date is 'latest' but {root} has no complete fmap partition dated "
            f"{job.date} or earlier; run encode with a model date first"
        )
    return partition.rsplit("dt=", 1)[1]


def load_or_fit(
    frame: DataFrame, job: JobConfig, femodel: str, model_date: str
) -> tuple[FeatureMap, Normalizers, bool]:
    """The fmap and normaliser statistics to apply, and whether they were reused."""
    fmap_uri = f"{femodel}/{FMAP_FILE}"
    refit = bool(job.options.get("refit", False))
    if not refit and storage.is_complete(femodel) and storage.exists(fmap_uri):
        fmap = FeatureMap.load(femodel)
        check_fmap(fmap, frame, job, fmap_uri)
        return fmap, Normalizers.load(femodel, fmap), True
    if job.model.date == "latest":
        raise EncodeError("refit with model.date 'latest' is ambiguous; give a model date")
    fmap, normalizers = fit_fmap(frame, job, model_date)
    return fmap, normalizers, False


def read_raw(spark: SparkSession, job: JobConfig) -> tuple[str, DataFrame]:
    """The complete, non-empty raw partition of the run's date, with its keys and labels."""
    raw_uri = job.layout.raw(job.feature.tag, job.date)
    require_complete(raw_uri, "encode input (raw features; run merge first)")
    raw = spark.read.parquet(raw_uri)
    missing = [c for c in (*job.feature.primary_keys, *job.feature.labels) if c not in raw.columns]
    if missing:
        raise EncodeError(f"the raw table {raw_uri} has no key/label column(s) {missing}")
    absent = [c for c in job.feature.drop_columns if c not in raw.columns]
    if absent:
        log.warning("drop_columns %s are not in the raw table %s", absent, raw_uri)
    if raw.isEmpty():
        raise EncodeError(f"the raw partition {raw_uri} has no rows; nothing was written")
    check_labels(raw, job, raw_uri)
    return raw_uri, raw


def run(spark: SparkSession, job: JobConfig) -> dict[str, Any]:
    compression = str(job.options.get("tfrecord_compression", "none")).lower()
    if compression not in COMPRESSIONS:
        raise EncodeError(
            f"option tfrecord_compression {compression!r} is not one of {', '.join(COMPRESSIONS)}"
        )
    tag, layout = job.feature.tag, job.layout
    _, raw = read_raw(spark, job)
    model_date = resolve_model_date(job)
    femodel = layout.femodel(tag, model_date)
    fmap, normalizers, reused = load_or_fit(raw, job, femodel, model_date)

    final = layout.encoded(tag, job.date)
    staging = storage.staging_uri(final)
    stagings = [staging]
    try:
        encode_frame(spark, raw, fmap, normalizers).write.parquet(staging)
        encoded = spark.read.parquet(staging)
        rows = encoded.count()
        tfrecord_final = None
        if job.options.get("tfrecord", False):
            tfrecord_final = layout.tfrecord(tag, job.date)
            tfrecord_staging = storage.staging_uri(tfrecord_final)
            stagings.append(tfrecord_staging)
            written = write_tfrecords(encoded, tfrecord_staging, compression=compression)
            if written.rows != rows:
                raise EncodeError(
                    f"TFRecord writers reported {written.rows} rows, the encoded table has {rows}"
                )
        if not reused:
            femodel_staging = storage.staging_uri(femodel)
            stagings.append(femodel_staging)
            fmap.save(femodel_staging)
            normalizers.save(femodel_staging)
            storage.commit(femodel_staging, femodel)
        storage.commit(staging, final)
        if tfrecord_final is not None:
            storage.commit(tfrecord_staging, tfrecord_final)
    finally:
        for leftover in stagings:
            discard(leftover)
    log.info("encoded %d rows into %s (fmap %s, reused=%s)", rows, final, femodel, reused)
    return {
        "rows": rows,
        "output": final,
        "fmap": f"{femodel}/{FMAP_FILE}",
        "normalizers": f"{femodel}/{NORMALIZERS_FILE}",
        "fmap_reused": reused,
        "fmap_checksum": fmap.checksum,
        "tfrecord": tfrecord_final,
    }


def main(argv: list[str] | None = None) -> None:
    run_job("encode", run, argv)


if __name__ == "__main__":
    main()
