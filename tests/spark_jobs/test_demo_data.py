from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import DEMO_TABLES
from dlflow_airflow.contract.jobconf import parse_result
from spark_jobs import demo_data

from .conftest import DATE, DEMO_ROWS, NEXT_DATE, job_body

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]


def rows_of(frame: Any) -> list[tuple]:
    return sorted(tuple(r) for r in frame.collect())


def test_tables_are_deterministic_per_date_and_seed(spark: Any) -> None:
    first = demo_data.build_tables(spark, 300, 7, DATE)
    again = demo_data.build_tables(spark.newSession(), 300, 7, DATE)
    for name in DEMO_TABLES:
        assert rows_of(first[name]) == rows_of(again[name]), name
    other_day = demo_data.build_tables(spark, 300, 7, NEXT_DATE)
    other_seed = demo_data.build_tables(spark, 300, 8, DATE)
    assert rows_of(first["seed"]) != rows_of(other_day["seed"])
    assert rows_of(first["user_profile"]) != rows_of(other_seed["user_profile"])


def test_demo_tables_shape(pipeline: Any, spark: Any) -> None:
    tables = pipeline.demo["tables"]
    assert pipeline.demo["rows"] == DEMO_ROWS and set(tables) == set(DEMO_TABLES)
    assert all(storage.is_complete(uri) for uri in tables.values())
    seed = spark.read.parquet(tables["seed"])
    assert seed.dtypes == [("uid", "bigint"), ("label", "int")]
    assert seed.count() == DEMO_ROWS
    assert 0.2 < seed.selectExpr("avg(label)").first()[0] < 0.5
    profile = spark.read.parquet(tables["user_profile"])
    assert profile.dtypes == [
        ("uid", "bigint"),
        ("age", "int"),
        ("income", "double"),
        ("city", "string"),
        ("device", "string"),
    ]
    behaviour = spark.read.parquet(tables["user_behaviour"])
    assert behaviour.dtypes == [
        ("uid", "bigint"),
        ("clicks_7d", "int"),
        ("dwell_time", "double"),
        ("channel", "string"),
    ]
    counts = profile.selectExpr(
        "count(distinct city) cities", "count(distinct device) devices", "count(*) - count(age)"
    ).first()
    assert 25 <= counts[0] <= 30 and counts[1] == 5 and counts[2] > 0
    assert behaviour.selectExpr("count(distinct channel)").first()[0] == 8


def test_spark_submit_entry_point(tmp_path: Path) -> None:
    """The body has no ``stage``: run_job parses it as the demo_data job's (typed options)."""
    workspace = f"file://{tmp_path}/ws"
    body = job_body(workspace, options={"rows": 200, "seed": 1})
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[1]",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.shuffle.partitions=2",
        str(REPO / "spark_jobs" / "demo_data.py"),
        "--date",
        DATE,
        "--job",
        json.dumps(body),
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = [r for r in map(parse_result, done.stdout.splitlines()) if r is not None]
    assert len(results) == 1
    assert results[0]["rows"] == 200
    assert results[0]["tables"]["seed"] == f"{workspace}/upstream/seed/dt={DATE}"
    assert all(storage.is_complete(uri) for uri in results[0]["tables"].values())
