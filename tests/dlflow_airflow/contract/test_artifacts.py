"""The artifact contract: tags, roles, the model-date rule and the partitions of a run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dlflow_airflow.contract.artifacts import (
    CHAMPION_FEATURE,
    ENCODING_FILE,
    FMAP,
    TRAINED_MODEL,
    ChampionRecord,
    ContractError,
    Role,
    encoding_record,
    job_tags,
    stage_io,
    stage_roles,
)
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.model_resolution import (
    ModelNotBlessedError,
    ModelNotFoundError,
    blessed_marker,
)
from dlflow_airflow.contract.options import EncodeOptions
from dlflow_airflow.devtools.report import render
from dlflow_airflow.operators.bookkeeping import StageRun
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.errors import SpecError
from dlflow_airflow.pipeline.factory import build_dag
from dlflow_airflow.stages.builtin import BUILTIN_KINDS
from tests.dlflow_airflow.operators.test_fingerprints import make_partition
from tests.dlflow_airflow.pipelines import base_pipeline

DATE = "2026-01-09"
REPO = Path(__file__).resolve().parents[3]


def _roles(job: str, mode: str, **options: Any) -> dict[str, Role]:
    opts = BUILTIN_KINDS[job].Options.model_validate(options)
    tags = job_tags(job, opts)
    return {r.tag: r.role for r in stage_roles(tags.needs, tags.produces, mode, opts)}


def test_stage_kinds_take_their_tags_from_the_contract():
    pipeline = Pipeline.from_data(base_pipeline(), source="p.yaml")
    for name, stage in pipeline.stages.items():
        tags = job_tags(stage.kind.job, stage.options)
        assert (stage.needs, stage.produces) == (tags.needs, tags.produces), name


def test_fmap_roles_follow_model_date_and_refit():
    assert _roles("encode", "same")[FMAP] == Role.FIT_OR_REUSE
    assert _roles("encode", "2026-01-01")[FMAP] == Role.FIT_OR_REUSE
    assert _roles("encode", "latest")[FMAP] == Role.REUSE
    assert _roles("encode", "same", refit=True)[FMAP] == Role.WRITE
    assert _roles("train", "2026-01-01")[TRAINED_MODEL] == Role.WRITE
    assert _roles("predict", "latest") == {
        "ENCODED_FEATURE": Role.READ,
        FMAP: Role.READ,
        TRAINED_MODEL: Role.READ,
        "PREDICT_RESULT": Role.WRITE,
    }


def test_the_champion_rows_are_run_dated_written_by_encode_read_by_evaluate():
    gate = {"auc": {"max_drop_vs_blessed": 0.01}}
    assert _roles("encode", "latest", champion=True, tfrecord=True)[CHAMPION_FEATURE] == Role.WRITE
    assert _roles("evaluate", "same", gate=gate)[CHAMPION_FEATURE] == Role.READ
    assert CHAMPION_FEATURE not in _roles("evaluate", "same", gate={"auc": {"min": 0.5}})
    assert CHAMPION_FEATURE not in _roles("encode", "same")


def test_a_champion_record_reads_back(tmp_path: Path):
    folder = make_partition(f"file://{tmp_path}/champion/TAG=m1/dt={DATE}", {})
    uri = f"file://{folder}"
    with pytest.raises(ContractError, match="no champion record at .*_ENCODING.json"):
        ChampionRecord.read(uri)
    found = ChampionRecord("2026-01-01", "file:///m", "file:///f", "abc")
    (folder / ENCODING_FILE).write_text(found.to_json())
    assert ChampionRecord.read(uri) == found
    (folder / ENCODING_FILE).write_text(ChampionRecord(None, reason="the first").to_json())
    assert ChampionRecord.read(uri).model_date is None


@pytest.mark.parametrize("job,options", [("train", {}), ("encode", {"refit": True})])
def test_a_stage_that_must_write_a_model_dated_artifact_refuses_latest(job, options):
    with pytest.raises(ContractError, match="'same'"):
        _roles(job, "latest", **options)


@pytest.mark.parametrize(
    "stage,options,tag",
    [("train", {}, "TRAINED_MODEL"), ("encode", {"refit": True}, "FMAP")],
)
def test_validate_refuses_latest_with_a_writer_naming_the_key_and_fix(stage, options, tag):
    # Regression: this passed validate and failed at run time (encode / train traceback).
    doc = base_pipeline()
    doc["model"]["date"] = "latest"
    doc["stages"] = {"merge": doc["stages"]["merge"], "encode": {}, "predict": {}}
    doc["stages"][stage] = options
    with pytest.raises(SpecError) as info:
        Pipeline.from_data(doc, source="p.yaml")
    message = str(info.value)
    assert f"p.yaml: model.date: stage {stage!r}" in message
    assert tag in message and "'same'" in message and "YYYY-MM-DD" in message


def _config(ws: Path, job: str, mode: str = "latest", **options: Any) -> JobConfig:
    body = {
        "workspace": str(ws),
        "feature": {"tag": "f1", "primary_keys": ["uid"], "labels": ["label"]},
        "model": {"tag": "m1", "date": mode},
        "options": options,
    }
    return JobConfig.from_body(DATE, body, job=job)


def _model(ws: Path, day: str, *, blessed: bool) -> None:
    uri = make_partition(f"file://{ws}/model/TAG=m1/dt={day}", {"model.keras": day})
    make_partition(f"file://{ws}/femodel/TAG=f1/dt={day}", {"fmap.json": day})
    if blessed:
        Path(blessed_marker(str(uri))).write_text("")


def test_latest_is_the_newest_blessed_model_and_its_fmap_for_every_stage(tmp_path: Path):
    _model(tmp_path, "2026-01-01", blessed=True)
    _model(tmp_path, "2026-01-04", blessed=True)
    _model(tmp_path, "2026-01-08", blessed=False)  # missed its gate
    _model(tmp_path, "2026-01-11", blessed=True)  # after the run date
    for job in ("encode", "evaluate", "predict"):
        io = stage_io(_config(tmp_path, job))
        assert io.get(FMAP).date == "2026-01-04", job
        assert io.get(FMAP).role == (Role.REUSE if job == "encode" else Role.READ)
        if job != "encode":
            assert io.get(TRAINED_MODEL).uri == f"file://{tmp_path}/model/TAG=m1/dt=2026-01-04"


def test_latest_without_a_blessed_model_names_the_folder_and_the_unblessed(tmp_path: Path):
    _model(tmp_path, "2026-01-08", blessed=False)
    with pytest.raises(ModelNotFoundError, match=r"model/TAG=m1 dated on or before.*2026-01-08"):
        stage_io(_config(tmp_path, "encode"))


def test_encode_with_tfrecord_writes_them_and_merge_lists_its_inputs(tmp_path: Path):
    io = stage_io(_config(tmp_path, "encode", "same", tfrecord=True))
    assert [p.folder for p in io.writes] == ["encoded", "tfrecord"]
    assert isinstance(_config(tmp_path, "encode", "same").options, EncodeOptions)
    merge = _config(tmp_path, "merge", "same", seed={"path": "{workspace}/s/dt={date_nodash}"})
    assert stage_io(merge).extra_inputs == (f"file://{tmp_path}/s/dt=20260109",)
    sql = _config(tmp_path, "merge", "same", seed={"sql": "seed.sql"})
    assert not stage_io(sql).known


def _scoring_pipeline(ws: Path) -> Pipeline:
    for name in ("ctr_daily_predict.yaml", "common/ctr_base.yaml"):  # the file and its base
        doc = (REPO / "dags/pipelines" / name).read_text()
        doc = doc.replace("${DLFLOW_WORKSPACE:-/tmp/dlflow-workspace}", str(ws))
        (ws / name).parent.mkdir(exist_ok=True)
        (ws / name).write_text(doc)
    return Pipeline.from_file(ws / "ctr_daily_predict.yaml")


def test_daily_scoring_with_latest_declares_no_fmap_asset(tmp_path: Path):
    # Regression: encode announced dlflow.femodel.<tag> although it only reuses the fmap.
    dag = build_dag(_scoring_pipeline(tmp_path))
    names = {t.task_id: sorted(a.name for a in t.outlets) for t in dag.tasks}
    assert names["encode"] == ["dlflow.encoded.ctr_weekly_v1"]
    assert names["predict"] == ["dlflow.predict.ctr_weekly_dnn"]


def test_report_says_reused_not_missing_for_a_latest_scoring_run(tmp_path: Path):
    # Regression: the reused fmap was printed "MISSING" and the run "did not complete".
    pipeline = _scoring_pipeline(tmp_path)
    ws = f"file://{tmp_path}"
    model = make_partition(f"{ws}/model/TAG=ctr_weekly_dnn/dt=2026-01-04", {"model.keras": "w"})
    Path(blessed_marker(str(model))).write_text("")
    make_partition(f"{ws}/femodel/TAG=ctr_weekly_v1/dt=2026-01-04", {"fmap.json": "{}"})
    for folder, tag in [("raw", "ctr_weekly_v1"), ("encoded", "ctr_weekly_v1")]:
        make_partition(f"{ws}/{folder}/TAG={tag}/dt={DATE}", {"part-0": "x"})
    for table in ("seed", "user_profile", "user_behaviour"):
        make_partition(f"{ws}/upstream/{table}/dt={DATE}", {"part-0": "x"})
    text, complete = render(pipeline, DATE)
    assert not complete and "MISSING" in text  # predict has not run yet
    make_partition(f"{ws}/predict/TAG=ctr_weekly_dnn/dt={DATE}", {"part-0": "x"})
    text, complete = render(pipeline, DATE)
    assert complete, text
    assert "MISSING" not in text
    assert "reused 2026-01-04" in text and "femodel" in text


class _Events(dict):
    """Airflow's outlet event accessors, as far as the bookkeeping uses them."""

    def __missing__(self, key: Any) -> Any:
        event = SimpleNamespace(extra={}, added=[])
        event.add = lambda asset, extra: event.added.append((asset.name, extra))
        self[key] = event
        return event


def _encode_task(tmp_path: Path, mode: str):
    doc = base_pipeline()
    doc["workspace"] = str(tmp_path)
    doc["model"]["date"] = mode
    doc["external"] = ["TRAINED_MODEL"]
    doc["stages"] = {"merge": doc["stages"]["merge"], "encode": {}, "predict": {}}
    task = build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task("encode")
    task.stage_date = DATE
    return task


@pytest.mark.parametrize("fitted", [True, False])
def test_asset_events_only_for_what_the_run_wrote(tmp_path: Path, fitted: bool):
    task = _encode_task(tmp_path, "2026-01-01")
    make_partition(f"file://{tmp_path}/raw/TAG=f1/dt={DATE}", {"part-0": "x"})
    fmap = f"file://{tmp_path}/femodel/TAG=f1/dt=2026-01-01"
    if not fitted:
        make_partition(fmap, {"fmap.json": "{}"})
    events = _Events()
    context = {"params": {}, "task": task, "outlet_events": events, "dag_run": None}
    run = StageRun.begin(task, context)
    make_partition(f"file://{tmp_path}/encoded/TAG=f1/dt={DATE}", {"part-0": "x"})
    if fitted:
        make_partition(fmap, {"fmap.json": "{}"})
    run.finish(context)
    by_name = {getattr(k, "name", None): v for k, v in events.items()}
    assert by_name["dlflow.encoded.f1"].extra["partition"].endswith(f"dt={DATE}")
    alias = by_name.get("dlflow.femodel.f1.written")
    if fitted:
        assert alias.added == [
            ("dlflow.femodel.f1", {"date": DATE, "partition": fmap, "model_date": "2026-01-01"})
        ]
    else:
        assert alias is None or alias.added == []


def test_readers_use_the_model_that_encoded_the_partition(tmp_path: Path):
    # Regression (review): encode and predict each resolved "latest" on their own, so a
    # model blessed between the two made predict score data encoded with another fmap.
    _model(tmp_path, "2026-01-04", blessed=True)
    encode = _config(tmp_path, "encode")
    fmap = stage_io(encode).get(FMAP)
    encoded = make_partition(encode.layout.encoded("f1", DATE), {"part-0.parquet": "x"})
    (encoded / ENCODING_FILE).write_text(encoding_record(fmap, "abc"))
    _model(tmp_path, "2026-01-06", blessed=True)  # blessed after encode ran
    assert stage_io(_config(tmp_path, "encode")).get(FMAP).date == "2026-01-06"
    for job in ("evaluate", "predict"):
        assert stage_io(_config(tmp_path, job)).get(TRAINED_MODEL).date == "2026-01-04", job
    # The model lost its blessing since: predict refuses it, evaluate (the judge) may rejudge.
    Path(blessed_marker(f"{tmp_path}/model/TAG=m1/dt=2026-01-04")).unlink()
    with pytest.raises(ModelNotBlessedError, match="no longer blessed"):
        stage_io(_config(tmp_path, "predict"))
    assert stage_io(_config(tmp_path, "evaluate")).get(TRAINED_MODEL).date == "2026-01-04"
