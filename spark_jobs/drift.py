"""Drift at encode: the day's raw features counted over the fitted profile, in one pass.

:func:`count_features` is the one counting pass, shared with the fit
(:mod:`spark_jobs.fit_profile` counts the fit day's bins with it): per feature the
nulls, per number position the values in each fitted bin, per string (map)
the values (entries) of each profiled category and those outside the
vocabulary. :func:`measure` turns the counts into a drift report
(:func:`dlflow_airflow.contract.drift.compare`), logs its table and applies the
gate (``encode.drift``): ``fail`` raises before anything is written.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract.artifacts import Partition
from dlflow_airflow.contract.drift import (
    ARRAY,
    MAP,
    SCALAR,
    STRING,
    Bins,
    Categories,
    DriftBreachError,
    DriftReport,
    FeatureProfile,
    Profile,
    compare,
)
from dlflow_airflow.contract.fmap import FMAP_FILE, Feature, FeatureMap
from dlflow_airflow.contract.jobconf import JobConfig
from spark_jobs.columns import col
from spark_jobs.encode_apply import MAP_LOOKUP_LIMIT
from spark_jobs.feature_types import as_double, dtype_category, feature_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """What to count for one feature.

    :param edges: numbers: the bin edges of each position (empty: nulls only).
    :param vocab: strings and maps: the vocabulary (None: count no categories).
    :param top: the categories counted one by one (a prefix of the vocabulary).
    """

    name: str
    kind: str
    data_type: T.DataType
    edges: tuple[tuple[float, ...], ...] = ()
    vocab: tuple[str, ...] | None = None
    top: tuple[str, ...] = ()
    size: int | None = None


def _position(target: Target, k: int) -> Column:
    """Position ``k`` of a number feature as a double (null: missing)."""
    if target.kind == ARRAY:
        element = target.data_type.elementType  # type: ignore[attr-defined]
        return as_double(F.try_element_at(col(target.name), F.lit(k + 1)), element)
    return as_double(col(target.name), target.data_type)


def _all_top(target: Target) -> bool:
    """Whether every vocabulary value (map key) is counted on its own (none is ``other``)."""
    return len(target.vocab or ()) <= len(target.top)


def _joins_vocab(target: Target) -> bool:
    """Whether a string's vocabulary is looked up through a broadcast join, as encode
    does for large ones: an ``IN`` list of thousands of literals takes a second to build."""
    return (
        target.kind == STRING
        and not _all_top(target)
        and len(target.vocab or ()) > MAP_LOOKUP_LIMIT
    )


def _with_membership(frame: DataFrame, target: Target, name: str) -> DataFrame:
    """``frame`` with ``name``: true where the target's value is in its vocabulary, else null."""
    table = frame.sparkSession.createDataFrame(
        [(v, True) for v in target.vocab or ()], f"`{name}_v` string, `{name}` boolean"
    )
    joined = frame.join(F.broadcast(table), col(target.name) == F.col(f"{name}_v"), how="left")
    return joined.drop(f"{name}_v")


def _category_code(target: Target, prefix: str) -> Column:
    """A string's category: ``j`` for ``top[j]``, then other (in the vocabulary), then
    unseen; null for a null."""
    column = col(target.name)
    top = list(target.top)
    code = F.when(column.isNotNull(), len(top) + 1)
    if not _all_top(target):
        known = (
            F.col(f"{prefix}m").isNotNull()
            if _joins_vocab(target)
            else column.isin(list(target.vocab or ()))
        )
        code = F.when(known, len(top)).when(column.isNotNull(), len(top) + 1)
    if not top:
        return code
    # A literal map (folded to a constant), not a chain of comparisons: the generated
    # code stays the same size whatever the number of categories.
    codes = F.map_from_arrays(F.array(*map(F.lit, top)), F.array(*map(F.lit, range(len(top)))))
    return F.coalesce(F.try_element_at(codes, column), code)


def _counts_nulls(target: Target) -> bool:
    """Whether nulls need a count of their own: those of a scalar (a string whose
    categories are counted) are the rows in no bin (no category)."""
    if target.kind == SCALAR:
        return not target.edges
    return not (target.kind == STRING and target.vocab is not None)


HUGE_METHOD = ("spark.sql.codegen.hugeMethodLimit", "8000")
"""While counting, Spark runs the projection of per-row facts without whole-stage
codegen if its generated method is longer than the JVM compiles (8,000 bytes of
bytecode; many features), which the JVM would interpret row by row. Measured on
``bench/encode.py``'s table (1M rows) with bin indices computed in Spark: 7.1 s
with whole-stage codegen, 1.2 s without."""

PACKED = 2**62
"""Bound of a packed column: the codes of several facts in one long (see :class:`Fact`)."""


@dataclass(frozen=True)
class Fact:
    """One per-row fact of a target, counted in Python.

    :param column: the fact per row: a code in ``0..codes-1`` or null (or a number).
    :param codes: how many codes: the fact is counted per code, null in slot ``codes``;
        None: the fact is a number (null: 0), summed.
    :param edges: the fact is a number binned in Python, its code how many edges are
        at most the value (``edges[i-1] <= value < edges[i]``: bin ``i``). Binned in
        Spark (nine comparisons a position), the projection ran 1.2 s on
        ``bench/encode.py``'s table (1M rows), handing over the numbers 0.8 s.
    """

    column: Column
    codes: int | None = None
    edges: tuple[float, ...] | None = None

    @property
    def slots(self) -> int:
        """How many counts (or sums) the fact takes in the flattened counts."""
        return 1 if self.codes is None else self.codes + 1


def _flag(value: Column) -> Fact:
    """A boolean counted per value (``[false, true, null]``)."""
    return Fact(value.cast("int"), 2)


def _projections(i: int, target: Target) -> dict[str, Fact]:
    """The per-row facts one target's counts are made of (computed once per row), by
    what they count: ``nulls``, position ``k``'s bins, categories, map entries."""
    prefix = f"__d{i}_"
    column = col(target.name)
    facts: dict[str, Fact] = {}
    if _counts_nulls(target):
        missing = _position(target, 0).isNull() if target.kind == SCALAR else column.isNull()
        facts["nulls"] = _flag(missing)
    for k, edges in enumerate(target.edges):
        facts[f"b{k}"] = Fact(_position(target, k), len(edges) + 1, edges)
    if target.vocab is None:
        return facts
    if target.kind == STRING:  # top[j], then other, then unseen
        facts["c"] = Fact(_category_code(target, prefix), len(target.top) + 2)
        return facts
    keys = F.map_keys(column)
    vocab = list(target.vocab)
    if not _all_top(target):  # else: the entries not of a top key are unseen
        unseen = F.size(F.filter(keys, lambda k: ~k.isin(vocab)))
        facts["unseen"] = Fact(F.when(column.isNotNull(), unseen))
    facts["total"] = Fact(F.when(column.isNotNull(), F.size(keys)))
    for j, t in enumerate(target.top):
        facts[f"t{j}"] = _flag(F.array_contains(keys, F.lit(t)))
    return facts


Layout = tuple[tuple[Any, ...], ...]
"""What each projected column holds: ``("sum", slot)``, a number summed into the
flattened counts at ``slot``; ``("bins", edges, slot)``, a number binned, its counts
from ``slot`` on; ``("packed", ((multiplier, base, slot), ...))``, the codes of several
facts (null as ``base - 1``, times the multiplier) in one long."""


def _packed(facts: list[Fact]) -> tuple[list[Column], Layout, int]:
    """The projected columns: the codes of several facts packed in one long (fewer
    columns to hand to Python), the numbers alone; what each column holds; and the
    size of the flattened counts (the rows, then each fact's slots in order)."""
    columns: list[Column] = []
    layout: list[tuple[Any, ...]] = []
    packing: list[tuple[Column, int, int, int]] = []

    def pack() -> None:
        if packing:
            terms = [code * F.lit(mult).cast("long") for code, mult, _, _ in packing]
            columns.append(sum(terms[1:], terms[0]).alias(f"__p{len(columns)}"))
            layout.append(("packed", tuple((mult, base, at) for _, mult, base, at in packing)))
            packing.clear()

    mult, at = 1, 1
    for fact in facts:
        if fact.codes is None:
            columns.append(fact.column.cast("long").alias(f"__p{len(columns)}"))
            layout.append(("sum", at))
        elif fact.edges is not None:
            columns.append(fact.column.cast("double").alias(f"__p{len(columns)}"))
            layout.append(("bins", fact.edges, at))
        else:
            base = fact.slots
            if mult * base >= PACKED:
                pack()
                mult = 1
            code = F.coalesce(fact.column.cast("long"), F.lit(fact.codes).cast("long"))
            packing.append((code, mult, base, at))
            mult *= base
        at += fact.slots
    pack()
    return columns, tuple(layout), at


def count_batches(layout: Layout, size: int, batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` body: one partition's counts, in one row (``counts``: the rows,
    then each fact's slots: per code then null, or a sum; see :data:`Layout`)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    totals = np.zeros(size, dtype=np.int64)
    for batch in batches:
        totals[0] += batch.num_rows
        for values, (kind, *held) in zip(batch.columns, layout, strict=True):
            if kind == "sum":
                totals[held[0]] += pc.sum(values).as_py() or 0
            elif kind == "bins":
                edges, at = held
                present = pc.drop_null(values).to_numpy(zero_copy_only=False)
                bins = np.searchsorted(np.asarray(edges, dtype=np.float64), present, "right")
                totals[at : at + len(edges) + 1] += np.bincount(bins, minlength=len(edges) + 1)
                totals[at + len(edges) + 1] += values.null_count
            else:
                found = values.to_numpy(zero_copy_only=False)
                for mult, base, at in held[0]:
                    codes = found // mult % base if mult > 1 else found % base
                    totals[at : at + base] += np.bincount(codes, minlength=base)
    counts = pa.array([totals.tolist()], type=pa.list_(pa.int64()))
    yield pa.RecordBatch.from_arrays([counts], names=["counts"])


def _read(facts: dict[str, Fact], totals: list[int], at: int) -> tuple[dict[str, Any], int]:
    """The counts of one target's facts, from ``totals`` at ``at``: per code (the null
    slot last) or a sum, by fact; and where the next target's begin."""
    found: dict[str, Any] = {}
    for name, fact in facts.items():
        found[name] = totals[at] if fact.codes is None else totals[at : at + fact.slots]
        at += fact.slots
    return found, at


def _profile(counts: dict[str, Any], target: Target, rows: int) -> FeatureProfile:
    """One target's profile, from the counts of its facts (a flag's: false, true, null)."""
    positions = tuple(
        Bins(edges, tuple(int(c) for c in counts[f"b{k}"][: len(edges) + 1]))
        for k, edges in enumerate(target.edges)
    )
    categories = None
    if target.vocab is not None:
        n = len(target.top)
        if target.kind == STRING:
            codes = counts["c"]
            top = {t: int(codes[j]) for j, t in enumerate(target.top)}
            other, unseen = int(codes[n]), int(codes[n + 1])
        else:
            top = {t: int(counts[f"t{j}"][1]) for j, t in enumerate(target.top)}
            total = int(counts["total"])
            unseen = total - sum(top.values()) if _all_top(target) else int(counts["unseen"])
            other = total - unseen - sum(top.values())
        categories = Categories(top, other, unseen)
    if _counts_nulls(target):
        nulls = int(counts["nulls"][1])
    elif categories is not None:
        nulls = rows - categories.total
    else:
        nulls = rows - sum(positions[0].counts)
    return FeatureProfile(target.name, target.kind, rows, nulls, positions, categories, target.size)


def count_features(frame: DataFrame, targets: list[Target]) -> tuple[int, list[FeatureProfile]]:
    """The frame's rows and each target's counts, in one pass: Spark projects the
    per-row facts (a number position as a double; a category code or a flag, packed a
    dozen to a long), numpy bins and counts them over Arrow batches (one row of counts
    per partition), the driver adds the partitions up.

    Counting in Spark instead (one ``count(when(...))`` per bin and category) makes an
    aggregation too large for the JVM to compile, updated row by row in the
    interpreter: measured on ``bench/encode.py``'s table (1M rows), about 6 s
    against about 1.5 s here.
    """
    for i, target in enumerate(targets):
        if _joins_vocab(target):
            frame = _with_membership(frame, target, f"__d{i}_m")
    facts = [_projections(i, target) for i, target in enumerate(targets)]
    every = [fact for found in facts for fact in found.values()]
    columns, layout, size = _packed(every)
    schema = T.StructType([T.StructField("counts", T.ArrayType(T.LongType(), False), False)])
    counter = functools.partial(count_batches, layout, size)
    counting = frame.select(*columns).mapInArrow(counter, schema)
    with _conf(frame.sparkSession, *HUGE_METHOD):
        parts = counting.collect()
    totals = [sum(column) for column in zip(*(p["counts"] for p in parts), strict=True)]
    if not totals:  # no partition
        totals = [0] * size
    rows, at, counted = totals[0], 1, []
    for found, target in zip(facts, targets, strict=True):
        counts, at = _read(found, totals, at)
        counted.append(_profile(counts, target, rows))
    return rows, counted


@contextmanager
def _conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """The session's ``key`` set to ``value`` while the block runs, then as it was."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def kind_of(feature: Feature) -> str:
    """:data:`SCALAR`, :data:`ARRAY`, :data:`MAP` or :data:`STRING` for an fmap feature."""
    return dtype_category(feature.dtype)


def drift_targets(frame: DataFrame, fmap: FeatureMap, profile: Profile) -> list[Target]:
    """What to count on an encode day: each profiled feature over its fitted bins and categories."""
    types = {f.name: f.dataType for f in frame.schema.fields}
    targets = []
    for feature in fmap.features:
        fit = profile.feature(feature.name)
        if fit is None or feature.name not in types:
            continue
        kind = kind_of(feature)
        vocab = None
        if kind == STRING:
            vocab = tuple(feature.meta.get("vocab", ()))
        elif kind == MAP:
            vocab = tuple(feature.meta.get("keys", ()))
        top = tuple(fit.categories.counts) if fit.categories is not None else ()
        edges = tuple(b.edges for b in fit.positions)
        targets.append(Target(feature.name, kind, types[feature.name], edges, vocab, top, fit.size))
    return targets


@dataclass(frozen=True)
class Drift:
    """The drift of one encode: a report, or why there is none."""

    report: DriftReport | None = None
    skipped: str | None = None

    def result(self, uri: str) -> dict[str, Any]:
        """The job result's ``drift`` entry (``uri``: where the report is written)."""
        if self.report is None:
            return {"skipped": self.skipped}
        return self.report.summary(uri)


def measure(
    frame: DataFrame,
    job: JobConfig,
    femodel: Partition,
    fmap: FeatureMap,
    profile: Profile | None,
) -> Drift:
    """The drift of ``frame`` against the profile of the reused fmap, logged and gated.

    :raises DriftBreachError: a bound of ``encode.drift`` is exceeded and its
        ``on_breach`` is ``fail`` (before anything is written).
    """
    source = f"{femodel.uri}/{FMAP_FILE}"
    if profile is None:
        reason = f"the fmap {source} has no profile (fitted before profiles existed)"
        log.info("drift not measured: %s", reason)
        return Drift(skipped=reason)
    if profile.fmap_checksum != fmap.checksum:
        reason = f"the profile beside {source} belongs to another fmap ({profile.fmap_checksum})"
        log.warning("drift not measured: %s", reason)
        return Drift(skipped=reason)
    rows, counted = count_features(frame, drift_targets(frame, fmap, profile))
    columns = tuple(f.name for f in feature_fields(frame.schema, job.feature))
    now = Profile(fmap.checksum, profile.model_date, rows, columns, tuple(counted))
    gate = job.options.drift
    report = compare(profile, now, gate, date=job.date, fmap=femodel.uri)
    log.info("drift of %s against the fit of %s:\n%s", job.date, femodel.date, report.table())
    if report.breaches:
        lines = report.breach_lines()
        if gate.on_breach == "fail":
            raise DriftBreachError(
                f"encode of {job.date}: drift beyond encode.drift against the fmap of "
                f"{femodel.date}, nothing was written: " + "; ".join(lines)
            )
        log.warning("drift beyond encode.drift (on_breach: warn): %s", "; ".join(lines))
    return Drift(report)
