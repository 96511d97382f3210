"""The TF job harness: parsing by job name, result line and file, one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dlflow_airflow.contract.artifacts import ContractError
from dlflow_airflow.contract.jobconf import RESULT_FILE_ENV, JobConfig, job_argv, parse_result
from dlflow_airflow.contract.model_resolution import ModelNotFoundError
from dlflow_airflow.contract.options import EvaluateOptions, TrainOptions
from tests.tf_jobs.conftest import EVAL_DATE, TRAIN_DATE, Workspace
from tf_jobs.gate import GateMissedError
from tf_jobs.harness import run_job
from tf_jobs.inputs import EncodedDataError


def _argv(ws: Workspace, date: str = TRAIN_DATE, **options: Any) -> list[str]:
    body = ws.job().body()
    body.pop("stage")  # as the job is run by hand: the job name supplies the stage
    body["options"] = {"threads": 2, **options}
    return job_argv(date, body)


def test_result_line_and_result_file(
    fresh_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    target = tmp_path / "xcom" / "return.json"
    monkeypatch.setenv(RESULT_FILE_ENV, str(target))
    seen: list[JobConfig] = []

    def run(job: JobConfig) -> dict[str, Any]:
        seen.append(job)
        return {"rows": 3, "model": "m"}

    assert run_job("train", run, _argv(fresh_workspace, warm_start="latest")) == {
        "rows": 3,
        "model": "m",
    }
    (job,) = seen
    assert isinstance(job.options, TrainOptions)
    assert (job.options.warm_start, job.options.threads) == ("latest", 2)
    assert (job.stage.name, job.stage.job) == ("train", "train")
    lines = capsys.readouterr().out.strip().splitlines()
    assert parse_result(lines[-1]) == {"rows": 3, "model": "m"}
    assert json.loads(target.read_text()) == {"rows": 3, "model": "m"}


def test_the_job_name_chooses_the_options_model(fresh_workspace: Workspace) -> None:
    seen: list[JobConfig] = []
    run_job("evaluate", lambda job: seen.append(job) or {}, _argv(fresh_workspace, EVAL_DATE))
    (job,) = seen
    assert isinstance(job.options, EvaluateOptions)
    # EvaluateOptions' own defaults, not train's.
    assert (job.options.shuffle, job.options.batch_size, job.options.gate_miss) == (
        False,
        8192,
        "warn",
    )


@pytest.mark.parametrize(
    "error",
    [
        EncodedDataError("encoded partition x has no rows to train on"),
        ModelNotFoundError("no complete model at y"),
        ContractError("model.date 'latest' names an existing model"),
        GateMissedError("model z missed the gate"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_user_errors_exit_1_in_one_line(
    error: Exception,
    fresh_workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    target = tmp_path / "return.json"
    monkeypatch.setenv(RESULT_FILE_ENV, str(target))

    def run(job: JobConfig) -> dict[str, Any]:
        raise error

    with pytest.raises(SystemExit) as info:
        run_job("train", run, _argv(fresh_workspace))
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == f"ERROR {type(error).__name__}: {error}\n"
    assert "DLFLOW_RESULT" not in captured.out
    assert not target.exists()


def test_an_invalid_document_is_one_line(fresh_workspace: Workspace, capsys) -> None:
    argv = _argv(fresh_workspace, EVAL_DATE, gate={"auc": {"min": 0.9, "max": 0.1}}, plots="x")
    with pytest.raises(SystemExit) as info:
        run_job("evaluate", lambda job: {}, argv)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ERROR ValidationError: EvaluateOptions: ")
    assert "gate.auc: Value error, min 0.9 is above max 0.1" in err
    assert "plots: Input should be a valid boolean" in err


def test_a_bug_keeps_its_traceback(fresh_workspace: Workspace) -> None:
    def run(job: JobConfig) -> dict[str, Any]:
        raise KeyError("not a user error")

    with pytest.raises(KeyError, match="not a user error"):
        run_job("train", run, _argv(fresh_workspace))
