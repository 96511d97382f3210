"""Skip decisions: complete outputs + unchanged inputs and spec skip; anything else runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.operators.bookkeeping import FINGERPRINT_FILE, decide, record, stage_io

DATE = "2026-01-02"


def _config(ws: Path, **model) -> JobConfig:
    body = {
        "workspace": str(ws),
        "feature": {"tag": "f1", "primary_keys": ["uid"], "labels": ["label"]},
        "model": {"tag": "m1", "name": "dnn", "date": "same", "params": {}, **model},
        "buckets": {},
        "options": {"batch_size": 64},
    }
    return JobConfig.from_body(DATE, body)


def _partition(uri: str, files: dict[str, str]) -> Path:
    path = Path(uri.removeprefix("file://"))
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    (path / "_SUCCESS").write_text("")
    return path


@pytest.fixture
def predict_inputs(tmp_path: Path) -> JobConfig:
    config = _config(tmp_path)
    layout = config.layout
    _partition(layout.encoded("f1", DATE), {"part-0.parquet": "abc"})
    _partition(layout.femodel("f1", DATE), {"fmap.json": "{}"})
    _partition(layout.model("m1", DATE), {"model.keras": "weights"})
    return config


def test_predict_io_reads_encoded_fmap_model_and_writes_predict(predict_inputs: JobConfig):
    io = stage_io("predict", predict_inputs)
    assert [u.rsplit("/", 2)[-2] for u in io.inputs] == ["TAG=f1", "TAG=f1", "TAG=m1"]
    assert [o.artifact for o in io.outputs] == ["predict"]


def test_missing_output_runs_then_complete_unchanged_output_skips(predict_inputs: JobConfig):
    io = stage_io("predict", predict_inputs)
    first = decide("predict", predict_inputs, io, force=False)
    assert not first.skip and "_SUCCESS" in first.reason
    _partition(io.outputs[0].uri, {"part-0.parquet": "scores"})
    record("predict", predict_inputs, io, first.fingerprint, run_id="r1")
    assert Path(io.outputs[0].uri.removeprefix("file://"), FINGERPRINT_FILE).is_file()
    again = decide("predict", predict_inputs, io, force=False)
    assert again.skip and "unchanged" in again.reason
    assert not decide("predict", predict_inputs, io, force=True).skip


def test_changed_input_or_spec_runs_again(predict_inputs: JobConfig):
    io = stage_io("predict", predict_inputs)
    first = decide("predict", predict_inputs, io, force=False)
    _partition(io.outputs[0].uri, {"part-0.parquet": "scores"})
    record("predict", predict_inputs, io, first.fingerprint, run_id="r1")
    # A new model file: the model partition's listing changed.
    _partition(predict_inputs.layout.model("m1", DATE), {"model.keras": "retrained weights"})
    changed = decide("predict", predict_inputs, io, force=False)
    assert not changed.skip and "changed" in changed.reason
    record("predict", predict_inputs, io, changed.fingerprint, run_id="r2")
    assert decide("predict", predict_inputs, io, force=False).skip
    other_spec = JobConfig.from_body(DATE, {**predict_inputs.body(), "options": {"batch_size": 8}})
    assert not decide("predict", other_spec, io, force=False).skip


def test_missing_input_never_skips(tmp_path: Path):
    config = _config(tmp_path)
    io = stage_io("predict", config)
    decision = decide("predict", config, io, force=False)
    assert not decision.skip and decision.fingerprint is None


def test_latest_model_resolves_to_the_newest_complete_partition(tmp_path: Path):
    config = _config(tmp_path, date="latest")
    _partition(config.layout.model("m1", "2025-12-20"), {"model.keras": "old"})
    _partition(config.layout.model("m1", "2025-12-27"), {"model.keras": "new"})
    _partition(config.layout.model("m1", "2026-01-09"), {"model.keras": "future"})
    io = stage_io("evaluate", config)
    assert config.layout.model("m1", "2025-12-27") in io.inputs


def test_unknown_job_always_runs(tmp_path: Path):
    config = _config(tmp_path)
    assert stage_io("export", config) is None
    assert not decide("export", config, None, force=False).skip


def test_merge_reads_its_seed_and_sources_and_sql_seeds_always_run(tmp_path: Path):
    body = _config(tmp_path).body()
    body["options"] = {
        "seed": {"path": "{workspace}/seed/dt={date}", "sql": None},
        "sources": [{"name": "p", "path": "{workspace}/p/dt={date_nodash}"}],
    }
    io = stage_io("merge", JobConfig.from_body(DATE, body))
    assert io.inputs == (f"file://{tmp_path}/seed/dt={DATE}", f"file://{tmp_path}/p/dt=20260102")
    body["options"] = {"seed": {"path": None, "sql": "seed.sql"}}
    assert stage_io("merge", JobConfig.from_body(DATE, body)) is None


def _task(tmp_path: Path, task_id: str):
    from dlflow_airflow.pipeline.build import Pipeline
    from dlflow_airflow.pipeline.factory import build_dag
    from tests.dlflow_airflow.pipelines import base_pipeline

    doc = {**base_pipeline(), "workspace": str(tmp_path)}
    return build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task(task_id)


def _argv(task) -> list[str]:
    return [a.replace("{{ ds }}", DATE) for a in task.application_args]


def test_params_stages_runs_only_the_named_stages(tmp_path: Path):
    from airflow.sdk.exceptions import AirflowSkipException

    from dlflow_airflow.operators.bookkeeping import StageRun

    task = _task(tmp_path, "predict")
    context = {"params": {"force": False, "stages": ["merge", "encode"]}}
    with pytest.raises(AirflowSkipException, match="not in params.stages"):
        StageRun.begin(task, context, "predict", _argv(task))
    context = {"params": {"force": False, "stages": ["predict"]}}
    run = StageRun.begin(task, context, "predict", _argv(task))
    assert not run.decision.skip  # its inputs are missing: the job runs and reports them


def test_params_stages_with_an_unknown_name_fails_clearly(tmp_path: Path):
    from dlflow_airflow.operators.bookkeeping import StageRun

    task = _task(tmp_path, "merge")
    context = {"params": {"force": False, "stages": ["predcit"]}}
    with pytest.raises(ValueError, match=r"params.stages names no stage \['predcit'\]"):
        StageRun.begin(task, context, "merge", _argv(task))
