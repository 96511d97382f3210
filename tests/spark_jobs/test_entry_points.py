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


@pytest.mark.parametrize("folder", ["spark_jobs", "tf_jobs"])
def test_no_job_module_shadows_the_standard_library(folder: str) -> None:
    """A job file runs with its own folder first on sys.path: a ``profile.py`` there
    would be imported in place of Python's own (and break ``import pyspark``)."""
    names = {path.stem for path in (REPO / folder).glob("*.py")}
    assert not names & set(sys.stdlib_module_names)
