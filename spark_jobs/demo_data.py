"""Synthetic upstream tables for the demo pipeline (and the tests).

For one date it writes, each as a committed Parquet partition::

    <workspace>/upstream/seed/dt=<date>            uid, label
    <workspace>/upstream/user_profile/dt=<date>    uid, age, income, city, device
    <workspace>/upstream/user_behaviour/dt=<date>  uid, clicks_7d, dwell_time, channel

Every value is drawn from a hash of the seed, the uid, a per-column salt and
(for daily values) the date, so the output does not depend on partitioning:
the same (date, seed) gives the same tables. Profiles
are stable across dates; behaviour and labels change daily. The label is drawn
from a logistic function of numeric and categorical features (see
:func:`true_logit`); its best possible AUC is about 0.8.

Options: :class:`dlflow_airflow.contract.options.DemoDataOptions` (``rows``, ``seed``).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from dlflow_airflow.contract.artifacts import DEMO_TABLES
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.options import DemoDataOptions
from spark_jobs.paths import Staging
from spark_jobs.session import run_job

# (name, share, effect on the label's log-odds); the rest of the users are "other".
DEVICES = (("android", 0.45, 0.0), ("ios", 0.30, 0.6), ("web", 0.15, -0.5), ("tablet", 0.07, 0.3))
OTHER_DEVICE = ("other", -0.8)
CHANNELS = ("organic", "search", "social", "email", "push", "ads", "referral", "partner")
N_CITIES = 30
MISSING_RATE = 0.05  # share of seed uids absent from each source
EXTRA_USERS = 0.03  # sources also hold users that are not in the seed

_RESOLUTION = 1 << 30


def merge_options() -> dict[str, Any]:
    """The merge stage options that read what this job writes."""
    return {
        "seed": {"path": "{workspace}/upstream/seed/dt={date}", "format": "parquet"},
        "sources": [
            {"name": name, "path": f"{{workspace}}/upstream/{name}/dt={{date}}"}
            for name in DEMO_TABLES[1:]
        ],
    }


def _uniform(salt: str, *keys: Column) -> Column:
    """A uniform draw in (0, 1), a pure function of ``salt`` and ``keys``."""
    bucket = F.pmod(F.xxhash64(F.lit(salt), *keys), F.lit(_RESOLUTION))
    return (bucket + F.lit(0.5)) / F.lit(float(_RESOLUTION))


def _normal(salt: str, *keys: Column) -> Column:
    """A standard normal draw (Box-Muller on two hashed uniforms)."""
    radius = F.sqrt(F.lit(-2.0) * F.log(_uniform(salt + ":r", *keys)))
    return radius * F.cos(F.lit(2 * math.pi) * _uniform(salt + ":a", *keys))


def _maybe_null(value: Column, rate: float, salt: str, *keys: Column) -> Column:
    return F.when(_uniform("null:" + salt, *keys) >= F.lit(rate), value)


def _cases(branches: list[tuple[Column, Column]], default: Column) -> Column:
    """``CASE WHEN c1 THEN v1 WHEN c2 THEN v2 ... ELSE default END``."""
    (condition, value), *rest = branches
    expr = F.when(condition, value)
    for condition, value in rest:
        expr = expr.when(condition, value)
    return expr.otherwise(default)


def _device(u: Column) -> Column:
    """A device name drawn with the shares of :data:`DEVICES`."""
    edges = itertools.accumulate(share for _, share, _ in DEVICES)
    branches = [
        (u < F.lit(edge), F.lit(name)) for (name, _, _), edge in zip(DEVICES, edges, strict=True)
    ]
    return _cases(branches, F.lit(OTHER_DEVICE[0]))


def _device_effect(device: Column) -> Column:
    branches = [(device == F.lit(name), F.lit(effect)) for name, _, effect in DEVICES]
    return _cases(branches, F.lit(OTHER_DEVICE[1]))


def true_logit() -> Column:
    """The label's log-odds from the latent (never null) feature columns of
    :func:`latent_frame`: monotone numeric effects plus per-category effects."""
    return (
        F.lit(-1.0)
        - F.lit(0.6) * (F.col("age_") - F.lit(38.0)) / F.lit(12.0)
        + F.lit(0.7) * F.col("z_income")
        + F.lit(0.45) * (F.least(F.col("clicks_"), F.lit(20)) - F.lit(4.0)) / F.lit(4.0)
        + F.lit(0.6) * F.col("z_dwell")
        + F.lit(1.0) * F.sin(F.col("city_idx") * F.lit(1.7))
        + _device_effect(F.col("device_"))
        + F.lit(0.6) * F.cos(F.col("channel_idx") * F.lit(2.3))
    )


def latent_frame(spark: SparkSession, rows: int, seed: int, date: str) -> DataFrame:
    """Every user's latent features and label; ``in_seed`` marks the seed's users."""
    total = rows + max(1, int(rows * EXTRA_USERS))
    uid = F.col("uid")
    user = (F.lit(seed), uid)  # profile draws: stable across dates
    day = (F.lit(seed), F.lit(date), uid)  # behaviour and label draws: daily
    base = spark.range(total).select(
        (F.lit(10_000_000) + F.col("id")).alias("uid"),
        (F.col("id") < F.lit(rows)).alias("in_seed"),
    )
    latent = base.select(
        "uid",
        "in_seed",
        F.least(
            F.greatest(F.round(F.lit(38.0) + F.lit(12.0) * _normal("age", *user)), F.lit(18)),
            F.lit(80),
        )
        .cast("int")
        .alias("age_"),
        _normal("income", *user).alias("z_income"),
        F.floor(F.lit(float(N_CITIES)) * F.pow(_uniform("city", *user), F.lit(2.5)))
        .cast("int")
        .alias("city_idx"),
        _device(_uniform("device", *user)).alias("device_"),
        F.floor(-F.log(_uniform("clicks", *day)) * F.lit(4.0)).cast("int").alias("clicks_"),
        _normal("dwell", *day).alias("z_dwell"),
        F.floor(F.lit(float(len(CHANNELS))) * F.pow(_uniform("channel", *day), F.lit(1.5)))
        .cast("int")
        .alias("channel_idx"),
    )
    probability = F.lit(1.0) / (F.lit(1.0) + F.exp(-true_logit()))
    return latent.withColumn("label", (_uniform("label", *day) < probability).cast("int"))


def build_tables(spark: SparkSession, rows: int, seed: int, date: str) -> dict[str, DataFrame]:
    """The :data:`DEMO_TABLES` as DataFrames (nothing written)."""
    latent = latent_frame(spark, rows, seed, date)
    uid = F.col("uid")
    user = (F.lit(seed), uid)
    day = (F.lit(seed), F.lit(date), uid)
    channels = F.array(*[F.lit(name) for name in CHANNELS])
    profile = latent.where(_uniform("miss:profile", *day) >= F.lit(MISSING_RATE)).select(
        "uid",
        _maybe_null(F.col("age_"), 0.01, "age", *user).alias("age"),
        _maybe_null(
            F.round(F.exp(F.lit(10.3) + F.lit(0.6) * F.col("z_income")), 2), 0.02, "income", *user
        ).alias("income"),
        _maybe_null(F.format_string("city_%02d", F.col("city_idx")), 0.01, "city", *user).alias(
            "city"
        ),
        F.col("device_").alias("device"),
    )
    behaviour = latent.where(_uniform("miss:behaviour", *day) >= F.lit(MISSING_RATE)).select(
        "uid",
        F.col("clicks_").alias("clicks_7d"),
        _maybe_null(
            F.round(F.exp(F.lit(3.0) + F.lit(0.7) * F.col("z_dwell")), 3), 0.02, "dwell", *day
        ).alias("dwell_time"),
        _maybe_null(
            F.element_at(channels, F.col("channel_idx") + F.lit(1)), 0.01, "channel", *day
        ).alias("channel"),
    )
    return {
        "seed": latent.where(F.col("in_seed")).select("uid", "label"),
        "user_profile": profile,
        "user_behaviour": behaviour,
    }


def run(spark: SparkSession, job: JobConfig) -> dict[str, Any]:
    options: DemoDataOptions = job.options
    tables = build_tables(spark, options.rows, options.seed, job.date)
    uris = {name: job.layout.upstream(name, job.date) for name in DEMO_TABLES}
    with Staging() as staging:
        for name, uri in uris.items():
            tables[name].write.parquet(staging.folder(uri))
        staging.commit()
    return {"rows": options.rows, "tables": uris}


def main(argv: list[str] | None = None) -> None:
    run_job("demo_data", run, argv)


if __name__ == "__main__":
    main()
