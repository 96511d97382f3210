"""Model lifecycle: quality gate and blessing, warm start, checkpoint resume, manifest check."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dlflow_airflow.contract.fmap import Feature, FmapError
from dlflow_airflow.contract.layout import local_path
from dlflow_airflow.contract.model_resolution import ModelNotFoundError, resolve_model_partition
from tests.tf_jobs.conftest import (
    EVAL_DATE,
    FEATURE_TAG,
    MODEL_TAG,
    TRAIN_DATE,
    Workspace,
    encoded_table,
    make_fmap,
    write_partition,
)
from tf_jobs import evaluate, train
from tf_jobs.gate import GateMissedError

pytestmark = pytest.mark.tf

PARAMS = {"epochs": 3, "batch_size": 128, "hidden_units": [8], "learning_rate": 0.01}
NEXT_DATE = "2026-01-03"


@pytest.fixture
def small(fresh_workspace: Workspace) -> Workspace:
    layout = fresh_workspace.layout
    write_partition(layout.encoded(FEATURE_TAG, TRAIN_DATE), encoded_table(2000, 1))
    write_partition(layout.encoded(FEATURE_TAG, EVAL_DATE), encoded_table(800, 2))
    return fresh_workspace


def _blessed_file(ws: Workspace, date: str = TRAIN_DATE) -> Path:
    return Path(local_path(ws.layout.model(MODEL_TAG, date))) / "BLESSED"


def test_gate_blesses_then_unblesses_and_names_the_miss(small: Workspace, capsys) -> None:
    train.run(small.job(params=PARAMS))
    passed = evaluate.run(
        small.job(EVAL_DATE, kind="evaluate", options={"gate": {"auc": {"min": 0.7}}})
    )
    assert passed["blessed"] is True
    assert json.loads(_blessed_file(small).read_text())["evaluated_on"] == EVAL_DATE

    capsys.readouterr()
    gate = {"auc": {"min": 0.999}, "log_loss": {"max": 0.01}, "accuracy": {"min": 0.5}}
    missed = evaluate.run(small.job(EVAL_DATE, kind="evaluate", options={"gate": gate}))
    assert missed["blessed"] is False
    assert not _blessed_file(small).exists()
    out = capsys.readouterr().out
    auc = missed["auc"]
    assert f"auc {auc:.4f} < min 0.999 (by {0.999 - auc:.4f})" in out
    assert f"log_loss {missed['log_loss']:.4f} > max 0.01" in out
    assert "accuracy" not in out.split("missed:")[1]
    metrics = json.loads((Path(local_path(missed["output"])) / "metrics.json").read_text())
    assert metrics["gate"]["blessed"] is False and len(metrics["gate"]["missed"]) == 2
    # Predict's rule: latest blessed passes the unblessed model over.
    with pytest.raises(ModelNotFoundError, match="complete but not blessed: 2026-01-01"):
        resolve_model_partition(small.layout, MODEL_TAG, "latest", EVAL_DATE, blessed_only=True)


def test_gate_miss_can_fail_the_task(small: Workspace) -> None:
    train.run(small.job(params=PARAMS))
    options = {"gate": {"auc": {"min": 0.999}}, "gate_miss": "fail"}
    with pytest.raises(GateMissedError, match=r"auc 0\.\d{4} < min 0.999"):
        evaluate.run(small.job(EVAL_DATE, kind="evaluate", options=options))
    # The metrics are still committed: the miss is on record.
    assert (Path(local_path(small.layout.evaluate(MODEL_TAG, EVAL_DATE))) / "metrics.json").exists()


def test_with_approval_a_model_meeting_the_gate_awaits_a_person(small: Workspace) -> None:
    train.run(small.job(params=PARAMS))
    evaluate.run(small.job(EVAL_DATE, kind="evaluate"))  # blessed before: approval re-asks
    assert _blessed_file(small).exists()
    options = {"gate": {"auc": {"min": 0.6}}, "approval": True}
    result = evaluate.run(small.job(EVAL_DATE, kind="evaluate", options=options))
    assert (result["blessed"], result["awaiting_approval"]) == (False, True)
    assert not _blessed_file(small).exists()
    metrics = json.loads((Path(local_path(result["output"])) / "metrics.json").read_text())
    assert metrics["gate"] == {
        "bounds": {"auc": {"min": 0.6}},
        "missed": [],
        "blessed": False,
        "awaiting_approval": True,
    }
    # A miss is a miss: nothing to approve.
    options = {"gate": {"auc": {"min": 0.999}}, "approval": True}
    missed = evaluate.run(small.job(EVAL_DATE, kind="evaluate", options=options))
    assert missed["blessed"] is False and "awaiting_approval" not in missed


def test_evaluate_latest_passes_over_an_unblessed_model_like_predict(small: Workspace) -> None:
    one_epoch = {**PARAMS, "epochs": 1}
    train.run(small.job(params=one_epoch))
    latest = small.job(EVAL_DATE, kind="evaluate", model_date="latest")
    with pytest.raises(ModelNotFoundError, match="complete but not blessed: 2026-01-01"):
        evaluate.run(latest)
    assert evaluate.run(small.job(EVAL_DATE, kind="evaluate"))["blessed"] is True
    # A newer model, not evaluated yet: latest still means the blessed one.
    make_fmap(EVAL_DATE).save(small.layout.femodel(FEATURE_TAG, EVAL_DATE))
    train.run(small.job(EVAL_DATE, params=one_epoch, model_date=EVAL_DATE))
    result = evaluate.run(latest)
    assert result["model_date"] == TRAIN_DATE
    assert result["blessed"] is True


def test_fmap_that_does_not_match_the_manifest_is_refused(small: Workspace) -> None:
    train.run(small.job(params={**PARAMS, "epochs": 1}))
    fmap = make_fmap()
    user = fmap.bucket("user")
    changed = dataclasses.replace(
        user,
        ctgs=(
            dataclasses.replace(user.ctgs[0], meta={"vocab": list("abcdz")}),
            *user.ctgs[1:],
        ),
    )
    assert isinstance(changed.ctgs[0], Feature)
    dataclasses.replace(fmap, buckets=(changed, *fmap.buckets[1:])).save(
        small.layout.femodel(FEATURE_TAG, TRAIN_DATE)
    )
    with pytest.raises(FmapError, match="was trained with fmap .* but the fmap of ctr_v1/"):
        evaluate.run(small.job(EVAL_DATE, kind="evaluate"))


def test_warm_start_latest_starts_from_the_previous_model(small: Workspace) -> None:
    layout = small.layout
    first = train.run(small.job(params=PARAMS))
    make_fmap(NEXT_DATE).save(layout.femodel(FEATURE_TAG, NEXT_DATE))
    write_partition(layout.encoded(FEATURE_TAG, NEXT_DATE), encoded_table(2000, 3))
    one_epoch = {**PARAMS, "epochs": 1}
    scratch = train.run(small.job(NEXT_DATE, params=one_epoch, model_date=NEXT_DATE))
    warm = train.run(
        small.job(
            NEXT_DATE, params=one_epoch, model_date=NEXT_DATE, options={"warm_start": "latest"}
        )
    )
    manifest = json.loads((Path(local_path(warm["model"])) / "manifest.json").read_text())
    assert manifest["warm_start"] == first["model"]
    assert warm["final_loss"] < scratch["final_loss"]
    with pytest.raises(ModelNotFoundError, match="dt=2025-06-01"):
        train.run(small.job(params=one_epoch, options={"warm_start": "2025-06-01"}))


def test_a_retried_task_resumes_from_its_checkpoint(small: Workspace, capsys) -> None:
    import keras

    class LoseTheWorker(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.steps += 1
            if self.steps == 20:  # epoch 2 of 3 (16 steps per epoch)
                raise RuntimeError("worker lost")

    job = small.job(params=PARAMS, options={"checkpoint_every_steps": 5})
    with pytest.raises(RuntimeError, match="worker lost"):
        train.run(job, callbacks=[LoseTheWorker()])
    checkpoints = Path(local_path(small.layout.root("model", MODEL_TAG))) / "_checkpoints"
    assert list(checkpoints.rglob("latest.weights.h5"))
    assert not Path(local_path(small.layout.model(MODEL_TAG, TRAIN_DATE))).exists()

    capsys.readouterr()
    result = train.run(job)
    assert "resuming from checkpoint" in capsys.readouterr().out
    assert result["epochs"] == 2  # epochs 2 and 3 only: epoch 1 was not redone
    assert not list(checkpoints.rglob("*.h5"))  # cleaned once the model is committed
