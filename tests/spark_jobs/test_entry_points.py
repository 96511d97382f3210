from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
JOBS = ("demo_data", "merge", "encode", "predict")


@pytest.mark.parametrize("job", JOBS)
def test_job_files_run_as_scripts(job: str) -> None:
    """spark-submit runs the file itself: its imports must work from that folder."""
    done = subprocess.run(
        [sys.executable, str(REPO / "spark_jobs" / f"{job}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO / "spark_jobs",
    )
    assert done.returncode == 0, done.stderr
    assert "--date" in done.stdout and "--job" in done.stdout


@pytest.mark.spark
def test_session_defaults(spark: Any) -> None:
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
