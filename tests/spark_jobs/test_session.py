"""The session a job runs in: Spark's console log at WARN unless spark-submit asks for more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlflow_airflow.contract.schema import DEFAULT_SPARK_LOG_LEVEL, SPARK_LOG_LEVEL_CONF
from spark_jobs.session import DEFAULT_CONF

REPO = Path(__file__).resolve().parents[2]


def test_the_default_log_level_is_warn() -> None:
    assert DEFAULT_CONF[SPARK_LOG_LEVEL_CONF] == DEFAULT_SPARK_LOG_LEVEL == "WARN"


def _spark_submit(tmp_path: Path, *conf: str) -> list[str]:
    """The output lines of the demo_data job (200 rows) run through spark-submit."""
    body = {
        "workspace": str(tmp_path / "ws"),
        "feature": {"tag": "ctr", "primary_keys": ["uid"], "labels": ["label"]},
        "model": {"tag": "dnn", "name": "dnn_binary_classifier"},
        "options": {"rows": 200},
    }
    bin_dir = Path(sys.executable).parent
    python = f"spark.pyspark.python={sys.executable}"
    done = subprocess.run(
        [str(bin_dir / "spark-submit"), "--master", "local[1]", "--conf", python, *conf]
        + [str(REPO / "spark_jobs" / "demo_data.py"), "--date", "2026-01-01"]
        + ["--job", json.dumps(body)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return (done.stdout + done.stderr).splitlines()


def _spark_info(lines: list[str]) -> list[str]:
    return [line for line in lines if " INFO " in line and "SparkContext: " not in line]


@pytest.mark.spark
def test_a_job_logs_warnings_only_and_spark_submit_conf_raises_it(tmp_path: Path) -> None:
    quiet = _spark_submit(tmp_path / "quiet")
    # Three SparkContext lines come before the level applies; nothing after.
    assert _spark_info(quiet) == [], _spark_info(quiet)[:5]
    assert len(quiet) < 30, quiet
    loud = _spark_submit(tmp_path / "loud", "--conf", f"{SPARK_LOG_LEVEL_CONF}=INFO")
    assert len(_spark_info(loud)) > 50
