"""One broken pipeline among a hundred good ones: the hundred load, the broken one is reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.conftest import DAG_FILES, DAGS_FOLDER
from tests.dlflow_airflow.pipelines import base_pipeline

GOOD = 100


def write_pipelines(folder: Path, count: int) -> list[str]:
    """``count`` valid pipeline files (distinct dag ids) beside a copy of the DAG file."""
    (folder / "pipelines").mkdir(parents=True, exist_ok=True)
    for dag_file in DAG_FILES:
        shutil.copy(DAGS_FOLDER / dag_file, folder)
    dag_ids = []
    for i in range(count):
        doc = base_pipeline()
        doc["dag_id"] = f"scale_{i:03d}"
        doc["feature"]["tag"] = f"f{i}"
        (folder / "pipelines" / f"p{i:03d}.yaml").write_text(yaml.safe_dump(doc))
        dag_ids.append(doc["dag_id"])
    return dag_ids


def test_hundred_good_pipelines_load_and_the_broken_one_is_reported(tmp_path: Path):
    from airflow.dag_processing.dagbag import DagBag

    dag_ids = write_pipelines(tmp_path, GOOD)
    bad = base_pipeline()
    bad["dag_id"] = "scale_broken"
    bad["buckets"]["user"]["method"] = "minmaxx"
    (tmp_path / "pipelines" / "zz_broken.yaml").write_text(yaml.safe_dump(bad))

    bag = DagBag(dag_folder=str(tmp_path))

    assert set(dag_ids) <= set(bag.dag_ids)
    assert "scale_broken" not in bag.dag_ids
    ((path, message),) = bag.import_errors.items()
    assert path.endswith("dlflow_pipeline_errors.py")
    assert "1 pipeline file(s) could not be loaded" in message
    assert "zz_broken.yaml: buckets.user.method:" in message
