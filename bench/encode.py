"""Encode benchmark: our encode job vs a plain Spark read + write vs a DLFlow-style baseline.

Run: ``.venv/bin/python bench/encode.py --rows 2000000`` (one process, local Spark).

Every column type is present: int, long, float, double, boolean, strings
(small vocabularies and one of ~2,000 values that takes the broadcast-join
path), array<double> of size 4 and map<string, double>. Figures printed:

- plain: read the raw table and write it back as Parquet (the floor);
- encode, fmap reused: transform + write with an existing fmap;
- encode, fit: fit the fmap + normalisers, transform, write;

  each encode interleaved with plain, ``--repeat`` rounds (default 3) each pair:
  medians, spread and the goals (reused >= 0.8x plain, fit >= 0.4x plain);
- DLFlow-style: every row mapped through Python one at a time (``rdd.map``),
  on a sample (``--baseline-rows``, default 100k) because it is slow;
- drift, side by side: encode with a reused fmap with and without measuring
  drift against the fit's profile, interleaved, ``--drift-repeat`` times
  (default 3): medians, spread and their ratio (goal: drift adds at most 25%).
  ``--drift-only`` times just that.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from rounds import goal, side_by_side  # noqa: E402

from dlflow_airflow.contract import storage  # noqa: E402
from dlflow_airflow.contract.fmap import FeatureMap, Normalizers  # noqa: E402
from dlflow_airflow.contract.jobconf import JobConfig  # noqa: E402
from spark_jobs import encode  # noqa: E402
from spark_jobs.session import build_session  # noqa: E402

DATE = "2026-01-01"
BUCKETS = {
    "user": {"features": ["n_int", "n_double", "city", "device", "vec"], "method": "minmax"},
    "ctx": {"features": ["n_long", "n_float", "flag", "item", "tags"], "method": "zscore"},
}


def raw_table(spark: SparkSession, rows: int, partitions: int) -> DataFrame:
    h = F.xxhash64("id")
    return spark.range(rows, numPartitions=partitions).select(
        F.col("id").alias("uid"),
        (F.abs(h) % 2).cast("int").alias("label"),
        (F.abs(h) % 90).cast("int").alias("n_int"),
        (F.abs(h) % 1_000_003).alias("n_long"),
        (F.rand(1) * 10).cast("float").alias("n_float"),
        F.when(F.rand(2) < 0.05, None).otherwise(F.randn(3) * 100).alias("n_double"),
        (F.rand(4) < 0.3).alias("flag"),
        F.concat(F.lit("c"), (F.abs(h) % 40).cast("string")).alias("city"),
        F.element_at(F.array(*map(F.lit, "abcde")), (F.abs(h) % 5 + 1).cast("int")).alias("device"),
        F.concat(F.lit("i"), (F.abs(F.xxhash64("id", F.lit(9))) % 2000).cast("string")).alias(
            "item"
        ),
        F.array(*[F.rand(10 + k) for k in range(4)]).alias("vec"),
        F.create_map(F.lit("x"), F.rand(20), F.lit("y"), F.rand(21) * 5).alias("tags"),
    )


def timed(label: str, rows: int, action: Any, repeat: int = 1) -> float:
    """Rows per second of the fastest of ``repeat`` runs (on a shared machine the
    fastest run is the one least disturbed by other work)."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    rate = rows / best
    runs = f" (best of {repeat})" if repeat > 1 else ""
    print(f"{label + runs:<54} {rows:>10,} rows {best:8.1f} s {rate:>12,.0f} rows/s", flush=True)
    return rate


def drift_cost(spark: SparkSession, job: JobConfig, repeat: int) -> bool:
    """Encode with a reused fmap with and without drift; whether drift adds at most 25%."""
    with_drift, without = "encode, fmap reused, profile+drift", "encode, fmap reused, no drift"
    results: dict[str, dict[str, Any]] = {}
    medians = side_by_side(
        {
            with_drift: lambda: results.update({with_drift: encode.run(spark, job)}),
            without: lambda: results.update({without: encode.run(spark, job, measure_drift=False)}),
        },
        repeat,
    )
    assert "report" in results[with_drift]["drift"], results[with_drift]["drift"]
    return goal("profile + drift / no drift", medians[with_drift] / medians[without], at_most=1.25)


def dlflow_style_row(row: Any, fmap: FeatureMap, stats: Normalizers) -> tuple:
    """The original's way: one Python call per row building the bucket vectors."""
    out: list[Any] = [row["uid"], row["label"]]
    for bucket in fmap.buckets:
        nums: list[float] = []
        for feature in bucket.nums:
            value = row[feature.name]
            if feature.meta.get("keys") is not None:
                values = [(value or {}).get(k) for k in feature.meta["keys"]]
            elif isinstance(value, list):
                values = list(value)
            else:
                values = [None if value is None else float(value)]
            fitted = stats.of(bucket.name, feature.name)
            for i, v in enumerate(values):
                if bucket.method == "minmax":
                    lo, hi = fitted["min"][i], fitted["max"][i]
                    ok = v is not None and lo is not None and hi > lo
                    nums.append(min(max((v - lo) / (hi - lo), 0.0), 1.0) if ok else 0.0)
                else:
                    mean, std = fitted["mean"][i], fitted["std"][i] or 1.0
                    nums.append(0.0 if v is None or mean is None else (v - mean) / std)
        ctgs = []
        layout = fmap.id_layout
        for feature in bucket.ctgs:
            index = {v: layout.first + i for i, v in enumerate(feature.meta["vocab"])}
            value = row[feature.name]
            found = layout.null if value is None else index.get(value, layout.unseen)
            ctgs.append(feature.offset + found)
        out += [nums, ctgs]
    return tuple(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--repeat", type=int, default=3, help="interleaved rounds of plain, fit and reused"
    )
    parser.add_argument(
        "--drift-repeat", type=int, default=3, help="rounds of the drift side by side"
    )
    parser.add_argument(
        "--drift-only", action="store_true", help="time only the drift side by side"
    )
    args = parser.parse_args()

    spark = build_session(
        "bench-encode",
        {
            "spark.master": "local[*]",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(args.partitions),
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        ws = f"file://{tmp}/ws"
        body = {
            "workspace": ws,
            "feature": {"tag": "bench", "primary_keys": ["uid"], "labels": ["label"]},
            "model": {"tag": "m", "name": "dnn_binary_classifier", "date": DATE},
            "buckets": BUCKETS,
            "options": {},
        }
        job = JobConfig.from_body(DATE, body, job="encode")
        raw_uri = job.layout.raw("bench", DATE)
        staging = storage.staging_uri(raw_uri)
        raw_table(spark, args.rows, args.partitions).write.parquet(staging)
        storage.commit(staging, raw_uri)
        rows = args.rows
        print(f"encode benchmark: {rows:,} rows, {os.cpu_count()} cores, local[*]")
        # Warm the JVM up first (JIT, generated code), so the first timing does not carry
        # start-up costs: a plain write and an encode (fit, then reuse) of a small table
        # under another feature tag. Measured on 500k rows, a cold first fit took 4x longer.
        spark.read.parquet(raw_uri).limit(1000).write.mode("overwrite").parquet(f"{tmp}/warm")
        warm_body = {**body, "feature": {**body["feature"], "tag": "warm"}}
        warm = JobConfig.from_body(DATE, warm_body, job="encode")
        warm_uri = warm.layout.raw("warm", DATE)
        warm_staging = storage.staging_uri(warm_uri)
        spark.read.parquet(raw_uri).limit(20_000).write.parquet(warm_staging)
        storage.commit(warm_staging, warm_uri)
        encode.run(spark, warm)
        encode.run(spark, warm)
        if args.drift_only:
            encode.run(spark, job)  # fits the fmap (and its profile) once
            drift_cost(spark, job, args.drift_repeat)
            spark.stop()
            return

        refit = JobConfig.from_body(DATE, {**body, "options": {"refit": True}}, job="encode")
        reused_result: dict[str, Any] = {}
        plain_label, fit_label = "plain Spark read + write", "our encode: fit + transform + write"
        reused_label = "our encode: fmap reused (transform + write)"

        def plain_write() -> None:
            spark.read.parquet(raw_uri).write.mode("overwrite").parquet(f"{tmp}/plain")

        # Each goal from rounds of its own two contenders, after one untimed run of each
        # on this table: the code Spark generates holds the fitted statistics, so the
        # warm-up table's runs do not compile it, and the first runs of a plan are slower
        # (measured without these runs: the reused encode's three rounds 1.7-2.6 s, median
        # 2.1 s; 1.65-1.75 s in later rounds).
        encode.run(spark, refit)  # the fmap the reused rounds apply
        encode.run(spark, job)
        plain_write()
        print("reused fmap against plain, interleaved:")
        reused_medians = side_by_side(
            {
                plain_label: plain_write,
                reused_label: lambda: reused_result.update(encode.run(spark, job)),
            },
            args.repeat,
            rows,
        )
        print("fit against plain, interleaved:")
        fit_medians = side_by_side(
            {plain_label: plain_write, fit_label: lambda: encode.run(spark, refit)},
            args.repeat,
            rows,
        )
        assert reused_result["fmap_reused"], "the reused rounds should reuse the fmap"
        reused_ratio = reused_medians[plain_label] / reused_medians[reused_label]
        fit_ratio = fit_medians[plain_label] / fit_medians[fit_label]
        reused = rows / reused_medians[reused_label]

        femodel = job.layout.femodel("bench", DATE)
        fmap = FeatureMap.load(femodel)
        stats = Normalizers.load(femodel, fmap)
        sample_rows = min(args.baseline_rows, rows)
        sample = spark.read.parquet(raw_uri).limit(sample_rows).cache()
        sample.count()
        baseline = timed(
            f"DLFlow-style rdd.map (sample of {sample_rows:,} rows)",
            sample_rows,
            lambda: (
                sample.rdd.map(lambda r: dlflow_style_row(r, fmap, stats))
                .toDF()
                .write.mode("overwrite")
                .parquet(f"{tmp}/dlflow")
            ),
        )
        print()
        goal("fmap reused / plain read+write", reused_ratio, at_least=0.8)
        goal("fit + transform / plain read+write", fit_ratio, at_least=0.4)
        goal("fmap reused / DLFlow-style", reused / baseline, at_least=20)
        print()
        drift_cost(spark, job, args.drift_repeat)
        if not math.isfinite(reused):
            sys.exit(1)
    spark.stop()


if __name__ == "__main__":
    main()
