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
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import Partition
from dlflow_airflow.contract.drift import (
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
from spark_jobs.columns import cols
from spark_jobs.feature_types import dtype_category, feature_fields

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


def _all_top(target: Target) -> bool:
    """Whether every vocabulary value (map key) is counted on its own (none is ``other``)."""
    return len(target.vocab or ()) <= len(target.top)


def _slots(target: Target) -> int:
    """How many counts a target takes: its nulls, each position's bins (and the values
    beyond the last edge), then its categories (each top one, other, unseen)."""
    bins = sum(len(edges) + 1 for edges in target.edges)
    return 1 + bins + (len(target.top) + 2 if target.vocab is not None else 0)


def _doubles(values: Any) -> Any:
    """Numbers as float64 in numpy, null (and NaN) as NaN: booleans 0/1, as Spark casts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    doubles = pc.cast(values, pa.float64(), safe=False)
    return np.asarray(doubles.to_numpy(zero_copy_only=False), dtype=np.float64)


def _position(values: Any, k: int) -> Any:
    """Position ``k`` of each list (NaN: a null list, a shorter list or a null element)."""
    import numpy as np
    import pyarrow.compute as pc

    lengths = pc.list_value_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    starts = values.offsets.to_numpy()[:-1]
    elements = _doubles(values.values)
    found = np.full(len(values), np.nan)
    held = lengths > k
    found[held] = elements[starts[held] + k]
    return found


def _categories(values: Any, target: Target) -> Any:
    """Counts of the present values (map keys): each top category, other (in the
    vocabulary), unseen.

    A dictionary-encoded column (how :func:`count_files` reads strings) is looked up
    once per dictionary entry, then counted through its indices: a few thousand
    look-ups instead of one per row.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    top = list(target.top)
    present = values.drop_null() if values.null_count else values
    if pa.types.is_dictionary(present.type):
        weights = np.bincount(
            present.indices.to_numpy(zero_copy_only=False), minlength=len(present.dictionary)
        )
        present = present.dictionary
    else:
        weights = np.ones(len(present), dtype=np.int64)
    index = pc.index_in(present, value_set=pa.array(top, pa.string()))
    codes = index.fill_null(len(top)).to_numpy(zero_copy_only=False)
    counts = np.bincount(codes, weights=weights, minlength=len(top) + 1)[: len(top)]
    counts = counts.astype(np.int64)
    rest = int(weights.sum()) - int(counts.sum())
    other = 0
    if not _all_top(target):  # else every value outside the top ones is unseen
        known = pc.is_in(present, value_set=pa.array(list(target.vocab or ()), pa.string()))
        outside_top = known.to_numpy(zero_copy_only=False) & (codes == len(top))
        other = int(weights[outside_top].sum())
    return np.array([*counts, other, rest - other], dtype=np.int64)


def _bins(found: Any, edges: tuple[float, ...]) -> Any:
    """How many present values fall in each bin of ``edges`` (sorted): numpy's
    ``bincount(searchsorted(edges, value, "right"))`` over the non-NaN values, counted
    as one comparison per edge (NaN compares false), several times faster."""
    import numpy as np

    at_least = np.array([np.count_nonzero(found >= edge) for edge in edges], dtype=np.int64)
    present = len(found) - np.count_nonzero(np.isnan(found))
    return -np.diff(np.concatenate(([present], at_least, [0])))


def _keys(values: Any) -> Any:
    """The keys of every entry of the present maps."""
    import numpy as np

    offsets = values.offsets.to_numpy()
    keys = values.keys.slice(offsets[0], offsets[-1] - offsets[0])
    if not values.null_count:
        return keys
    present = values.is_valid().to_numpy(zero_copy_only=False)
    return keys.filter(np.repeat(present, np.diff(offsets)))


def count_batch(targets: list[Target], batch: Any) -> Any:
    """The counts of one Arrow batch of raw columns: the rows, then each target's
    (see :func:`_slots`); a value equal to an edge counts in the bin above it."""
    import numpy as np

    totals = [np.array([batch.num_rows], dtype=np.int64)]
    for target in targets:
        values = batch.column(batch.schema.get_field_index(target.name))
        counts = np.zeros(_slots(target), dtype=np.int64)
        if target.kind == SCALAR:
            doubles = _doubles(values)
            positions = [doubles]
            counts[0] = np.count_nonzero(np.isnan(doubles))
        else:
            positions = [_position(values, k) for k in range(len(target.edges))]
            counts[0] = values.null_count
        at = 1
        for edges, found in zip(target.edges, positions, strict=False):
            counts[at : at + len(edges) + 1] = _bins(found, edges)
            at += len(edges) + 1
        if target.vocab is not None:
            keys = _keys(values) if target.kind == MAP else values
            counts[at:] = _categories(keys, target)
        totals.append(counts)
    return np.concatenate(totals)


def count_batches(targets: list[Target], batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` body: one partition's counts (:func:`count_batch`), in one row."""
    import numpy as np
    import pyarrow as pa

    totals = np.zeros(1 + sum(map(_slots, targets)), dtype=np.int64)
    for batch in batches:
        totals += count_batch(targets, batch)
    counts = pa.array([totals.tolist()], type=pa.list_(pa.int64()))
    yield pa.RecordBatch.from_arrays([counts], names=["counts"])


def count_files(targets: list[Target], uris: Iterator[str]) -> Iterator[list[int]]:
    """The counts of Parquet files read with pyarrow (one list per task)."""
    import numpy as np
    import pyarrow.parquet as pq

    names = list(dict.fromkeys(t.name for t in targets))
    categorical = {t.name for t in targets if t.vocab is not None}
    totals = np.zeros(1 + sum(map(_slots, targets)), dtype=np.int64)
    for uri in uris:
        filesystem, path = storage.resolve(uri)
        with filesystem.open_input_file(path) as source:
            metadata = pq.read_metadata(source)
            # Strings and map keys as dictionaries: decoded and looked up once per value.
            leaves = (metadata.schema.column(i).path for i in range(metadata.num_columns))
            dictionaries = [
                path
                for path in leaves
                if path.split(".")[0] in categorical
                and (path in categorical or path.endswith(".key"))
            ]
            reader = pq.ParquetFile(source, metadata=metadata, read_dictionary=dictionaries)
            for batch in reader.iter_batches(columns=names):
                totals += count_batch(targets, batch)
    yield totals.tolist()


def parquet_files(frame: DataFrame) -> list[str] | None:
    """The files of a plain Parquet read (no filter, projection or partition column)
    that pyarrow can open (:func:`dlflow_airflow.contract.storage.resolve`), else None
    (also for a session without a JVM plan to read, e.g. Spark Connect)."""
    try:
        plan = frame._jdf.queryExecution().analyzed()
    except Exception:  # no _jdf (Spark Connect) or a py4j error: count through Spark
        return None
    if plan.getClass().getSimpleName() != "LogicalRelation":
        return None
    relation = plan.relation()
    if relation.getClass().getSimpleName() != "HadoopFsRelation":
        return None
    if relation.fileFormat().getClass().getSimpleName() != "ParquetFileFormat":
        return None
    if relation.partitionSchema().length() > 0:
        return None
    files = list(frame.inputFiles())
    try:
        for uri in {uri.split("://")[0]: uri for uri in files}.values():  # one per scheme
            storage.resolve(uri)  # s3a://, say, is Hadoop's own
    except (ValueError, OSError, NotImplementedError):
        return None
    return files


def _profile(counts: list[int], target: Target, rows: int) -> FeatureProfile:
    """One target's profile, from its counts (see :func:`_slots`)."""
    nulls, at = counts[0], 1
    positions = []
    for edges in target.edges:
        positions.append(Bins(edges, tuple(counts[at : at + len(edges) + 1])))
        at += len(edges) + 1
    categories = None
    if target.vocab is not None:
        n = len(target.top)
        top = {t: counts[at + j] for j, t in enumerate(target.top)}
        categories = Categories(top, counts[at + n], counts[at + n + 1])
    return FeatureProfile(
        target.name, target.kind, rows, nulls, tuple(positions), categories, target.size
    )


def count_features(frame: DataFrame, targets: list[Target]) -> tuple[int, list[FeatureProfile]]:
    """The frame's rows and each target's counts, in one pass over the raw columns,
    counted with numpy over Arrow batches (one row of counts per task), added up on
    the driver.

    A plain Parquet read (:func:`parquet_files`, the raw table at encode and fit) is
    read with pyarrow in the tasks (one per core, each a share of the files; strings
    and map keys as dictionaries); any other frame hands its columns over with
    ``mapInArrow``. Measured on ``bench/encode.py``'s table (1M rows, 2 cores): 0.12 s
    of counting, 0.2-0.35 s as a Spark job, from the files; 1.4 s handed over (Spark
    decodes the Parquet into rows, then into Arrow again). Counting in Spark
    (``count(when(...))``, or observed while the encoded table is written) makes
    expressions too large for the JVM to compile: 3 s to 10 s more.
    """
    spark = frame.sparkSession
    size = 1 + sum(map(_slots, targets))
    files = parquet_files(frame)
    found = None
    if files is not None:
        counter = functools.partial(count_files, targets)
        # One task per core, not per file: on a small day the tasks' start-up is the cost.
        slices = max(min(len(files), spark.sparkContext.defaultParallelism), 1)
        parts = spark.sparkContext.parallelize(files, slices).mapPartitions(counter)
        try:
            found = parts.collect() if files else []
        except Exception as exc:  # an executor without libhdfs, a corrupt file...
            log.warning(
                "drift: reading the raw files with pyarrow failed (%s); counting through "
                "Spark's reader instead",
                str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc),
            )
    if found is None:
        names = list(dict.fromkeys(t.name for t in targets))
        schema = T.StructType([T.StructField("counts", T.ArrayType(T.LongType(), False), False)])
        body = functools.partial(count_batches, targets)
        found = [
            row["counts"] for row in frame.select(*cols(names)).mapInArrow(body, schema).collect()
        ]
    totals = [sum(column) for column in zip(*found, strict=True)] or [0] * size
    rows, at, counted = totals[0], 1, []
    for target in targets:
        counted.append(_profile(totals[at : at + _slots(target)], target, rows))
        at += _slots(target)
    return rows, counted


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
