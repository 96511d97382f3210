"""Skip decisions: complete outputs + unchanged inputs and spec skip; anything else runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlflow_airflow.contract.artifacts import stage_io
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.operators.fingerprints import FINGERPRINT_FILE, decide, record

DATE = "2026-01-02"


def config_for(ws: Path, job: str, options: dict | None = None, **model) -> JobConfig:
    body = {
        "workspace": str(ws),
        "feature": {"tag": "f1", "primary_keys": ["uid"], "labels": ["label"]},
        "model": {"tag": "m1", "name": "dnn", "date": "same", "params": {}, **model},
        "buckets": {},
        "options": options or {},
    }
    return JobConfig.from_body(DATE, body, job=job)


def make_partition(uri: str, files: dict[str, str]) -> Path:
    path = Path(uri.removeprefix("file://"))
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    (path / "_SUCCESS").write_text("")
    return path


@pytest.fixture
def predict_inputs(tmp_path: Path) -> JobConfig:
    config = config_for(tmp_path, "predict", {"batch_size": 64})
    layout = config.layout
    make_partition(layout.encoded("f1", DATE), {"part-0.parquet": "abc"})
    make_partition(layout.femodel("f1", DATE), {"fmap.json": "{}"})
    make_partition(layout.model("m1", DATE), {"model.keras": "weights"})
    return config


def test_missing_output_runs_then_complete_unchanged_output_skips(predict_inputs: JobConfig):
    io = stage_io(predict_inputs)
    first = decide(predict_inputs, io, force=False)
    assert not first.skip and "_SUCCESS" in first.reason
    make_partition(io.writes[0].uri, {"part-0.parquet": "scores"})
    record(predict_inputs, io.writes, first.fingerprint, run_id="r1")
    assert Path(io.writes[0].uri.removeprefix("file://"), FINGERPRINT_FILE).is_file()
    again = decide(predict_inputs, io, force=False)
    assert again.skip and "unchanged" in again.reason and io.writes[0].uri in again.reason
    assert not decide(predict_inputs, io, force=True).skip


def test_changed_input_or_spec_runs_again(predict_inputs: JobConfig):
    io = stage_io(predict_inputs)
    first = decide(predict_inputs, io, force=False)
    make_partition(io.writes[0].uri, {"part-0.parquet": "scores"})
    record(predict_inputs, io.writes, first.fingerprint, run_id="r1")
    # A new model file: the model partition's listing changed.
    make_partition(predict_inputs.layout.model("m1", DATE), {"model.keras": "retrained weights"})
    changed = decide(predict_inputs, io, force=False)
    assert not changed.skip and "changed" in changed.reason
    record(predict_inputs, io.writes, changed.fingerprint, run_id="r2")
    assert decide(predict_inputs, io, force=False).skip
    body = {**predict_inputs.body(), "options": {"batch_size": 8}}
    other_spec = JobConfig.from_body(DATE, body)
    assert not decide(other_spec, stage_io(other_spec), force=False).skip


def test_missing_input_never_skips(tmp_path: Path):
    config = config_for(tmp_path, "predict")
    decision = decide(config, stage_io(config), force=False)
    assert not decision.skip and decision.fingerprint is None


def test_a_fixed_model_date_train_names_what_it_writes(tmp_path: Path):
    # Regression: a fixed model.date made train skip with an empty reason.
    config = config_for(tmp_path, "train", date="2025-12-01")
    io = stage_io(config)
    make_partition(config.layout.encoded("f1", DATE), {"part-0.parquet": "abc"})
    make_partition(config.layout.femodel("f1", "2025-12-01"), {"fmap.json": "{}"})
    model = config.layout.model("m1", "2025-12-01")
    assert [p.uri for p in io.writes] == [model]
    first = decide(config, io, force=False)
    assert not first.skip and model in first.reason
    make_partition(model, {"model.keras": "w"})
    record(config, io.writes, first.fingerprint, run_id="r1")
    again = decide(config, io, force=False)
    assert again.skip and again.reason.endswith(model)


def test_an_unknown_stage_always_runs(tmp_path: Path):
    body = config_for(tmp_path, "predict").body()
    body["stage"] = {"name": "export", "job": None, "needs": ["PREDICT_RESULT"], "produces": []}
    config = JobConfig.from_body(DATE, body)
    decision = decide(config, stage_io(config), force=False)
    assert not decision.skip and "always runs" in decision.reason


def test_a_newly_blessed_champion_makes_the_encode_writing_its_rows_run_again(tmp_path: Path):
    config = config_for(tmp_path, "encode", {"champion": True})
    layout = config.layout
    make_partition(layout.raw("f1", DATE), {"part-0.parquet": "rows"})
    for day in ("2025-12-30", "2025-12-31"):
        make_partition(layout.femodel("f1", day), {"fmap.json": day})
        make_partition(layout.model("m1", day), {"model.keras": day})
    Path(layout.model("m1", "2025-12-30").removeprefix("file://"), "BLESSED").write_text("{}")
    io = stage_io(config)
    assert io.extra_inputs == (layout.model("m1", "2025-12-30"), layout.femodel("f1", "2025-12-30"))
    first = decide(config, io, force=False)
    for out in io.writes:
        make_partition(out.uri, {"part-0.parquet": "encoded"})
    record(config, io.writes, first.fingerprint, run_id="r1")
    assert decide(config, stage_io(config), force=False).skip
    # Another model is blessed since: the champion rows on storage are someone else's.
    Path(layout.model("m1", "2025-12-31").removeprefix("file://"), "BLESSED").write_text("{}")
    io = stage_io(config)
    assert io.extra_inputs[0] == layout.model("m1", "2025-12-31")
    again = decide(config, io, force=False)
    assert not again.skip and "changed" in again.reason
