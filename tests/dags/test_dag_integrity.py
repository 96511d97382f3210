"""The DAG folder loads into Airflow's DagBag; one broken YAML hides nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import DAG_FILES, DAGS_FOLDER, DEMO_PIPELINE


def _dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def test_dags_folder_loads_without_import_errors():
    bag = _dagbag(DAGS_FOLDER)
    assert bag.import_errors == {}
    dag = bag.dags["dlflow_demo_ctr"]
    assert set(dag.task_ids) == {"demo_data", "merge", "encode", "train", "evaluate", "predict"}


@pytest.fixture
def dags_with_broken_yaml(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    (folder / "pipelines").mkdir(parents=True)
    for dag_file in DAG_FILES:
        shutil.copy(DAGS_FOLDER / dag_file, folder)
    shutil.copy(DEMO_PIPELINE, folder / "pipelines")
    bad = DEMO_PIPELINE.read_text().replace("dag_id: dlflow_demo_ctr", "dag_id: broken_one")
    bad = bad.replace("tfrecord: true", "tfrecords: true")
    (folder / "pipelines" / "broken.yaml").write_text(bad)
    (folder / "pipelines" / "syntax.yaml").write_text("dag_id: [unclosed\n")
    return folder


def test_broken_yaml_leaves_good_dag_loaded_and_error_visible(dags_with_broken_yaml: Path):
    bag = _dagbag(dags_with_broken_yaml)
    assert "dlflow_demo_ctr" in bag.dag_ids
    assert "broken_one" not in bag.dag_ids
    assert len(bag.import_errors) == 1
    ((path, message),) = bag.import_errors.items()
    assert path.endswith("dlflow_pipeline_errors.py")
    assert "2 pipeline file(s) could not be loaded" in message
    assert "broken.yaml: stages.encode.tfrecords: unknown key 'tfrecords'" in message
    assert "syntax.yaml: line 2, column 1: invalid YAML" in message


def test_duplicate_dag_id_is_reported(tmp_path: Path):
    folder = tmp_path / "dags"
    (folder / "pipelines").mkdir(parents=True)
    for dag_file in DAG_FILES:
        shutil.copy(DAGS_FOLDER / dag_file, folder)
    shutil.copy(DEMO_PIPELINE, folder / "pipelines" / "a.yaml")
    shutil.copy(DEMO_PIPELINE, folder / "pipelines" / "b.yaml")
    bag = _dagbag(folder)
    assert "dlflow_demo_ctr" in bag.dag_ids
    (message,) = bag.import_errors.values()
    assert "b.yaml: dag_id: 'dlflow_demo_ctr' is already used by" in message
