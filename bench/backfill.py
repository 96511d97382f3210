"""Backfill benchmark: seconds per date in spark-submit mode vs Spark Connect mode.

A small pipeline (merge -> encode with a reused fmap -> predict with a model
trained once beforehand; the demo's tables, ``--rows`` a date) is backfilled
for ``--dates`` dates twice, once per mode, in one run: each date runs in both
modes one after the other (the order alternating), so a disturbance on a
shared machine hits both alike. Every stage runs through the operator Airflow
runs (:class:`~dlflow_airflow.operators.spark.SparkJobOperator`, a spark-submit
per stage on ``local[*]``; :class:`~dlflow_airflow.runners.spark_connect.SparkConnectJobOperator`,
a Connect client per stage against one local server started beforehand, whose
start-up is printed apart: a long-lived server is paid once, not per date).
Airflow's own scheduling is left out: it costs both modes the same.

Printed: seconds per date for each mode (median, spread, first date), the ratio
of the medians and whether the goal (connect <= 0.3x spark-submit) is met, per
stage medians, and whether the two modes wrote identical partitions for every
date (raw, encoded, predictions: row count and a fingerprint of the rows sorted
by key; and the drift report encode wrote).

    .venv/bin/python bench/backfill.py                 # 10 dates of 3,000 rows
    .venv/bin/python bench/backfill.py --dates 3       # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TRAIN_DATE = "2026-01-01"
STAGES = ("merge", "encode", "predict")
MODES = ("spark-submit", "connect")
GOAL = 0.3
# The same runtime settings in both modes; spark-submit also gets the launch settings a
# careful pipeline would give it (no UI), the Connect server has them from its start.
SQL_CONF = {"spark.sql.shuffle.partitions": "4"}
SUBMIT_CONF = {**SQL_CONF, "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
BUCKETS = {
    "user": {"features": ["age", "income", "city", "device"], "method": "minmax"},
    "behaviour": {"features": ["clicks_7d", "dwell_time", "channel"], "method": "minmax"},
}


def pipeline(workspace: str, stages: dict[str, Any], *, model_date: str = TRAIN_DATE) -> Any:
    """The bench pipeline (validated as a YAML file would be) over ``workspace``."""
    from dlflow_airflow.pipeline.build import Pipeline

    doc = {
        "dag_id": "bench_backfill",
        "start_date": TRAIN_DATE,
        "workspace": workspace,
        "feature": {"tag": "bench_ctr", "primary_keys": ["uid"], "labels": ["label"]},
        "model": {
            "tag": "bench_dnn",
            "name": "dnn_binary_classifier",
            "date": model_date,
            "params": {"hidden_units": [64, 32], "embedding_dim": 8, "epochs": 2},
        },
        "buckets": BUCKETS,
        "external": [] if "train" in stages else ["TRAINED_MODEL"],
        "stages": stages,
    }
    return Pipeline.from_data(doc, source="bench/backfill.py")


def merge_options(upstream: str) -> dict[str, Any]:
    """Merge reads the tables demo_data wrote once, outside the two modes' workspaces."""
    tables = ("user_profile", "user_behaviour")
    return {
        "seed": {"path": f"{upstream}/upstream/seed/dt={{date}}"},
        "sources": [{"name": t, "path": f"{upstream}/upstream/{t}/dt={{date}}"} for t in tables],
    }


def body(pipe: Any, stage: str) -> dict[str, Any]:
    return pipe.stages[stage].context(pipe.spec).job_body()


class Runner:
    """Runs one stage of a date through a mode's operator; returns its seconds."""

    def __init__(self, mode: str, pipe: Any) -> None:
        self.mode = mode
        self.pipe = pipe

    def operator(self, stage: str, day: str) -> Any:
        job_body = body(self.pipe, stage)
        job = self.pipe.stages[stage].kind.job
        if self.mode == "connect":
            from dlflow_airflow.runners.spark_connect import SparkConnectJobOperator

            return SparkConnectJobOperator(
                task_id=stage, job=job, job_body=job_body, date=day, conf=SQL_CONF
            )
        from dlflow_airflow.operators.spark import SparkJobOperator

        return SparkJobOperator(
            task_id=stage,
            job=job,
            job_body=job_body,
            date=day,
            conn_id="spark_default",
            conf=SUBMIT_CONF,
            openlineage_inject_parent_job_info=False,
        )

    def run(self, stage: str, day: str) -> float:
        task = self.operator(stage, day)
        context = {"ti": SimpleNamespace(try_number=1, run_id=f"backfill__{day}")}
        start = time.perf_counter()
        task.execute(context)
        return time.perf_counter() - start


def fingerprint(uri: str) -> tuple[int, str]:
    """(rows, sha256 of the rows sorted by key) of a committed Parquet partition."""
    import pyarrow.dataset as ds

    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.layout import local_path

    if not storage.is_complete(uri):
        return -1, "incomplete"
    table = ds.dataset(local_path(uri), format="parquet").to_table()
    table = table.select(sorted(table.column_names)).sort_by("uid")
    digest = hashlib.sha256()
    for row in table.to_pylist():
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    return table.num_rows, digest.hexdigest()[:16]


def drift_report(encoded_uri: str) -> tuple[int, str]:
    """The encoded partition's drift report (counted through Spark's plan and pyarrow in
    spark-submit mode, through mapInArrow in connect mode), without its fmap's path."""
    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.artifacts import DRIFT_FILE

    report = json.loads(storage.read_text(f"{encoded_uri}/{DRIFT_FILE}"))
    report.pop("fmap", None)  # each mode's own workspace
    text = json.dumps(report, sort_keys=True)
    return len(report.get("features", [])), hashlib.sha256(text.encode()).hexdigest()[:16]


def partitions(pipe: Any, day: str) -> dict[str, str]:
    """The partitions a date's run writes."""
    from dlflow_airflow.contract.layout import Layout

    layout = Layout(pipe.spec.workspace)
    return {
        "raw": layout.raw("bench_ctr", day),
        "encoded": layout.encoded("bench_ctr", day),
        "predict": layout.predict("bench_dnn", day),
    }


def prepare(root: Path, dates: list[str], rows: int, pipes: dict[str, Any]) -> None:
    """Upstream tables for every date; an fmap and a model trained on TRAIN_DATE, copied
    into both modes' workspaces (each mode reuses the very same files)."""
    upstream = f"file://{root}/upstream-ws"
    maker = pipeline(upstream, {"demo_data": {"rows": rows}})
    connect = Runner("connect", maker)
    for day in [TRAIN_DATE, *dates]:
        connect.run("demo_data", day)
    trainer_ws = f"file://{root}/train-ws"
    stages = {"merge": merge_options(upstream), "encode": {}, "train": {}}
    trainer = pipeline(trainer_ws, stages, model_date="same")
    connect = Runner("connect", trainer)
    connect.run("merge", TRAIN_DATE)
    connect.run("encode", TRAIN_DATE)
    cmd = [sys.executable, "-m", "tf_jobs.train", "--date", TRAIN_DATE]
    cmd += ["--job", json.dumps(body(trainer, "train"))]
    subprocess.run(cmd, check=True, capture_output=True)
    for folder, tag in (("femodel", "bench_ctr"), ("model", "bench_dnn")):
        source = root / "train-ws" / folder / f"TAG={tag}" / f"dt={TRAIN_DATE}"
        for mode in pipes:
            shutil.copytree(source, root / mode / folder / f"TAG={tag}" / f"dt={TRAIN_DATE}")


def summary(label: str, seconds: list[float]) -> str:
    return (
        f"{label:<26} median {statistics.median(seconds):6.1f} s  "
        f"(spread {min(seconds):.1f}-{max(seconds):.1f} s, first date {seconds[0]:.1f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dates", type=int, default=10, help="dates to backfill (default 10)")
    parser.add_argument("--rows", type=int, default=3000, help="seed rows a date (default 3000)")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "dlflow-bench"))
    parser.add_argument("--verbose", action="store_true", help="show the task logs")
    args = parser.parse_args(argv)

    # The operators log through Airflow's logging, configured when Airflow is imported.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO" if args.verbose else "ERROR")
    logging.basicConfig(level=logging.WARNING)
    from dlflow_airflow.contract.spark_connect import DEFAULT_CONNECT_CONN_ID
    from dlflow_airflow.devtools.connect_server import local_connect_server
    from dlflow_airflow.devtools.demo import LOCAL_SPARK_CONNECTION

    os.environ.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", LOCAL_SPARK_CONNECTION)
    os.environ.pop("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", None)
    root = Path(args.workdir).resolve() / "backfill"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    first = date.fromisoformat(TRAIN_DATE)
    dates = [(first + timedelta(days=n)).isoformat() for n in range(1, args.dates + 1)]
    upstream = f"file://{root}/upstream-ws"
    pipes = {
        mode: pipeline(
            f"file://{root}/{mode}",
            {"merge": merge_options(upstream), "encode": {}, "predict": {}},
        )
        for mode in MODES
    }
    started = time.perf_counter()
    with local_connect_server([DEFAULT_CONNECT_CONN_ID], root / "spark-connect.log") as server:
        assert server is not None
        server_seconds = time.perf_counter() - started
        print(
            f"backfill benchmark: {args.dates} dates x {args.rows:,} rows, "
            f"stages {' -> '.join(STAGES)}, {os.cpu_count()} cores, local[*]"
        )
        print(f"Spark Connect server started in {server_seconds:.1f} s (once, not per date)")
        prepare(root, dates, args.rows, pipes)
        runners = {mode: Runner(mode, pipes[mode]) for mode in MODES}
        per_date: dict[str, list[float]] = {mode: [] for mode in MODES}
        per_stage: dict[tuple[str, str], list[float]] = {}
        for index, day in enumerate(dates):
            order = MODES if index % 2 == 0 else MODES[::-1]
            line = []
            for mode in order:
                seconds = [runners[mode].run(stage, day) for stage in STAGES]
                for stage, s in zip(STAGES, seconds, strict=True):
                    per_stage.setdefault((mode, stage), []).append(s)
                per_date[mode].append(sum(seconds))
                line.append(f"{mode} {sum(seconds):5.1f} s")
            print(f"  {day}: {', '.join(line)}", flush=True)

    print()
    for mode in MODES:
        print(summary(f"{mode}, s/date", per_date[mode]))
    for mode in MODES:
        stages = ", ".join(
            f"{stage} {statistics.median(per_stage[(mode, stage)]):.1f}" for stage in STAGES
        )
        print(f"  {mode} stage medians (s): {stages}")
    ratio = statistics.median(per_date["connect"]) / statistics.median(per_date["spark-submit"])
    met = ratio <= GOAL
    print(
        f"connect / spark-submit (medians of s/date): {ratio:.2f}x; goal 'connect at most "
        f"{GOAL}x of spark-submit per date': {'met' if met else 'NOT met'}"
    )

    different = []
    for day in dates:
        found = {mode: partitions(pipes[mode], day) for mode in MODES}
        for name in found[MODES[0]]:
            prints = {mode: fingerprint(found[mode][name]) for mode in MODES}
            if len(set(prints.values())) != 1:
                different.append(f"{day} {name}: {prints}")
        drift = {mode: drift_report(found[mode]["encoded"]) for mode in MODES}
        if len(set(drift.values())) != 1:
            different.append(f"{day} drift report: {drift}")
    if different:
        print("outputs DIFFER between the modes:\n  " + "\n  ".join(different))
    else:
        print(
            f"outputs identical in both modes for all {len(dates)} dates "
            "(raw, encoded, predict; the drift reports too)"
        )
    return 0 if met and not different else 1


if __name__ == "__main__":
    sys.exit(main())
