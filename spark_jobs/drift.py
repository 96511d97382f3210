"""Drift at encode: the day's raw features counted over the fitted profile, in one pass.

:func:`count_features` is the one counting pass, shared with the fit
(:mod:`spark_jobs.fit_profile` counts the fit day's bins with it): per feature the
nulls, per number position the values in each fitted bin, per string (map)
the values (entries) of each profiled category and those outside the
vocabulary. :func:`begin` starts the count of an encode day (beside encode's write
for a small day) and gives a call that turns the counts into a drift report
(:func:`dlflow_airflow.contract.drift.compare`), logs its table and applies the
gate (``encode.drift``): ``fail`` raises and nothing is committed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
from spark_jobs.parquet_units import READ_ERRORS

log = logging.getLogger(__name__)

# A plain Parquet partition of at most this many bytes is counted by the driver with
# pyarrow, not by a Spark job. Measured on bench/encode.py's raw table (1M rows, 72 MB,
# 2 cores): the driver counts it in 0.13 s of one core, a Spark job over it takes
# 0.2 s, of which 0.1 s is the job's start-up (an empty job of two Python tasks); at
# this size the driver's count takes at most ~0.25 s of one core. At encode, the
# driver counts beside the write of the encoded table (:func:`begin`).
DRIVER_COUNT_BYTES = 128 * 2**20


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


def _size(targets: list[Target]) -> int:
    """How many counts a pass over ``targets`` adds up: the rows, then each target's."""
    return 1 + sum(map(_slots, targets))


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

    totals = np.zeros(_size(targets), dtype=np.int64)
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
    totals = np.zeros(_size(targets), dtype=np.int64)
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


@dataclass(frozen=True)
class RawFiles:
    """The files of a plain Parquet read that pyarrow can open, and their total bytes."""

    uris: list[str]
    size: int

    @property
    def small(self) -> bool:
        """Whether the driver counts them (:data:`DRIVER_COUNT_BYTES`)."""
        return self.size <= DRIVER_COUNT_BYTES


def parquet_files(frame: DataFrame) -> RawFiles | None:
    """The files of a plain Parquet read (no filter, projection or partition column)
    that pyarrow can open (:func:`dlflow_airflow.contract.storage.resolve`), else None
    (also for a session without a JVM plan to read, e.g. Spark Connect). Their size
    is Spark's, from the listing it made for the read."""
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
    return RawFiles(files, int(relation.location().sizeInBytes()))


def count_on_driver(targets: list[Target], files: RawFiles) -> list[int]:
    """The counts of :func:`count_files`, read by this process (no Spark job)."""
    return next(count_files(targets, iter(files.uris)))


def count_in_tasks(frame: DataFrame, targets: list[Target], files: RawFiles) -> list[int] | None:
    """The counts of ``files`` read with pyarrow in Spark tasks (one per core, each a
    share of the files), added up; None when a task cannot read them (count through
    Spark's reader instead)."""
    spark = frame.sparkSession
    counter = functools.partial(count_files, targets)
    # One task per core, not per file: on a small day the tasks' start-up is the cost.
    slices = max(min(len(files.uris), spark.sparkContext.defaultParallelism), 1)
    parts = spark.sparkContext.parallelize(files.uris, slices).mapPartitions(counter)
    try:
        return _added(parts.collect())
    except Exception as exc:  # an executor without libhdfs, a corrupt file...
        _fell_back("in the tasks", exc, "through Spark's reader")
        return None


def count_handed_over(frame: DataFrame, targets: list[Target]) -> list[int]:
    """The counts of the frame's columns handed over by Spark (``mapInArrow``), added up."""
    names = list(dict.fromkeys(t.name for t in targets))
    schema = T.StructType([T.StructField("counts", T.ArrayType(T.LongType(), False), False)])
    body = functools.partial(count_batches, targets)
    found = [row["counts"] for row in frame.select(*cols(names)).mapInArrow(body, schema).collect()]
    return _added(found) or [0] * _size(targets)


def _added(found: list[list[int]]) -> list[int]:
    """Per-task counts added up (empty: no task)."""
    return [sum(column) for column in zip(*found, strict=True)]


def _fell_back(where: str, exc: BaseException, instead: str) -> None:
    """Log why the raw files are counted another way (``instead``)."""
    text = str(exc).strip()
    log.warning(
        "drift: reading the raw files with pyarrow %s failed (%s); counting %s instead",
        where,
        text.splitlines()[-1][:300] if text else type(exc).__name__,
        instead,
    )


def counted(
    frame: DataFrame, targets: list[Target], files: RawFiles | None, totals: list[int] | None
) -> list[int]:
    """``totals`` when counted, else the counts from Spark: pyarrow in its tasks for
    ``files``, Spark's reader otherwise (or when the tasks cannot read them)."""
    if totals is None and files is not None and files.uris:
        totals = count_in_tasks(frame, targets, files)
    if totals is None:
        totals = count_handed_over(frame, targets)
    return totals


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
    counted with numpy over Arrow batches.

    A plain Parquet read (:func:`parquet_files`, the raw table at encode and fit) is
    read with pyarrow: by the driver when small (:data:`DRIVER_COUNT_BYTES`), else in
    Spark tasks (one per core, each a share of the files, one row of counts per task,
    added up on the driver); strings and map keys as dictionaries. Any other frame
    hands its columns over with ``mapInArrow``. Measured on ``bench/encode.py``'s
    table (1M rows, 2 cores): 0.13 s counted by the driver, 0.2 s as a Spark job
    reading the files; 1.4 s handed over (Spark decodes the Parquet into rows, then
    into Arrow again). Counting in Spark (``count(when(...))``, or observed while the
    encoded table is written) makes expressions too large for the JVM to compile:
    3 s to 10 s more.
    """
    files = parquet_files(frame)
    totals = None
    if files is not None and files.small:
        totals = _driver_totals(functools.partial(count_on_driver, targets, files))
    return _profiles(targets, counted(frame, targets, files, totals))


def _driver_totals(count: Callable[[], list[int]]) -> list[int] | None:
    """The driver's counts (``count``: the counting or its pending result); None when
    the driver cannot read the files (the tasks count them then)."""
    try:
        return count()
    except READ_ERRORS as exc:  # a driver without libhdfs, a corrupt file...
        _fell_back("on the driver", exc, "in Spark tasks")
        return None


def _profiles(targets: list[Target], totals: list[int]) -> tuple[int, list[FeatureProfile]]:
    """The rows and each target's profile, from the added-up counts."""
    rows, at, found = totals[0], 1, []
    for target in targets:
        found.append(_profile(totals[at : at + _slots(target)], target, rows))
        at += _slots(target)
    return rows, found


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


def begin(
    frame: DataFrame,
    job: JobConfig,
    femodel: Partition,
    fmap: FeatureMap,
    profile: Profile | None,
) -> Callable[[], Drift]:
    """Start measuring the drift of ``frame`` against the profile of the reused fmap;
    the call returned gives it, logged and gated.

    A small plain Parquet partition (:data:`DRIVER_COUNT_BYTES`) is counted by the
    driver in a thread, beside what the caller does next (encode writes its table
    into staging meanwhile, so a breach is found after that write and nothing is
    committed); any other is counted and gated now, before the caller writes.

    :raises DriftBreachError: (from the call) a bound of ``encode.drift`` is exceeded
        and its ``on_breach`` is ``fail``.
    """
    source = f"{femodel.uri}/{FMAP_FILE}"
    if profile is None:
        reason = f"the fmap {source} has no profile (fitted before profiles existed)"
        log.info("drift not measured: %s", reason)
        return functools.partial(Drift, skipped=reason)
    if profile.fmap_checksum != fmap.checksum:
        reason = f"the profile beside {source} belongs to another fmap ({profile.fmap_checksum})"
        log.warning("drift not measured: %s", reason)
        return functools.partial(Drift, skipped=reason)
    targets = drift_targets(frame, fmap, profile)
    columns = tuple(f.name for f in feature_fields(frame.schema, job.feature))

    def judged(totals: list[int]) -> Drift:
        rows, found = _profiles(targets, totals)
        now = Profile(fmap.checksum, profile.model_date, rows, columns, tuple(found))
        return _judge(profile, now, job, femodel)

    files = parquet_files(frame)
    if files is None or not files.small:
        drifted = judged(counted(frame, targets, files, None))
        return lambda: drifted
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dlflow-drift")
    pending = pool.submit(count_on_driver, targets, files)
    pool.shutdown(wait=False)  # the thread ends with the count

    return lambda: judged(counted(frame, targets, files, _driver_totals(pending.result)))


def _judge(profile: Profile, now: Profile, job: JobConfig, femodel: Partition) -> Drift:
    """The day's profile ``now`` against the fit's, logged and gated."""
    gate = job.options.drift
    report = compare(profile, now, gate, date=job.date, fmap=femodel.uri)
    log.info("drift of %s against the fit of %s:\n%s", job.date, femodel.date, report.table())
    if report.breaches:
        lines = report.breach_lines()
        if gate.on_breach == "fail":
            raise DriftBreachError(
                f"encode of {job.date}: drift beyond encode.drift against the fmap of "
                f"{femodel.date}, nothing was committed: " + "; ".join(lines)
            )
        log.warning("drift beyond encode.drift (on_breach: warn): %s", "; ".join(lines))
    return Drift(report)
