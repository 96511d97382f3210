"""Vocabularies by frequency: the values of string columns and the keys of map columns.

One ``groupBy`` over all such columns at once, which also gives the
statistics of each map key's values (so fitting a map column needs no pass
of its own). A vocabulary lists values by
descending count, ties by ascending value; ``min_count`` drops rare values and
``max_size`` keeps the most frequent ones. At encode time a string value left
out takes its feature's unseen id and a null its null id
(:class:`dlflow_airflow.contract.fmap.IdLayout`); a map key left out is no position (and
map keys are never null).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.columns import col
from spark_jobs.normalizers import statistic_aggs

log = logging.getLogger(__name__)

MANY_CATEGORIES = 1000
_PAIRS = "array<struct<f:int,v:string,x:double>>"
STATISTICS = ("min", "max", "mean", "std")


@dataclass(frozen=True)
class VocabRequest:
    """One column to count: a string column's values or a map column's keys."""

    column: str
    is_map: bool
    min_count: int = 1
    max_size: int | None = None


@dataclass(frozen=True)
class Vocabulary:
    """A fitted vocabulary.

    :param values: the kept values (or map keys), most frequent first.
    :param stats: map columns only: key -> ``min``/``max``/``mean``/``std`` of its
        values (booleans as 0/1, NaN and nulls left out), for every kept key.
    :param counts: the rows holding each kept value (key), in the order of ``values``.
    :param total: all non-null values (map entries) counted, kept or not.
    """

    values: list[str]
    stats: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counts: list[int] = field(default_factory=list)
    total: int = 0


def _pairs(index: int, request: VocabRequest, data_type: T.DataType) -> Column:
    """``(feature index, value or key, map value as double)`` for each entry of a row.

    Built from codegen-friendly expressions (no higher-order lambda), since this
    runs over every row of the raw table.
    """
    column = col(request.column)
    if request.is_map:
        keys = F.map_keys(column)
        values = F.map_values(column)
        if isinstance(data_type, T.MapType) and isinstance(data_type.valueType, T.BooleanType):
            values = values.cast("array<int>")
        zipped = F.arrays_zip(
            F.array_repeat(F.lit(index), F.size(keys)), keys, values.cast("array<double>")
        )
        return F.coalesce(zipped.cast(_PAIRS), F.array().cast(_PAIRS))
    entry = F.struct(F.lit(index).alias("f"), column.alias("v"), F.lit(None).alias("x"))
    return F.array(entry).cast(_PAIRS)


def fit_vocabularies(
    frame: DataFrame, requests: list[VocabRequest], *, many: int = MANY_CATEGORIES
) -> dict[str, Vocabulary]:
    """Column name -> vocabulary, for every request, in one pass over ``frame``."""
    if not requests:
        return {}
    types = {f.name: f.dataType for f in frame.schema.fields}
    pairs = F.flatten(F.array(*[_pairs(i, r, types[r.column]) for i, r in enumerate(requests)]))
    value = F.nanvl(F.col("x"), F.lit(None).cast("double"))
    counts = (
        frame.select(F.inline(pairs))
        .where(F.col("v").isNotNull())
        .groupBy("f", "v")
        .agg(F.count(F.lit(1)).alias("count"), *statistic_aggs(value, "x_"))
        .collect()
    )
    grouped: dict[int, list[tuple[int, str]]] = defaultdict(list)
    key_stats: dict[tuple[int, str], dict[str, float | None]] = {}
    for row in counts:
        grouped[row["f"]].append((-row["count"], row["v"]))
        if requests[row["f"]].is_map:
            key_stats[(row["f"], row["v"])] = {
                name: None if row[f"x_{name}"] is None else float(row[f"x_{name}"])
                for name in STATISTICS
            }
    vocabs: dict[str, Vocabulary] = {}
    for i, request in enumerate(requests):
        ranked = sorted(grouped.get(i, []))
        vocab = [value for negative, value in ranked if -negative >= request.min_count]
        if request.max_size is not None:
            vocab = vocab[: request.max_size]
        what = (
            "map feature %r has %d distinct keys"
            if request.is_map
            else ("categorical feature %r has %d categories")
        )
        if len(ranked) > many:
            log.warning(
                what + " (more than %d); consider hashing, max_size or dropping it",
                request.column,
                len(ranked),
                many,
            )
        if not ranked:
            log.warning(
                "feature %r is null in every row; %s",
                request.column,
                "it takes no position" if request.is_map else "it encodes as its null id",
            )
        stats = {key: key_stats[(i, key)] for key in vocab} if request.is_map else {}
        counts = [-negative for negative, _ in ranked[: len(vocab)]]
        total = -sum(negative for negative, _ in ranked)
        vocabs[request.column] = Vocabulary(vocab, stats, counts, total)
    return vocabs
