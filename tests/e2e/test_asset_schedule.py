"""A pipeline scheduled on another pipeline's model asset runs when a new model lands.

A real Airflow (api-server, scheduler, dag-processor; see ``tests/e2e/airflow.py``),
this time with the scheduler creating runs itself, parses two small pipelines on
one shared base (``extends``):

- the trainer (``schedule: null``): encode, then train, on a raw partition the
  test writes (``external: [RAW_FEATURE]``: no Spark job to make it);
- the scorer: ``schedule: {assets: [TRAINED_MODEL]}``, only predict.

The test triggers the trainer through the REST API for one date. Its train task
emits the model asset's event; the scheduler then starts an asset-triggered
run of the scorer (no logical date), which scores the trainer's date: the
``date`` of the triggering event.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DAG_FILES, DAGS_FOLDER
from tests.e2e.airflow import run_report, running_airflow

pytestmark = pytest.mark.e2e

TRAINER = "dlflow_asset_trainer"
SCORER = "dlflow_asset_scorer"
FEATURE_TAG = "asset_f"
MODEL_TAG = "asset_m"
DATE = "2026-02-01"
ROWS = 400

BASE = f"""
start_date: 2026-01-01
workspace: ${{DLFLOW_WORKSPACE}}
feature: {{tag: {FEATURE_TAG}, primary_keys: [uid], labels: [label]}}
model:
  tag: {MODEL_TAG}
  name: dnn_binary_classifier
  date: same
  params: {{hidden_units: [8], embedding_dim: 4, epochs: 1, batch_size: 64}}
buckets: {{user: {{features: [age, city]}}}}
spark: {{conf: {{spark.sql.shuffle.partitions: 2, spark.ui.enabled: false}}}}
"""
TRAINER_YAML = f"""
extends: common/base.yaml
dag_id: {TRAINER}
schedule: null
external: [RAW_FEATURE]
stages: {{encode: {{}}, train: {{}}}}
"""
SCORER_YAML = f"""
extends: common/base.yaml
dag_id: {SCORER}
schedule: {{assets: [TRAINED_MODEL]}}   # the trainer's model: dlflow.model.{MODEL_TAG}
external: [ENCODED_FEATURE, FMAP, TRAINED_MODEL]
stages: {{predict: {{}}}}
"""


def _two_pipelines(folder: Path) -> None:
    (folder / "pipelines" / "common").mkdir(parents=True)
    for dag_file in DAG_FILES:
        shutil.copy(DAGS_FOLDER / dag_file, folder)
    (folder / "pipelines" / "common" / "base.yaml").write_text(BASE)
    (folder / "pipelines" / "trainer.yaml").write_text(TRAINER_YAML)
    (folder / "pipelines" / "scorer.yaml").write_text(SCORER_YAML)


def _raw_partition(workspace: Path) -> None:
    """The trainer's input, as merge would have committed it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = workspace / f"raw/TAG={FEATURE_TAG}/dt={DATE}"
    path.mkdir(parents=True)
    table = pa.table(
        {
            "uid": pa.array(range(ROWS), pa.int64()),
            "label": pa.array([int(i % 7 < 3) for i in range(ROWS)], pa.int32()),
            "age": pa.array([18 + i % 50 for i in range(ROWS)], pa.int32()),
            "city": [f"city_{i % 5}" for i in range(ROWS)],
        }
    )
    pq.write_table(table, path / "part-00000.parquet")
    (path / "_SUCCESS").write_text("")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Iterator:
    root = tmp_path_factory.mktemp("airflow-assets")
    with running_airflow(root, TRAINER, _two_pipelines, scheduled=True) as server:
        server.wait_for_dag(SCORER)
        server.api("PATCH", f"/dags/{SCORER}", {"is_paused": False})
        yield server


def _scorer_runs(server) -> list[dict]:
    return server.api("GET", f"/dags/{SCORER}/dagRuns")["dag_runs"]


def _first_scorer_run(server, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _scorer_runs(server)
        if runs:
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"{SCORER} got no run within {timeout:.0f}s of the new model")


def test_a_new_model_triggers_the_scoring_pipeline_for_its_date(airflow):
    _raw_partition(airflow.workspace)
    assert _scorer_runs(airflow) == []  # scheduled on the asset alone: no clock, no run yet
    trained = airflow.api(
        "POST", f"/dags/{TRAINER}/dagRuns", {"logical_date": f"{DATE}T00:00:00Z", "conf": {}}
    )
    done = airflow.wait_for_run(TRAINER, trained["dag_run_id"])
    assert done["state"] == "success", run_report(airflow, TRAINER, trained["dag_run_id"])

    run = _first_scorer_run(airflow)
    scored = airflow.wait_for_run(SCORER, run["dag_run_id"])
    assert scored["state"] == "success", run_report(airflow, SCORER, run["dag_run_id"])
    assert scored["run_type"] == "asset_triggered" and scored["logical_date"] is None
    events = airflow.api("GET", f"/dags/{SCORER}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
    (event,) = events["asset_events"]
    assert event["source_dag_id"] == TRAINER and event["source_task_id"] == "train"
    assert event["extra"]["date"] == DATE
    assert event["extra"]["partition"].endswith(f"model/TAG={MODEL_TAG}/dt={DATE}")
    # The scorer wrote the trainer's date, with the model it trained.
    predictions = airflow.workspace / f"predict/TAG={MODEL_TAG}/dt={DATE}"
    assert (predictions / "_SUCCESS").is_file()
    dated = (airflow.workspace / "predict" / f"TAG={MODEL_TAG}").glob("dt=*")
    assert [p.name for p in dated] == [f"dt={DATE}"]
    assert len(_scorer_runs(airflow)) == 1  # one model event, one run
