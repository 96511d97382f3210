"""Test-wide setup: an isolated Airflow home, set before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dlflow-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags"
DEMO_PIPELINE = DAGS_FOLDER / "pipelines" / "demo_ctr.yaml"
# The loader (good pipelines) and its companion that reports broken ones.
DAG_FILES = ("dlflow_pipelines.py", "dlflow_pipeline_errors.py")
