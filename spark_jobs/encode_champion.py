"""Encode the run's rows for the champion, the blessed model a new model is compared with.

Every model date has its own fmap, so the champion (an older model date)
cannot score the partition encoded for the new model: evaluate's
``max_drop_vs_blessed`` needs the same raw rows encoded with the champion's
fmap and normalisers. Encode does it in the same commit as its own table
when it produces CHAMPION_FEATURE (option ``champion``, set by the pipeline):

- the champion is the newest complete blessed model of ``model.tag`` dated on
  or before the run's date, other than the run's own model date
  (:func:`~dlflow_airflow.contract.model_resolution.resolve_champion`);
- its rows go to ``champion/TAG=<model>/dt=<date>`` with a
  :class:`~dlflow_airflow.contract.artifacts.ChampionRecord`;
- no champion (the tag's first model), or one whose fmap is missing or no
  longer fits the raw table: the partition holds only the record, saying why
  (a warning), and evaluate applies ``min``/``max`` alone.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    CHAMPION_FEATURE,
    ENCODING_FILE,
    FMAP,
    ChampionRecord,
    StageIO,
)
from dlflow_airflow.contract.fmap import FMAP_FILE, FeatureMap, FmapError, Normalizers
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.model_resolution import resolve_champion
from spark_jobs.encode_apply import check_fmap, encode_frame, write_options
from spark_jobs.feature_types import EncodeError
from spark_jobs.paths import Staging

log = logging.getLogger(__name__)


def encode_champion(
    spark: SparkSession, job: JobConfig, io: StageIO, raw: DataFrame, staging: Staging
) -> dict[str, str | None] | None:
    """Stage the champion partition (committed with the rest of ``staging``).

    :returns: the champion's model date and partition for the job's result, or
        None when the stage does not produce CHAMPION_FEATURE.
    """
    if not io.has(CHAMPION_FEATURE):
        return None
    output = io.get(CHAMPION_FEATURE).uri
    folder = staging.folder(output)
    record = write_champion_rows(spark, job, io.get(FMAP).date, raw, folder)
    storage.write_text(f"{folder}/{ENCODING_FILE}", record.to_json())
    if record.model_date is None:
        log.warning("no champion to compare with: %s", record.reason)
    else:
        log.info("encoded the rows for champion %s into %s", record.model, output)
    return {"model_date": record.model_date, "output": output, "reason": record.reason}


def write_champion_rows(
    spark: SparkSession, job: JobConfig, model_date: str, raw: DataFrame, folder: str
) -> ChampionRecord:
    """Write ``raw`` encoded with the champion's fmap into ``folder``; the record to keep.

    :param model_date: the run's own model date (the new model's), never the champion.
    """
    tag = job.model.tag
    found = resolve_champion(job.layout, tag, job.date, exclude=model_date)
    if found is None:
        return ChampionRecord(
            None,
            reason=f"no blessed model of {tag!r} dated on or before {job.date} other than "
            f"{model_date} (the new model): it is the first",
        )
    femodel = job.layout.femodel(job.feature.tag, found.date)
    try:
        fmap = FeatureMap.load(femodel)
        normalizers = Normalizers.load(femodel, fmap)
        check_fmap(fmap, raw, job.feature, f"{femodel}/{FMAP_FILE}")
    except (FmapError, EncodeError) as exc:
        reason = f"the champion {found.uri} cannot score this date: {exc}"
        return ChampionRecord(None, model=found.uri, fmap=femodel, reason=reason)
    encoded = encode_frame(spark, raw, fmap, normalizers)
    encoded.write.options(**write_options(fmap)).parquet(folder)
    return ChampionRecord(found.date, found.uri, femodel, fmap.checksum)
