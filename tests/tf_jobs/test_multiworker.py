"""``workers: 2``: two local processes train one model with MultiWorkerMirroredStrategy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dlflow_airflow.contract.jobconf import job_argv
from dlflow_airflow.contract.layout import local_path
from dlflow_airflow.runners.local import LocalProcess
from tests.tf_jobs.conftest import (
    FEATURE_TAG,
    TRAIN_DATE,
    Workspace,
    encoded_table,
    write_partition,
)

pytestmark = pytest.mark.tf


def test_two_workers_train_one_model(fresh_workspace: Workspace, caplog) -> None:
    caplog.set_level(logging.INFO)
    write_partition(fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE), encoded_table(2000, 5))
    job = fresh_workspace.job(
        params={"epochs": 2, "batch_size": 128, "hidden_units": [8]}, options={"threads": 1}
    )
    result = LocalProcess().run(
        "tf_jobs.train",
        job_argv(TRAIN_DATE, job.body()),
        env={},
        log=logging.getLogger("multiworker"),
        workers=2,
    )
    assert result is not None and "worker" not in result  # the chief's result
    assert result["epochs"] == 2
    folder = Path(local_path(result["model"]))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["workers"] == 2
    assert (folder / "_SUCCESS").exists()
    # Both workers trained: each logged its epochs.
    assert "[worker 1] Epoch 2/2" in caplog.text
    assert "[worker 0] Epoch 2/2" in caplog.text
