"""Benchmark: distributed predict against the limits of this machine and a DLFlow-style baseline.

One run measures, on the same encoded table and the same model (DLFlow's demo
size: dense 768-384-192 after the embeddings):

- raw: the model on in-memory numpy in this one process (the compute limit),
- ceiling: Spark reading the table, a no-op ``mapInArrow`` and writing the keys
  (the I/O and Arrow-transfer limit),
- ours: ``spark_jobs.predict.run`` end to end (including its row-parity check),
  its tasks reading the encoded files with pyarrow; and the same job with Spark
  reading the table (what a file system pyarrow cannot open gets);
  its first run (TensorFlow imported and the model loaded in each worker) is
  printed apart; then raw, ceiling and ours run in ``--repeat`` interleaved
  rounds (default 3, Python workers up, model cached) and the figures are their
  medians; the goal: ours >= 0.9x raw,
- dlflow-style: ``rdd.mapPartitions`` feeding rows one by one through a Python
  generator into ``tf.data`` (on a smaller sample: it is two orders slower).

Efficiency = ours / the serial bound 1 / (1/raw + 1/ceiling): 1.0 means
predict costs no more than computing and moving the data one after the other.

    .venv/bin/python bench/predict.py --rows 2000000          # the real run
    .venv/bin/python bench/predict.py --rows 50000 --baseline-rows 5000   # a quick check
    .venv/bin/python bench/predict.py --rows 200000 --profile  # model call / batch size study

The encoded table is built once per ``--rows`` under ``--workdir`` (default
``<tmp>/dlflow-bench``) and reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

from rounds import goal, side_by_side  # noqa: E402

DATE = "2026-01-01"
MODEL_PARAMS = {"hidden_units": [768, 384, 192], "embedding_dim": 8}
BUCKETS = {
    "user": {"features": ["age", "income", "city", "device"], "method": "minmax"},
    "behaviour": {"features": ["clicks_7d", "dwell_time", "channel"], "method": "minmax"},
}


def job(name: str, workspace: str, date: str = DATE, **options: Any) -> Any:
    """The JobConfig of the built-in job ``name`` with ``options`` (its typed options model)."""
    from dlflow_airflow.contract.jobconf import JobConfig

    return JobConfig.from_body(
        date,
        {
            "workspace": workspace,
            "feature": {"tag": "bench", "primary_keys": ["uid"], "labels": ["label"]},
            "model": {"tag": "bench_dnn", "name": "dnn_binary_classifier", "date": DATE},
            "buckets": BUCKETS,
            "options": options,
        },
        job=name,
    )


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def prepare(spark: Any, workspace: str, rows: int) -> None:
    """demo_data -> merge -> encode for DATE, and an (untrained) demo-size model."""
    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.fmap import FeatureMap
    from spark_jobs import demo_data, encode, merge
    from tf_jobs.model_io import MANIFEST_FILE, save_model
    from tf_jobs.models import build_model, get_model, resolve_params
    from tf_jobs.signature import SIGNATURE_KEY
    from tf_jobs.train import recorded_model_signature

    layout = job("predict", workspace).layout
    if storage.is_complete(layout.model("bench_dnn", DATE)):
        return
    print(f"preparing {rows:,} encoded rows in {workspace} (once) ...", flush=True)
    demo_data.run(spark, job("demo_data", workspace, rows=rows, seed=11))
    merge.run(spark, job("merge", workspace, **demo_data.merge_options()))
    encode.run(spark, job("encode", workspace))
    fmap = FeatureMap.load(layout.femodel("bench", DATE))
    spec = get_model("dnn_binary_classifier")
    model = build_model(spec, fmap, resolve_params(spec, MODEL_PARAMS))
    partition = layout.model("bench_dnn", DATE)
    staging = storage.staging_uri(partition)
    save_model(model, staging)
    # The signature train records, so predict's driver reads it as it does for a trained model.
    manifest = {"task": spec.task, SIGNATURE_KEY: recorded_model_signature(model)}
    storage.write_text(f"{staging}/{MANIFEST_FILE}", json.dumps(manifest))
    storage.commit(staging, partition)


def in_memory_inputs(workspace: str) -> tuple[dict[str, Any], int]:
    """The encoded table as model inputs (numpy), read with pyarrow."""
    import numpy as np
    import pyarrow.dataset as ds

    from dlflow_airflow.contract.fmap import FeatureMap
    from dlflow_airflow.contract.layout import local_path
    from tf_jobs.batches import inputs_from_arrow

    layout = job("predict", workspace).layout
    fmap = FeatureMap.load(layout.femodel("bench", DATE))
    table = ds.dataset(local_path(layout.encoded("bench", DATE)), format="parquet").to_table(
        columns=fmap.input_columns()
    )
    parts = [inputs_from_arrow(b, fmap) for b in table.to_batches()]
    inputs = {name: np.concatenate([p[name] for p in parts]) for name in fmap.input_columns()}
    return inputs, table.num_rows


def raw_predict(model_uri: str, inputs: dict[str, Any], rows: int, batch_size: int):
    """The model in this process on numpy already in memory: an action to time."""
    from spark_jobs.predict import Scorer
    from tf_jobs.model_io import load_model

    scorer = Scorer(load_model(model_uri))
    scorer({k: v[:batch_size] for k, v in inputs.items()})  # trace once, outside the clock

    def run() -> None:
        for start in range(0, rows, batch_size):
            scorer({k: v[start : start + batch_size] for k, v in inputs.items()})

    return run


def profile_calls(model_uri: str, inputs: dict[str, Any], rows: int) -> None:
    """Rows/s of each way to call the model, per batch size (one process)."""
    import tensorflow as tf

    from tf_jobs.model_io import load_model

    model = load_model(model_uri)
    compiled = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    ways: dict[str, Callable[[dict[str, Any]], Any]] = {
        "__call__ (eager)": lambda x: model(x, training=False).numpy(),
        "tf.function": lambda x: compiled(x).numpy(),
        "predict_on_batch": model.predict_on_batch,
    }
    n = min(rows, 200_000)
    print(f"\nmodel call profile ({n:,} rows, one process, all cores):")
    for batch_size in (512, 4096, 16384):
        for name, call in ways.items():
            call({k: v[:batch_size] for k, v in inputs.items()})

            def run(call: Callable[[dict[str, Any]], Any] = call, size: int = batch_size) -> None:
                for start in range(0, n, size):
                    call({k: v[start : start + size] for k, v in inputs.items()})

            seconds, _ = timed(run)
            print(f"  batch {batch_size:>6}  {name:<18} {n / seconds:>12,.0f} rows/s")


def spark_ceiling(spark: Any, workspace: str, out: str) -> Callable[[], None]:
    """Read -> no-op mapInArrow -> write keys (the data path without the model): an action."""
    import pyarrow as pa

    from dlflow_airflow.contract.fmap import FeatureMap

    layout = job("predict", workspace).layout
    fmap = FeatureMap.load(layout.femodel("bench", DATE))
    encoded = spark.read.parquet(layout.encoded("bench", DATE))
    keys = list(fmap.primary_keys)
    key_schema = encoded.select(*keys).schema

    def keys_only(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield batch.select(keys)

    frame = encoded.select(*keys, *fmap.input_columns()).mapInArrow(keys_only, key_schema)
    print(f"input partitions: {encoded.rdd.getNumPartitions()}", flush=True)
    return lambda: frame.write.mode("overwrite").parquet(out)


def dlflow_style(spark: Any, workspace: str, rows: int, out: str, model_uri: str) -> float:
    """DLFlow's way: rows one by one through a Python generator into tf.data, per partition."""
    from dlflow_airflow.contract.fmap import FeatureMap
    from tf_jobs.batches import input_specs

    layout = job("predict", workspace).layout
    fmap = FeatureMap.load(layout.femodel("bench", DATE))
    specs = {name: (str(dtype), width) for name, (dtype, width) in input_specs(fmap).items()}
    sample = spark.read.parquet(layout.encoded("bench", DATE)).limit(rows).cache()
    sample.count()

    def score_partition(rows_iter: Iterator[Any]) -> Iterator[tuple[int, float]]:
        import tensorflow as tf

        from tf_jobs.model_io import load_model

        model = load_model(model_uri)
        keys: list[int] = []

        def generator() -> Iterator[dict[str, Any]]:
            for row in rows_iter:
                keys.append(row["uid"])
                yield {name: list(row[name]) for name in specs}

        signature = {
            name: tf.TensorSpec((width,), tf.dtypes.as_dtype(dtype))
            for name, (dtype, width) in specs.items()
        }
        dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)
        scores: list[float] = []
        for batch in dataset.batch(256):
            scores.extend(float(s) for s in model(batch, training=False).numpy().reshape(-1))
        yield from zip(keys, scores, strict=True)

    scored = sample.rdd.mapPartitions(score_partition).toDF("uid long, score double")
    seconds, _ = timed(lambda: scored.write.mode("overwrite").parquet(out))
    count = sample.count()
    sample.unpersist()
    return count / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--tf-threads", type=int, default=0, help="0 = spark.task.cpus")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "dlflow-bench"))
    parser.add_argument("--profile", action="store_true", help="also compare model calls")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    from dlflow_airflow.contract.storage import discard
    from spark_jobs import predict
    from spark_jobs.session import build_session

    workspace = f"file://{Path(args.workdir).resolve()}/predict-{args.rows}"
    spark = build_session(
        "dlflow-bench-predict",
        {"spark.master": args.master, "spark.ui.enabled": "false", "spark.driver.memory": "3g"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        prepare(spark, workspace, args.rows)
        config = job("predict", workspace, batch_size=args.batch_size, tf_threads=args.tf_threads)
        model_uri = config.layout.model("bench_dnn", DATE)
        scratch = Path(args.workdir).resolve() / "scratch"
        shutil.rmtree(scratch, ignore_errors=True)

        inputs, rows = in_memory_inputs(workspace)
        raw_run = raw_predict(model_uri, inputs, rows, args.batch_size)
        if args.profile:
            profile_calls(model_uri, inputs, rows)

        # First runs, apart: the ceiling starts the Python workers, ours imports TensorFlow
        # and loads the model in each of them (as each scheduled job does).
        ceiling_run = spark_ceiling(spark, workspace, f"file://{scratch}/ceiling")
        cold_ceiling = rows / timed(ceiling_run)[0]
        discard(config.layout.predict("bench_dnn", DATE))  # each run writes afresh
        cold_seconds, result = timed(lambda: predict.run(spark, config))
        assert result["rows"] == rows, result
        cold = rows / cold_seconds

        def ours() -> None:
            found = predict.run(spark, config)
            assert found["rows"] == rows, found

        def ours_spark_read() -> None:
            # The same job with Spark reading the table and handing it over (the path of
            # a file system pyarrow cannot open).
            units, predict.parquet_units = predict.parquet_units, lambda uri: None
            try:
                ours()
            finally:
                predict.parquet_units = units

        # Then the steady state: raw, ceiling and ours in interleaved rounds.
        raw_label, ceiling_label = "raw TF, one process, numpy in memory", "Spark ceiling"
        ours_label = "ours (spark_jobs.predict)"
        spark_read_label = "ours, Spark reading the table"
        medians = side_by_side(
            {
                raw_label: raw_run,
                ceiling_label: ceiling_run,
                ours_label: ours,
                spark_read_label: ours_spark_read,
            },
            args.repeat,
            rows,
        )
        del inputs
        raw, ceiling, ours_rate, spark_read = (
            rows / medians[k] for k in (raw_label, ceiling_label, ours_label, spark_read_label)
        )
        sample = min(args.baseline_rows, rows)
        baseline = dlflow_style(spark, workspace, sample, f"file://{scratch}/dlflow", model_uri)
    finally:
        spark.stop()

    bound = 1.0 / (1.0 / raw + 1.0 / ceiling)
    cores = os.cpu_count()
    print(
        f"\npredict benchmark: {rows:,} rows, model dense {MODEL_PARAMS['hidden_units']}, "
        f"{args.master} on {cores} cores, batch {args.batch_size}, tf_threads {args.tf_threads}"
    )
    print(f"  raw TF, one process, numpy in memory  {raw:>12,.0f} rows/s (median)")
    print(f"  Spark ceiling (no-op mapInArrow)      {ceiling:>12,.0f} rows/s (median)")
    print(f"  serial bound 1/(1/raw + 1/ceiling)    {bound:>12,.0f} rows/s")
    print(f"  ours (spark_jobs.predict)             {ours_rate:>12,.0f} rows/s (median)")
    print(f"  ours, Spark reading the table         {spark_read:>12,.0f} rows/s (median)")
    print(f"  ours, first run (workers load TF)     {cold:>12,.0f} rows/s")
    print(f"  Spark ceiling, first run              {cold_ceiling:>12,.0f} rows/s")
    print(f"  DLFlow-style ({sample:,}-row sample)   {baseline:>12,.0f} rows/s")
    print(f"  efficiency  ours / serial bound       {ours_rate / bound:>12.2f}")
    print(f"  vs DLFlow-style                       {ours_rate / baseline:>12.1f}x")
    cold_bound = 1.0 / (1.0 / raw + 1.0 / cold_ceiling)
    print(f"  first runs: efficiency {cold / cold_bound:.2f}, raw ratio {cold / raw:.2f}")
    goal("ours / raw in-memory TensorFlow", ours_rate / raw, at_least=0.9)


if __name__ == "__main__":
    main()
