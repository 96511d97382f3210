"""Encode: raw features -> fmap + normaliser statistics + encoded table (+ TFRecords).

Every partition comes from the artifact contract
(:func:`~dlflow_airflow.contract.artifacts.stage_io`): it reads RAW_FEATURE,
writes ENCODED_FEATURE (and TFRECORD_FEATURE when the stage produces it), and
the FMAP partition's role decides the fmap (``fmap.json`` and
``normalizers.json``, dated by the model date):

- ``fit_or_reuse`` (``model.date`` ``same`` or a date): reuse the complete
  fmap of that date, so a model date's encoding stays fixed while new dates
  are encoded with it; else fit one on this date's data and write it;
- ``write`` (``refit: true``): fit and write it, replacing any;
- ``reuse`` (``model.date: latest``): the fmap of the newest blessed model,
  which predict will score with; it must exist and is never written.

Fitting: :mod:`spark_jobs.encode_fit` (with the fit day's profile,
:mod:`spark_jobs.fit_profile`); applying: :mod:`spark_jobs.encode_apply`. With a
reused fmap, the day's drift against that profile (:mod:`spark_jobs.drift`) is
logged, gated (``drift``) and written beside the encoded table (``_DRIFT.json``).
Options: :class:`dlflow_airflow.contract.options.EncodeOptions`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    DRIFT_FILE,
    ENCODED_FEATURE,
    ENCODING_FILE,
    FMAP,
    RAW_FEATURE,
    TFRECORD_FEATURE,
    Partition,
    Role,
    StageIO,
    encoding_record,
    stage_io,
)
from dlflow_airflow.contract.drift import Profile
from dlflow_airflow.contract.fmap import FMAP_FILE, NORMALIZERS_FILE, FeatureMap, Normalizers
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.layout import SUCCESS_MARKER
from dlflow_airflow.contract.options import EncodeOptions
from spark_jobs import drift
from spark_jobs.encode_apply import check_fmap, encode_frame, write_options
from spark_jobs.encode_champion import encode_champion
from spark_jobs.encode_labels import (
    bad_binary_labels,
    check_label_encodings,
    check_labels,
    check_written_labels,
    raise_bad_binary_labels,
    split_binary_labels,
    unseen_labels,
)
from spark_jobs.feature_types import EncodeError
from spark_jobs.fit_profile import fit_profiled
from spark_jobs.parquet_units import written_rows
from spark_jobs.paths import Staging, require_complete
from spark_jobs.read_errors import naming_bad_files
from spark_jobs.session import run_job
from spark_jobs.tfrecord import write_tfrecords

log = logging.getLogger(__name__)


def read_raw(spark: SparkSession, job: JobConfig, raw_uri: str, fit: bool = True) -> DataFrame:
    """The complete raw partition, with its key and label columns.

    :param fit: the run fits an fmap on it: check now that it has rows (one small
        Spark job); else :func:`encode` checks the count of the rows it wrote.
    """
    require_complete(raw_uri, "encode input (raw features; run merge first)")
    raw = spark.read.parquet(raw_uri)
    feature = job.feature
    missing = [c for c in (*feature.primary_keys, *feature.labels) if c not in raw.columns]
    if missing:
        raise EncodeError(f"the raw table {raw_uri} has no key/label column(s) {missing}")
    absent = [c for c in feature.drop_columns if c not in raw.columns]
    if absent:
        log.warning("drop_columns %s are not in the raw table %s", absent, raw_uri)
    if fit and raw.isEmpty():
        raise_no_rows(raw_uri)
    return raw


def raise_no_rows(raw_uri: str) -> None:
    """:raises EncodeError: the raw partition has no rows."""
    raise EncodeError(f"the raw partition {raw_uri} has no rows; nothing was committed")


def reuses_fmap(femodel: Partition, job: JobConfig) -> bool:
    """Whether the run applies the fmap already at ``femodel`` (else it fits one).

    :raises EncodeError: the role is ``reuse`` and there is no complete fmap.
    """
    fmap_uri = f"{femodel.uri}/{FMAP_FILE}"
    complete = storage.is_complete(femodel.uri) and storage.exists(fmap_uri)
    if femodel.role == Role.WRITE:
        return False
    if femodel.role == Role.FIT_OR_REUSE:
        return complete
    if femodel.role != Role.REUSE:  # READ: the stage's tags do not make encode produce FMAP
        raise EncodeError(f"encode cannot write the fmap {femodel.uri}: its role is {femodel.role}")
    if not complete:
        raise EncodeError(
            f"model.date {job.model.date!r} names the model of {femodel.date}, whose fmap "
            f"{fmap_uri} is missing or incomplete (no {SUCCESS_MARKER} in {femodel.uri}); "
            "encode reuses that fmap and never writes it: encode that model date first"
        )
    return True


def load_or_fit(
    raw: DataFrame, job: JobConfig, femodel: Partition, reuse: bool, raw_uri: str
) -> tuple[FeatureMap, Normalizers, Profile | None]:
    """The fmap, normaliser statistics and profile to apply: loaded (and checked) or
    fitted (the profile is None for an fmap fitted before profiles existed); the
    labels checked against the model's task, before any other Spark work (with a
    reused fmap, :func:`encode` checks the binary labels' values as it writes the
    table, or from the written files' statistics, before it commits)."""
    if not reuse:
        check_labels(raw, job, raw_uri)
        return fit_profiled(raw, job, femodel.date)
    fmap = FeatureMap.load(femodel.uri)
    check_fmap(fmap, raw, job.feature, f"{femodel.uri}/{FMAP_FILE}")
    check_label_encodings(fmap, job, f"{femodel.uri}/{FMAP_FILE}")
    # The label types here; the binary labels' values as the table is written.
    bad_binary_labels(raw, job, raw_uri)
    return fmap, Normalizers.load(femodel.uri, fmap), Profile.load(femodel.uri)


def write_tfrecord(encoded: DataFrame, folder: str, compression: str, rows: int) -> None:
    """TFRecords of the written encoded table; refuses a row count that differs."""
    written = write_tfrecords(encoded, folder, compression=compression)
    if written.rows != rows:
        raise EncodeError(
            f"TFRecord writers reported {written.rows} rows, the encoded table has {rows}"
        )


def run(spark: SparkSession, job: JobConfig, *, measure_drift: bool = True) -> dict[str, Any]:
    """:param measure_drift: False only in ``bench/encode.py``, to time encode without it."""
    io = stage_io(job)
    reuse = reuses_fmap(io.get(FMAP), job)  # before any Spark work: a missing fmap fails fast
    raw_uri = io.get(RAW_FEATURE).uri
    with naming_bad_files({raw_uri: "encode input (raw features)"}):
        return encode(spark, job, io, reuse, measure_drift)


def encode(
    spark: SparkSession, job: JobConfig, io: StageIO, reuse: bool, measure_drift: bool = True
) -> dict[str, Any]:
    """Fit or load the fmap, write the encoded table (and TFRecords); the job's result.

    :raises DriftBreachError: drift beyond ``drift`` with ``on_breach: fail`` (nothing committed).
    """
    options: EncodeOptions = job.options
    femodel = io.get(FMAP)
    raw_uri = io.get(RAW_FEATURE).uri
    raw = read_raw(spark, job, raw_uri, fit=not reuse)
    fmap, normalizers, profile = load_or_fit(raw, job, femodel, reuse, raw_uri)
    output = io.get(ENCODED_FEATURE).uri
    tfrecord = io.get(TFRECORD_FEATURE).uri if io.has(TFRECORD_FEATURE) else None
    skipped = "the fmap was fitted by this run" if not reuse else "not asked"
    # A small day is counted beside the write; a breach is raised before the commit.
    measured = (
        drift.begin(raw, job, femodel, fmap, profile)
        if reuse and measure_drift
        else functools.partial(drift.Drift, skipped=skipped)
    )
    with Staging() as staging:
        if not reuse:  # committed first: an encoded table never names a missing fmap
            folder = staging.folder(femodel.uri)
            fmap.save(folder)
            normalizers.save(folder)
            if profile is not None:
                profile.save(folder)
        folder = staging.folder(output)
        # Rows from the written files' footers (written_rows), not observed. With a
        # reused fmap the binary labels (written as they are) are checked by the files'
        # statistics, or observed as written when their type lets statistics miss a bad
        # value (a fit checked them first). An observation between the scan and the
        # encoding would cost ~15% of the write.
        by_statistics, observed = split_binary_labels(raw, job) if reuse else ([], [])
        bad = bad_binary_labels(raw, job, raw_uri, observed) if observed else None
        encoded = encode_frame(spark, raw, fmap, normalizers)
        written = Observation("encoded")
        if bad is not None:
            encoded = encoded.observe(written, F.count_if(bad).alias("bad"))
        encoded.write.options(**write_options(fmap)).parquet(folder)
        rows, footers = written_rows(spark, folder)
        if not rows:  # a fit refused an empty partition before it started
            raise_no_rows(raw_uri)
        if bad is not None and written.get["bad"]:  # nothing is committed
            raise_bad_binary_labels(raw, job, raw_uri, bad, f"{written.get['bad']} such rows")
        check_written_labels(raw, job, raw_uri, by_statistics, footers)
        drifted = measured()  # a failing gate raises: nothing is committed
        # Which fmap encoded it: the readers of this partition use that model (one per run).
        unseen = unseen_labels(raw, fmap) if reuse else {}  # a fit knows all its labels
        record = encoding_record(femodel, fmap.checksum, unseen)
        storage.write_text(f"{folder}/{ENCODING_FILE}", record)
        if drifted.report is not None:
            storage.write_text(f"{folder}/{DRIFT_FILE}", drifted.report.to_json())
        if tfrecord is not None:
            table = spark.read.parquet(folder)
            write_tfrecord(table, staging.folder(tfrecord), options.tfrecord_compression, rows)
        champion = encode_champion(spark, job, io, raw, staging)
        staging.commit()
    log.info("encoded %d rows into %s (fmap %s, reused=%s)", rows, output, femodel.uri, reuse)
    return {
        "rows": rows,
        "output": output,
        "fmap": f"{femodel.uri}/{FMAP_FILE}",
        "normalizers": f"{femodel.uri}/{NORMALIZERS_FILE}",
        "fmap_reused": reuse,
        "fmap_checksum": fmap.checksum,
        "tfrecord": tfrecord,
        "champion": champion,
        "drift": drifted.result(f"{output}/{DRIFT_FILE}"),
    }


def main(argv: list[str] | None = None) -> None:
    run_job("encode", run, argv)


if __name__ == "__main__":
    main()
