"""Airflow DAG file: one DAG per ``pipelines/*.yaml`` (dlflow-airflow).

Each YAML is loaded on its own: a broken one is skipped here and reported by
``dlflow_pipeline_errors.py`` (Airflow's import errors), so the good DAGs of
this file stay loaded and schedulable.
"""

from pathlib import Path

from dlflow_airflow.pipeline.loader import load_dags

globals().update(load_dags(Path(__file__).parent / "pipelines"))
