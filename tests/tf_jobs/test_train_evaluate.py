"""Train and evaluate end to end on a pyarrow-written workspace, in-process and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlflow_airflow.contract.artifacts import ContractError
from dlflow_airflow.contract.jobconf import job_argv, parse_result
from dlflow_airflow.contract.layout import local_path
from dlflow_airflow.contract.model_resolution import record_blessing
from tests.tf_jobs.conftest import (
    EVAL_DATE,
    EVAL_ROWS,
    FEATURE_TAG,
    MODEL_TAG,
    TRAIN_DATE,
    TRAIN_ROWS,
    Workspace,
    encoded_table,
    write_partition,
)
from tf_jobs import evaluate, model_io, train
from tf_jobs.inputs import EncodedDataError
from tf_jobs.model_io import ModelNotFoundError
from tf_jobs.models import ModelConfigError

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[2]


def test_train_commits_model_history_and_manifest(
    workspace: Workspace, trained: dict[str, Any]
) -> None:
    final = workspace.layout.model(MODEL_TAG, TRAIN_DATE)
    assert trained["model"] == final
    assert trained["rows"] == TRAIN_ROWS
    assert trained["epochs"] == 3
    assert "task" not in trained  # a binary model's result is as it was before tasks
    folder = Path(local_path(final))
    assert {"_SUCCESS", "history.json", "manifest.json", "model.keras"} <= {
        p.name for p in folder.iterdir()
    }
    history = json.loads((folder / "history.json").read_text())["epochs"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["loss"] == pytest.approx(trained["final_loss"])
    assert history[-1]["loss"] < history[0]["loss"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["fmap_checksum"] == workspace.fmap.checksum
    assert manifest["model"] == {
        "tag": MODEL_TAG,
        "name": "dnn_binary_classifier",
        "date": TRAIN_DATE,
    }
    assert manifest["params"]["hidden_units"] == [16]
    assert manifest["task"] == "binary"
    assert manifest["heads"] == [
        {"name": "score", "label": "label", "kind": "binary", "classes": []}
    ]
    assert manifest["feature"] == {"tag": FEATURE_TAG, "label": "label"}
    assert manifest["tensorflow"]
    # No staging leftovers next to the committed partition.
    assert not list((folder.parent / "_staging").iterdir())


def test_the_manifest_records_the_signature_predict_reads_without_tensorflow(
    workspace: Workspace, trained: dict[str, Any]
) -> None:
    from tf_jobs.signature import recorded_signature, signature_of

    recorded = recorded_signature(model_io.read_manifest(trained["model"]))
    assert recorded is not None
    assert recorded == signature_of(model_io.load_model(trained["model"]))
    assert recorded.outputs[0].name == "score" and recorded.outputs[0].width == 1
    assert set(recorded.inputs or {}) == set(workspace.fmap.input_columns())
    # Predict's driver reads it in a process that never imports TensorFlow.
    probe = (
        "import sys, spark_jobs.predict as p; s = p.read_signature(sys.argv[1]); "
        "print(sorted(s.inputs), [o.name for o in s.outputs], 'tensorflow' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe, trained["model"]],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == f"{sorted(workspace.fmap.input_columns())} ['score'] False"


def test_saved_model_loads_with_encoded_column_inputs(
    workspace: Workspace, trained: dict[str, Any]
) -> None:
    model = model_io.load_model(trained["model"])
    assert sorted(t.name for t in model.inputs) == sorted(workspace.fmap.input_columns())
    scores = model(
        {
            "user_nums": np.array([[0.9, 0.5], [0.1, 0.5]], np.float32),
            "user_ctgs": np.array([[5, 7], [1, 7]], np.int32),
            "item_ctgs": np.array([[2], [0]], np.int32),
        }
    ).numpy()
    assert scores.shape == (2, 1)
    assert scores[0, 0] > scores[1, 0]  # old, big-city, category-2 users click more


def test_evaluate_writes_metrics(workspace: Workspace, trained: dict[str, Any]) -> None:
    result = evaluate.run(workspace.job(EVAL_DATE, kind="evaluate"))
    final = workspace.layout.evaluate(MODEL_TAG, EVAL_DATE)
    assert result["output"] == final
    assert result["rows"] == EVAL_ROWS
    assert result["auc"] > 0.7
    assert 0.0 < result["log_loss"] < 0.69
    assert result["accuracy"] > 0.6
    assert 0.0 < result["positive_rate"] < 1.0
    folder = Path(local_path(final))
    assert (folder / "_SUCCESS").exists()
    written = json.loads((folder / "metrics.json").read_text())
    assert {k: written[k] for k in result if k not in ("output", "blessed")} == {
        k: v for k, v in result.items() if k not in ("output", "blessed")
    }
    assert 0.5 < result["pr_auc"] <= 1.0
    assert 0.8 < result["calibration"] < 1.25
    assert len(written["calibration_table"]) >= 5
    for plot in ("roc.png", "pr.png", "calibration.png"):
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # No gate: nothing to miss, the model is blessed.
    assert result["blessed"] is True
    model_folder = Path(local_path(workspace.layout.model(MODEL_TAG, TRAIN_DATE)))
    assert (model_folder / "BLESSED").exists()


def test_evaluate_latest_picks_the_newest_blessed_model(
    workspace: Workspace, trained: dict[str, Any]
) -> None:
    # latest means the newest *blessed* model (predict's rule); bless it here so
    # the test does not depend on test_evaluate_writes_metrics running first.
    record_blessing(trained["model"], True, {"evaluated_on": "test"})
    result = evaluate.run(workspace.job(EVAL_DATE, kind="evaluate", model_date="latest"))
    assert result["model_date"] == TRAIN_DATE
    with pytest.raises(ModelNotFoundError, match="dated on or before 2025-12-31"):
        evaluate.run(workspace.job("2025-12-31", kind="evaluate", model_date="latest"))


def test_evaluate_without_model_names_the_path(fresh_workspace: Workspace) -> None:
    write_partition(fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE), encoded_table(50, 0))
    with pytest.raises(ModelNotFoundError) as info:
        evaluate.run(fresh_workspace.job(kind="evaluate"))
    assert fresh_workspace.layout.model(MODEL_TAG, TRAIN_DATE) in str(info.value)


def test_unknown_model_name(workspace: Workspace) -> None:
    with pytest.raises(
        ModelConfigError, match="known models: deepfm, dnn_binary_classifier, dnn_classifier, "
    ):
        train.run(workspace.job(model_name="wide_and_deep"))


def test_unknown_param(workspace: Workspace) -> None:
    with pytest.raises(ModelConfigError, match="accepted params: batch_size, dropout"):
        train.run(workspace.job(params={"layers": [8]}))


def test_train_refuses_model_date_latest(workspace: Workspace) -> None:
    # The artifact contract: train writes a model for a date, which 'latest' cannot name.
    with pytest.raises(ContractError, match="writes TRAINED_MODEL for a model date"):
        train.run(workspace.job(model_date="latest"))


def test_missing_input_names_the_path(fresh_workspace: Workspace) -> None:
    with pytest.raises(EncodedDataError) as info:
        train.run(fresh_workspace.job())
    assert fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE) in str(info.value)


def test_empty_input_names_the_path(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, encoded_table(0, 0), parts=1)
    with pytest.raises(EncodedDataError, match="no rows") as info:
        train.run(fresh_workspace.job())
    assert uri in str(info.value)


def test_label_2_is_refused_by_the_binary_classifier(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, encoded_table(4, 0, label_values=np.array([0, 1, 2, 1])))
    with pytest.raises(EncodedDataError, match=r"values other than 0 and 1 \(2\)"):
        train.run(fresh_workspace.job())
    assert not Path(local_path(fresh_workspace.layout.model(MODEL_TAG, TRAIN_DATE))).exists()


def test_two_labels_are_refused(workspace: Workspace) -> None:
    with pytest.raises(ModelConfigError, match="a binary model learns exactly one label"):
        train.run(workspace.job(labels=("label", "other")))


def test_same_seed_same_model(fresh_workspace: Workspace) -> None:
    write_partition(fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE), encoded_table(600, 4))
    job = fresh_workspace.job(params={"epochs": 1, "batch_size": 64, "hidden_units": [8]})
    assert train.run(job)["final_loss"] == train.run(job)["final_loss"]


def test_train_as_subprocess_prints_result_last(fresh_workspace: Workspace) -> None:
    write_partition(fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE), encoded_table(500, 3))
    job = fresh_workspace.job(params={"epochs": 2, "batch_size": 128, "hidden_units": [8]})
    completed = subprocess.run(
        [sys.executable, "-m", "tf_jobs.train", *job_argv(TRAIN_DATE, job.body())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    result = parse_result(lines[-1])
    assert result is not None, completed.stdout
    assert result["model"] == fresh_workspace.layout.model(MODEL_TAG, TRAIN_DATE)
    assert (result["rows"], result["epochs"]) == (500, 2)
    assert isinstance(result["final_loss"], float)
    # verbose=2: one line per epoch in the task log.
    assert sum(line.startswith("Epoch ") for line in lines) == 2


def test_subprocess_config_error_is_one_line(fresh_workspace: Workspace) -> None:
    job = fresh_workspace.job(model_name="nope")
    completed = subprocess.run(
        [sys.executable, "-m", "tf_jobs.train", *job_argv(TRAIN_DATE, job.body())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    assert "ERROR ModelConfigError: unknown model 'nope'" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "DLFLOW_RESULT" not in completed.stdout


def test_subprocess_invalid_option_is_one_line(fresh_workspace: Workspace) -> None:
    body = fresh_workspace.job().body()
    body["options"]["warm_start"] = "yesterday"
    completed = subprocess.run(
        [sys.executable, "-m", "tf_jobs.train", *job_argv(TRAIN_DATE, body)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    errors = completed.stderr.strip().splitlines()
    assert errors == [
        "ERROR ValidationError: TrainOptions: warm_start: "
        "Value error, expected 'none', 'latest' or a model date YYYY-MM-DD"
    ]
    assert "DLFLOW_RESULT" not in completed.stdout


def test_evaluate_does_not_import_train() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tf_jobs.evaluate; assert 'tf_jobs.train' not in sys.modules",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
