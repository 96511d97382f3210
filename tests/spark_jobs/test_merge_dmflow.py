"""Merge with dmflow-style dependencies, a SQL seed and steps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from dlflow_airflow.contract.dependencies import UpstreamMissingError
from spark_jobs import merge

from .conftest import DATE

pytestmark = pytest.mark.spark

PROFILE = "{workspace}/up/profile/dt={date}"


def test_dependencies_sql_seed_and_steps(
    spark: Any, workspace: str, write_table: Any, make_job: Any, tmp_path: Path
) -> None:
    write_table(f"{workspace}/up/seed/dt={DATE}", [(1, 0), (2, 1), (3, 0)], "uid long, label int")
    write_table(  # only yesterday's profile exists: degrade_days 1 falls back to it
        f"{workspace}/up/profile/dt=2025-12-31",
        [(1, 30.0, "a"), (2, math.nan, None)],
        "uid long, age double, city string",
    )
    sql = tmp_path / "seed.sql"
    sql.write_text(
        "SELECT uid, label FROM parquet.`{workspace}/up/seed/dt={date}` WHERE '{region}' = 'cn'"
    )
    clicks = tmp_path / "clicks.sql"
    clicks.write_text("SELECT uid, uid * 10 AS clicks FROM seed")
    options = {
        "seed": {"sql": str(sql)},
        "dependencies": {
            "profile": {"path": PROFILE, "degrade_days": 1, "check": {"min_rows": 2}},
            "region": {"static": "cn"},
        },
        "sources": [{"name": "profile", "path": "{profile}"}],
        "steps": [
            {"sql": {"file": str(clicks)}, "count_missing": None},
            {"count_missing": {"columns": ["age", "city"]}},
            {"fill_missing": {"by_type": {"string": "?"}, "columns": {"age": -1}}},
        ],
    }
    result = merge.run(spark, make_job("merge", workspace, options=options))
    assert result["dependencies"]["profile"].endswith("dt=2025-12-31")
    rows = {r["uid"]: r.asDict() for r in spark.read.parquet(result["output"]).collect()}
    assert rows[1] == {
        "uid": 1,
        "label": 0,
        "age": 30.0,
        "city": "a",
        "clicks": 10,
        "missing_count": 0,
        "missing_ratio": 0.0,
    }
    assert rows[2]["age"] == -1 and rows[2]["city"] == "?" and rows[2]["missing_count"] == 2
    assert rows[3]["missing_ratio"] == 1.0 and rows[3]["clicks"] == 30

    options["dependencies"]["profile"]["degrade_days"] = 0
    with pytest.raises(UpstreamMissingError, match=r"tried: .*dt=2026-01-01: absent"):
        merge.run(spark, make_job("merge", workspace, options=options))
