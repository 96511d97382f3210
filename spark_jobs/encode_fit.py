"""Fit an fmap and its normaliser statistics on a raw-feature frame.

Two passes over the frame: one aggregation (row count, array sizes, the
statistics of scalars and of every array position) and one ``groupBy`` (the
vocabularies of strings and map keys, with the statistics of each map key's
values; :mod:`spark_jobs.vocabulary`). Buckets are ``job.buckets``; feature
columns no bucket lists go to ``default`` (configured or not: ``buckets.default``
may give only a method). Column types: :mod:`spark_jobs.feature_types`.

With ``cuts`` (encode fits a profile, :mod:`spark_jobs.fit_profile`), a second
aggregation gives the deciles of every scalar and array position as well, over a
sample of at most :data:`CUTS_SAMPLE` rows.

The same aggregation gives the fill values of nulls (``impute``: mean, min,
approximate median, zero or a constant, kept as ``fill`` in the normaliser
statistics) and finds all-null or constant features (a warning, an error
with ``strict: true``).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract.artifacts import RAW_FEATURE, stage_io
from dlflow_airflow.contract.drift import QUANTILES
from dlflow_airflow.contract.fmap import VOCAB_START, Bucket, Feature, FeatureMap, Normalizers
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.schema import DEFAULT_BUCKET, BucketSpec, check_buckets
from spark_jobs import vocabulary
from spark_jobs.columns import col, quote
from spark_jobs.encode_labels import fit_label_encodings
from spark_jobs.feature_types import (
    ARRAY,
    MAP,
    SCALAR,
    STRING,
    EncodeError,
    UnknownFeatureError,
    as_double,
    column_type,
    feature_fields,
)
from spark_jobs.normalizers import fill_value, fitted_names, statistic_aggs

log = logging.getLogger(__name__)

MANY_CATEGORIES = vocabulary.MANY_CATEGORIES

Stats = dict[str, Any]
"""``min``/``max``/``mean``/``std`` (and ``median`` if asked) of one position of a
numeric feature, and its deciles as ``cuts`` (a list, if asked); ``count``
(non-null rows) of a string feature."""
CUTS_ACCURACY = 1_000
"""``percentile_approx`` accuracy of the profile's deciles: about 1/1,000 of the rows."""
CUTS_SAMPLE = 200_000
"""Rows the deciles are taken over (a sample of larger tables: a decile's rank then
errs by about 1/1,000 too). ``percentile_approx`` costs about half a microsecond per
row and position and keeps the aggregation out of whole-stage codegen: measured on
``bench/encode.py``'s table (1M rows, 9 positions), folded into the fit aggregation
it took that from 0.5 s to 3.1 s."""
BucketStats = dict[str, dict[str, list[float | None]]]
"""feature -> statistic -> one value per position: what a bucket keeps."""


@dataclass(frozen=True)
class FeatureColumns:
    """The feature columns of a raw frame, in table order, with their category and type."""

    categories: dict[str, str]
    types: dict[str, T.DataType]

    @classmethod
    def of(cls, schema: T.StructType, job: JobConfig) -> FeatureColumns:
        fields = feature_fields(schema, job.feature)
        return cls({f.name: column_type(f) for f in fields}, {f.name: f.dataType for f in fields})

    def named(self, category: str) -> list[str]:
        return [name for name, found in self.categories.items() if found == category]


# ---------------------------------------------------------------- buckets


def plan_buckets(names: list[str], job: JobConfig, all_columns: list[str]) -> dict[str, BucketSpec]:
    """The configured buckets, plus ``default`` holding every feature none of them lists."""
    try:
        check_buckets(job.buckets)
    except ValueError as exc:
        raise EncodeError(str(exc)) from None
    placed: dict[str, str] = {}
    for bucket, spec in job.buckets.items():
        for name in spec.features:
            if name not in names:
                raise UnknownFeatureError(_unknown_feature(bucket, name, names, all_columns))
            if name in placed:
                raise EncodeError(
                    f"feature {name!r} is in two buckets: {placed[name]!r} and {bucket!r}"
                )
            placed[name] = bucket
    plan = dict(job.buckets)
    rest = [name for name in names if name not in placed]
    if rest:
        default = plan.get(DEFAULT_BUCKET)
        plan[DEFAULT_BUCKET] = (
            BucketSpec(features=rest)
            if default is None
            else default.model_copy(update={"features": [*default.features, *rest]})
        )
    return plan


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


# ---------------------------------------------------------------- statistics


def _probe_array_sizes(frame: DataFrame, arrays: list[str]) -> dict[str, int]:
    """Each array column's size in its first non-null row (a short job each), so the
    statistics of its positions join the one fit aggregation, which then checks
    that every row has that size."""
    sizes = {}
    for name in arrays:
        first = frame.where(col(name).isNotNull()).select(F.size(col(name)).alias("n")).first()
        if first is None:
            raise EncodeError(
                f"array column {name!r} is null in every row: cannot learn its size; "
                "drop it with feature.drop_columns"
            )
        sizes[name] = int(first["n"])
    return sizes


def _cut_aggs(value: Column, prefix: str) -> list[Column]:
    """The deciles of one position (``<prefix>cuts``), when the fit profiles."""
    levels = F.array(*[F.lit(q) for q in QUANTILES])
    return [F.percentile_approx(value, levels, F.lit(CUTS_ACCURACY)).alias(f"{prefix}cuts")]


def _position_values(data_type: T.DataType, name: str, size: int) -> list[Column]:
    """Each position of an array column as a double."""
    element = data_type.elementType  # type: ignore[attr-defined]
    return [as_double(f"try_element_at({quote(name)}, {k + 1})", element) for k in range(size)]


def _cuts(frame: DataFrame, columns: FeatureColumns, sizes: dict[str, int], rows: int) -> Any:
    """The deciles of every scalar and array position (``__s<i>_cuts``, ``__a<i>_<k>_cuts``),
    in one aggregation over at most about :data:`CUTS_SAMPLE` rows."""
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, name in enumerate(columns.named(ARRAY)):
        for k, value in enumerate(_position_values(columns.types[name], name, sizes[name])):
            aggs += _cut_aggs(value, f"__a{i}_{k}_")
    for i, name in enumerate(columns.named(SCALAR)):
        aggs += _cut_aggs(as_double(quote(name), columns.types[name]), f"__s{i}_")
    if rows > CUTS_SAMPLE:
        frame = frame.sample(fraction=CUTS_SAMPLE / rows, seed=0)
    return frame.agg(*aggs).first()


def _array_aggs(
    index: int, name: str, data_type: T.DataType, size: int, median: bool
) -> list[Column]:
    """The size range of one array column and the statistics of each of its positions."""
    present = F.when(col(name).isNotNull(), F.size(col(name)))
    aggs = [F.min(present).alias(f"__amin{index}"), F.max(present).alias(f"__amax{index}")]
    for k, value in enumerate(_position_values(data_type, name, size)):
        aggs += statistic_aggs(value, f"__a{index}_{k}_", median)
    return aggs


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


def _stats(row: Any, prefix: str, median: bool = False, cuts: Any = None) -> Stats:
    names = ("min", "max", "mean", "std", "median") if median else ("min", "max", "mean", "std")
    stats: Stats = {
        name: None if row[f"{prefix}{name}"] is None else float(row[f"{prefix}{name}"])
        for name in names
    }
    if cuts is not None:  # the row of the deciles
        stats["cuts"] = [float(v) for v in cuts[f"{prefix}cuts"] or () if v is not None]
    return stats


def fit_statistics(
    frame: DataFrame,
    columns: FeatureColumns,
    medians: frozenset[str] = frozenset(),
    cuts: bool = False,
) -> dict[str, list[Stats]]:
    """Statistics of every scalar and array position (the approximate median of
    those in ``medians`` too) and the non-null count of every string column, in one
    aggregation; with ``cuts``, the deciles of every position in a second one
    (:func:`_cuts`).

    :raises EncodeError: the frame has no rows, or an array column's size varies.
    """
    scalars, arrays, strings = columns.named(SCALAR), columns.named(ARRAY), columns.named(STRING)
    sizes = _probe_array_sizes(frame, arrays)
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, name in enumerate(arrays):
        aggs += _array_aggs(i, name, columns.types[name], sizes[name], name in medians)
    for i, name in enumerate(scalars):
        value = as_double(quote(name), columns.types[name])
        aggs += statistic_aggs(value, f"__s{i}_", name in medians)
    aggs += [F.count(col(name)).alias(f"__n{i}") for i, name in enumerate(strings)]
    row = frame.agg(*aggs).first()
    if row["__rows"] == 0:
        raise EncodeError("the raw table has no rows: cannot fit an fmap on it")
    _check_array_sizes(row, arrays)
    deciles = _cuts(frame, columns, sizes, row["__rows"]) if cuts else None
    stats = {
        name: [_stats(row, f"__s{i}_", name in medians, deciles)] for i, name in enumerate(scalars)
    }
    for i, name in enumerate(arrays):
        stats[name] = [
            _stats(row, f"__a{i}_{k}_", name in medians, deciles) for k in range(sizes[name])
        ]
    for i, name in enumerate(strings):
        stats[name] = [{"count": float(row[f"__n{i}"])}]
    return stats


def fit_vocabularies(
    frame: DataFrame, columns: FeatureColumns, plan: dict[str, BucketSpec]
) -> dict[str, vocabulary.Vocabulary]:
    """The vocabulary of every string column and map column's keys, with each
    bucket's ``min_count`` and ``max_size``."""
    spec_of = {name: spec for spec in plan.values() for name in spec.features}
    requests = [
        vocabulary.VocabRequest(
            name, category == MAP, spec_of[name].min_count, spec_of[name].max_size
        )
        for name, category in columns.categories.items()
        if category in (STRING, MAP)
    ]
    return vocabulary.fit_vocabularies(frame, requests, many=MANY_CATEGORIES)


# ---------------------------------------------------------------- imputation


def check_impute(plan: dict[str, BucketSpec], columns: FeatureColumns) -> frozenset[str]:
    """Refuse overrides of features outside their bucket or not numeric; the
    features whose fill is a median (which the fit then computes)."""
    medians: set[str] = set()
    for bucket, spec in plan.items():
        for name in spec.impute_features:
            if name not in spec.features:
                raise EncodeError(
                    f"buckets.{bucket}.impute_features names {name!r}, which is not a feature "
                    f"of bucket {bucket!r}; its features: {spec.features}"
                )
            if columns.categories[name] == STRING:
                raise EncodeError(
                    f"buckets.{bucket}.impute_features names {name!r}, a string feature: only "
                    "numbers are imputed (a null category has its own id)"
                )
        for name in spec.features:
            if spec.impute_of(name).impute != "median" or columns.categories[name] == STRING:
                continue
            if columns.categories[name] == MAP:
                raise EncodeError(
                    f"bucket {bucket!r}: impute median is not available for the map feature "
                    f"{name!r}; use mean, min, zero or constant (impute_features)"
                )
            medians.add(name)
    return frozenset(medians)


def check_degenerate(bucket: str, spec: BucketSpec, feature: str, stats: list[Stats]) -> None:
    """Warn about (``strict``: refuse) a feature null in every row or with one value."""
    if "count" in stats[0]:  # a string column
        problem = "is null in every row" if stats[0]["count"] == 0 else None
    elif all(s["min"] is None for s in stats):
        problem = "is null in every row"
    elif all(s["min"] is not None and s["min"] == s["max"] for s in stats):
        problem = "has one value in every non-null row (a constant)"
    else:
        problem = None
    if problem is None:
        return
    message = f"feature {feature!r} {problem} of the fit day (bucket {bucket!r})"
    if spec.strict:
        raise EncodeError(f"{message}; drop it or fix the input (the bucket is strict: true)")
    if "count" not in stats[0]:  # an all-null string is warned about with its vocabulary
        log.warning("%s; it carries no information", message)


def fills_of(spec: BucketSpec, feature: str, stats: list[Stats]) -> list[float | None]:
    """The fill value of each position of a numeric feature."""
    rule = spec.impute_of(feature)
    return [fill_value(s, rule.impute, rule.impute_value) for s in stats]


# ---------------------------------------------------------------- the fmap


def build_bucket(
    name: str,
    spec: BucketSpec,
    columns: FeatureColumns,
    stats: dict[str, list[Stats]],
    vocabs: dict[str, vocabulary.Vocabulary],
) -> tuple[Bucket, BucketStats]:
    """One bucket's features (offsets in table order) and the statistics its method keeps."""
    nums: list[Feature] = []
    ctgs: list[Feature] = []
    kept: BucketStats = {}
    keep = fitted_names(spec.method, spec.encode)
    num_offset = ctg_offset = 0
    for feature in spec.features:
        dtype, category = columns.types[feature].simpleString(), columns.categories[feature]
        if category in (SCALAR, ARRAY, STRING):
            check_degenerate(name, spec, feature, stats[feature])
        if category == STRING:
            vocab = vocabs[feature].values
            size = len(vocab) + VOCAB_START
            ctgs.append(Feature(feature, dtype, size, ctg_offset, {"vocab": vocab}, spec.encode))
            ctg_offset += size
            continue
        size = len(stats.get(feature, []))
        if size == 0:
            log.warning("map feature %r has no keys; it takes no position", feature)
            continue
        meta = {"keys": vocabs[feature].values} if category == MAP else {}
        shape = (1,) if category == SCALAR else (size,)
        nums.append(Feature(feature, dtype, size, num_offset, meta, spec.encode, shape=shape))
        num_offset += size
        kept[feature] = {k: [s[k] for s in stats[feature]] for k in keep}
        kept[feature]["fill"] = fills_of(spec, feature, stats[feature])
    params = dict(spec.params)
    indicators = tuple(f.name for f in nums) if spec.missing_indicators else ()
    bucket = Bucket(name, spec.method, tuple(nums), tuple(ctgs), params, spec.encode, indicators)
    return bucket, kept


@dataclass(frozen=True)
class Fit:
    """A fitted fmap and its normaliser statistics, with what the fit learnt on the way
    (what :mod:`spark_jobs.fit_profile` builds the profile from)."""

    fmap: FeatureMap
    normalizers: Normalizers
    columns: FeatureColumns
    stats: dict[str, list[Stats]]
    vocabs: dict[str, vocabulary.Vocabulary]


def fit_fmap(frame: DataFrame, job: JobConfig, model_date: str) -> tuple[FeatureMap, Normalizers]:
    """The fmap of ``frame``'s features for ``model_date`` and its normaliser statistics."""
    fitted = fit(frame, job, model_date)
    return fitted.fmap, fitted.normalizers


def fit(frame: DataFrame, job: JobConfig, model_date: str, *, cuts: bool = False) -> Fit:
    """:func:`fit_fmap`, keeping the statistics and vocabularies (with ``cuts``: the
    deciles of every number position too)."""
    columns = FeatureColumns.of(frame.schema, job)
    plan = plan_buckets(list(columns.categories), job, frame.columns)
    stats = fit_statistics(frame, columns, check_impute(plan, columns), cuts)
    vocabs = fit_vocabularies(frame, columns, plan)
    for name in columns.named(MAP):  # a map takes one position per kept key
        stats[name] = [vocabs[name].stats[key] for key in vocabs[name].values]
    buckets: list[Bucket] = []
    fitted: dict[str, BucketStats] = {}
    for name, spec in plan.items():
        bucket, kept = build_bucket(name, spec, columns, stats, vocabs)
        if bucket.nums or bucket.ctgs:
            buckets.append(bucket)
        if kept:
            fitted[name] = kept
    fmap = FeatureMap(
        feature_tag=job.feature.tag,
        model_date=model_date,
        primary_keys=tuple(job.feature.primary_keys),
        labels=tuple(job.feature.labels),
        buckets=tuple(buckets),
        label_encodings=fit_label_encodings(frame, job, stage_io(job).get(RAW_FEATURE).uri),
    )
    return Fit(fmap, Normalizers(fmap.checksum, fitted), columns, stats, vocabs)
