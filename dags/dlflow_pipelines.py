"""Airflow DAG file: one DAG per ``pipelines/*.yaml`` (dlflow-airflow).

Each YAML is loaded on its own; a broken one is reported in Airflow's import
errors (file, key path, what was expected) and the others still load.
"""

from pathlib import Path

from dlflow_airflow.loader import load_dags

globals().update(load_dags(Path(__file__).parent / "pipelines"))
