"""Airflow DAG file holding no DAG: it reports broken ``pipelines/*.yaml`` files.

Its import error (file, key path, what was expected) is where Airflow shows
them; ``dlflow_pipelines.py`` keeps loading every good pipeline meanwhile.
"""

from pathlib import Path

from dlflow_airflow.pipeline.loader import raise_for_broken_pipelines

raise_for_broken_pipelines(Path(__file__).parent / "pipelines")
