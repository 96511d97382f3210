"""Spark fixtures: one local session for the whole run, and workspaces to fill."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# py4j logs at INFO while the interpreter shuts down, after pytest closed its streams.
logging.getLogger("py4j").setLevel(logging.WARNING)

os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

DATE = "2026-01-01"
NEXT_DATE = "2026-01-02"
DEMO_ROWS = 3000
DEMO_BUCKETS = {
    "user": {"features": ["age", "income", "city", "device"], "method": "minmax"},
    "behaviour": {"features": ["clicks_7d", "channel"], "method": "minmax"},
}

JobFactory = Callable[..., Any]


def job_body(
    workspace: str,
    *,
    options: dict[str, Any] | None = None,
    buckets: dict[str, Any] | None = None,
    tag: str = "ctr",
    model_date: str = "same",
    drop_columns: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "workspace": workspace,
        "feature": {
            "tag": tag,
            "primary_keys": ["uid"],
            "labels": ["label"],
            "drop_columns": list(drop_columns),
        },
        "model": {"tag": "dnn", "name": "dnn_binary_classifier", "date": model_date},
        "buckets": buckets if buckets is not None else {},
        "options": options or {},
    }


def parse_job(job: str, date: str, body: dict[str, Any]) -> Any:
    """The body as ``run_job`` parses it: no ``stage`` key, so ``job`` gives the stage tags."""
    from dlflow_airflow.contract.jobconf import JobConfig

    return JobConfig.from_body(date, body, job=job)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from spark_jobs.session import build_session

    session = build_session(
        "dlflow-spark-jobs-tests",
        {
            "spark.master": "local[2]",
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def workspace(tmp_path: Path) -> str:
    return f"file://{tmp_path}/ws"


@pytest.fixture
def make_job() -> JobFactory:
    """``make_job(job, workspace, date, **job_body kwargs)`` -> the JobConfig of ``job``."""

    def factory(job: str, workspace: str, date: str = DATE, **kwargs: Any) -> Any:
        return parse_job(job, date, job_body(workspace, **kwargs))

    return factory


@dataclass(frozen=True)
class Pipeline:
    """A workspace after demo_data -> merge -> encode for :data:`DATE`."""

    workspace: str
    demo: dict[str, Any]
    merge: dict[str, Any]
    encode: dict[str, Any]

    def job(self, job: str, date: str = DATE, **kwargs: Any) -> Any:
        """The JobConfig of ``job`` (``encode``, ``predict``...) in this workspace."""
        kwargs.setdefault("buckets", DEMO_BUCKETS)
        return parse_job(job, date, job_body(self.workspace, **kwargs))


@pytest.fixture(scope="session")
def pipeline(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    from spark_jobs import demo_data, encode, merge

    root = tmp_path_factory.mktemp("pipeline")
    ws = f"file://{root}/ws"
    stub = Pipeline(ws, {}, {}, {})
    demo = demo_data.run(spark, stub.job("demo_data", options={"rows": DEMO_ROWS, "seed": 3}))
    merged = merge.run(spark, stub.job("merge", options=demo_data.merge_options()))
    encoded = encode.run(spark, stub.job("encode"))
    return Pipeline(ws, demo, merged, encoded)


@pytest.fixture
def write_table(spark: Any) -> Callable[[str, list[tuple], str], str]:
    """``write_table(uri, rows, ddl_schema)``: a committed Parquet partition at ``uri``."""
    from dlflow_airflow.contract import storage

    def write(uri: str, rows: list[tuple], schema: str) -> str:
        staging = storage.staging_uri(uri)
        spark.createDataFrame(rows, schema).coalesce(1).write.parquet(staging)
        storage.commit(staging, uri)
        return uri

    return write


def write_raw_frame(spark: Any, workspace: str, tag: str, date: str, frame: Any) -> None:
    """A pandas frame as the committed raw partition of ``tag`` for ``date``."""
    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.layout import Layout

    uri = Layout(workspace).raw(tag, date)
    staging = storage.staging_uri(uri)
    spark.createDataFrame(frame).coalesce(1).write.parquet(staging)
    storage.commit(staging, uri)


def truncate_part_file(uri: str, index: int = 0) -> str:
    """Cut the ``index``-th Parquet part file of a partition in half (and drop its
    ``.crc``, as a copy to another store would); returns the file's path."""
    from dlflow_airflow.contract.layout import local_path

    folder = Path(local_path(uri))
    part = sorted(folder.glob("part-*.parquet"))[index]
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    (folder / f".{part.name}.crc").unlink(missing_ok=True)
    return str(part)
