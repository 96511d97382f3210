"""A connection password templated in YAML reaches no task log of a real Airflow run.

``airflow dags test`` runs a pipeline whose ``spark.conf`` and ``model.params``
hold ``{{ conn.spark_default.password }}`` (and its ``| reverse``, which
Airflow's log masking would not recognise) against a Spark connection with a
password. The merge stage runs the real spark-submit (it fails early: there is
no seed table) and the train stage the real local TF job (it fails: no
encoded input); neither outcome matters. Neither the password nor its reverse
is in Airflow's output or in any task log, and the spark-submit command in the
log carries the template text as written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dlflow_airflow.contract.models import ModelSpec
from tests.conftest import DAGS_FOLDER, REPO

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-Pw-93fd"
DATE = "2026-01-02"
PIPELINE = """
dag_id: secrets_probe
schedule: null
start_date: 2026-01-01
workspace: {workspace}
feature: {{tag: f1, primary_keys: [uid], labels: [label]}}
model:
  tag: m1
  name: tests.e2e.test_secrets:NOTE_MODEL
  params: {{note: "{{{{ conn.spark_default.password }}}}",
           other: "{{{{ conn.spark_default.password | reverse }}}}"}}
buckets: {{user: {{features: [age]}}}}
spark:
  conf:
    spark.ui.enabled: false
    spark.dlflow.note: "{{{{ conn.spark_default.password }}}}"
    spark.dlflow.other: "{{{{ conn.spark_default.password | reverse }}}}"
external: [ENCODED_FEATURE, FMAP]
stages:
  merge: {{seed: {{path: "{{workspace}}/seed/dt={{date}}"}}}}
  train: {{}}
"""


def _never_built(fmap: Any, params: Any) -> Any:
    raise RuntimeError("the secrets probe builds no model")


# A user model with string params, so model.params can hold the template.
NOTE_MODEL = ModelSpec(name="note_model", build=_never_built, defaults={"note": "", "other": ""})


def test_a_templated_connection_reaches_no_task_log(tmp_path: Path, monkeypatch) -> None:
    from dlflow_airflow.devtools.demo import DemoSetup, run_dag

    connection = {"conn_type": "spark", "host": "local[*]", "password": PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(connection))
    # The DAG file imports this module (the user model) in Airflow's processes.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.getenv("PYTHONPATH")]))
    )
    dags = tmp_path / "dags"
    (dags / "pipelines").mkdir(parents=True)
    (dags / "dlflow_pipelines.py").write_text((DAGS_FOLDER / "dlflow_pipelines.py").read_text())
    workspace = tmp_path / "workspace"
    (dags / "pipelines" / "secrets_probe.yaml").write_text(PIPELINE.format(workspace=workspace))
    setup = DemoSetup(tmp_path, dags)
    out = tmp_path / "airflow-output.log"

    run_dag(setup, "secrets_probe", DATE, log=out)  # the tasks fail; that is not the point

    # ``dags test`` runs the tasks in its own process: their logs are its output.
    logs = {out: out.read_text(errors="replace")}
    logs |= {p: p.read_text(errors="replace") for p in setup.airflow_home.rglob("*.log")}
    output = logs[out]
    for task in ("merge", "train"):
        assert f"[DAG TEST] end task task_id={task}" in output, output[-4000:]
    assert "tf_jobs.train exited" in output  # the job ran, with the YAML's params
    for path, text in logs.items():
        for leak in (PASSWORD, PASSWORD[::-1]):
            assert leak not in text, f"{path} holds the password"
    (submitted,) = [line for line in output.splitlines() if "Spark-Submit cmd" in line]
    assert "--conf spark.dlflow.other={{ conn.spark_default." in submitted
    assert f"--date {DATE} --job " in submitted
