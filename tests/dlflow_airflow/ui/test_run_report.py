"""A run's report from its stage records and the partitions the contract names."""

from __future__ import annotations

import json
from pathlib import Path

from dlflow_airflow.contract.artifacts import METRICS_FILE
from dlflow_airflow.contract.fmap import FMAP_FILE
from dlflow_airflow.contract.layout import Layout
from dlflow_airflow.ui.run_report import RunTasks, TaskRun, build_report, plot_uri
from tests.dlflow_airflow.ui import workspace as ws
from tests.dlflow_airflow.ui.workspace import DATE


def test_a_complete_run_shows_every_stage_and_what_its_partitions_hold(tmp_path: Path):
    p = ws.pipeline(tmp_path)
    ws.write_run(p)
    report = build_report(ws.run_tasks(p))
    assert [s.task_id for s in report.stages] == list(p.order)
    assert {part.status for s in report.stages for part in s.partitions} == {"ok"}
    layout = Layout(str(tmp_path))
    (evaluation,) = report.evaluations
    assert evaluation.partition == layout.evaluate("m1", DATE)
    metrics = json.loads(Path(tmp_path, "evaluate/TAG=m1/dt=2026-01-02", METRICS_FILE).read_text())
    assert evaluation.metrics["auc"] == metrics["auc"]
    assert evaluation.plots == ("roc.png", "pr.png", "calibration.png")
    assert evaluation.gate["blessed"] is True
    (drift,) = report.drifts
    assert drift.partition == layout.encoded("f1", DATE)
    assert [f["feature"] for f in drift.doc["features"]] == ["city", "age"]
    (fmap,) = report.fmaps
    assert fmap.partition == layout.femodel("f1", DATE)
    assert fmap.fmap.feature("city").meta["vocab"] == ws.CITIES
    assert fmap.normalizers.of("user", "age") == {"min": [18.0], "max": [80.0]}
    (model,) = report.models
    assert model.partition == layout.model("m1", DATE) and model.blessed
    assert model.manifest["task"] == "binary"


def test_skipped_and_gate_blocked_stages_say_why(tmp_path: Path):
    p = ws.pipeline(tmp_path)
    ws.write_run(p, blessed=False)
    # Predict never wrote: it stopped at the gate.
    predict = Path(tmp_path, "predict/TAG=m1/dt=2026-01-02/_SUCCESS")
    predict.unlink()
    skipped = "skipping merge for 2026-01-02: outputs complete and inputs + spec unchanged"
    blocked = "predict blocked by gate: model ... missed the gate"
    run = ws.run_tasks(p, {"merge": "skipped", "predict": "failed"}, merge=skipped, predict=blocked)
    report = build_report(run)
    stages = {s.task_id: s for s in report.stages}
    assert (stages["merge"].state, stages["merge"].reason) == ("skipped", skipped)
    assert stages["predict"].state == "failed"
    (part,) = stages["predict"].partitions
    assert part.status == "blocked" and part.label == "blocked by gate"
    assert "missed the gate (auc 0.4000 < min 0.9)" in part.where
    (evaluation,) = report.evaluations
    assert evaluation.gate["missed"] == ["auc 0.4000 < min 0.9"]
    assert not report.models[0].blessed


def test_a_task_not_started_shows_the_partitions_it_would_write(tmp_path: Path):
    p = ws.pipeline(tmp_path)
    record = ws.records(p, "2025-12-01")["predict"]  # its record in an earlier run
    run = RunTasks(
        p.spec.dag_id,
        "r1",
        "failed",
        (
            TaskRun("merge", "failed", ws.records(p)["merge"]),
            TaskRun("predict", "upstream_failed", record, borrowed=True),
            TaskRun("approve", None),
        ),
        DATE,
    )
    report = build_report(run)
    predict = report.stages[1]
    (part,) = predict.partitions
    assert part.uri == Layout(str(tmp_path)).predict("m1", DATE)  # this run's date
    # No model was judged for this date: the gate would stop it.
    assert part.status == "blocked" and "was not judged" in part.where
    assert predict.reason == "" and "not started" in predict.note
    approve = report.stages[2]  # not a stage task: no record in any run
    assert (approve.state, approve.partitions, approve.note) == ("no status", (), "")


def test_unreadable_files_are_notes_not_errors(tmp_path: Path):
    p = ws.pipeline(tmp_path)
    ws.write_run(p)
    Path(tmp_path, "femodel/TAG=f1/dt=2026-01-02", FMAP_FILE).write_text("{not json")
    Path(tmp_path, "evaluate/TAG=m1/dt=2026-01-02", METRICS_FILE).write_text("[1, 2]")
    report = build_report(ws.run_tasks(p))
    assert "cannot read" in report.fmaps[0].note and report.fmaps[0].fmap is None
    assert "holds no JSON object" in report.evaluations[0].note
    stages = {s.task_id: s for s in report.stages}
    assert stages["merge"].partitions[0].status == "ok"
    assert stages["evaluate"].note.startswith("partition states unknown")


def test_a_broken_record_hides_only_its_own_stage(tmp_path: Path):
    p = ws.pipeline(tmp_path)
    ws.write_run(p)
    run = ws.run_tasks(p)
    broken = TaskRun("merge", "success", type(run.tasks[0].record)(DATE, {"workspace": 1}))
    report = build_report(RunTasks(run.dag_id, run.run_id, run.state, (broken, *run.tasks[1:])))
    assert report.stages[0].note.startswith("partitions unknown")
    assert report.stages[1].partitions


def test_plots_are_served_only_from_the_stages_evaluate_partition_by_listed_name(tmp_path: Path):
    p = ws.pipeline(tmp_path)
    ws.write_run(p)
    run = ws.run_tasks(p)
    partition = Layout(str(tmp_path)).evaluate("m1", DATE)
    assert plot_uri(run, "evaluate", "roc.png") == f"{partition}/roc.png"
    # metrics.json's own plot list decides: a file evaluate did not list is no plot.
    Path(tmp_path, "evaluate/TAG=m1/dt=2026-01-02/other.png").write_bytes(b"\x89PNG")
    for stage, name in (
        ("evaluate", "other.png"),
        ("evaluate", "../evaluate/roc.png"),
        ("evaluate", "..%2Froc.png"),
        ("evaluate", "metrics.json"),
        ("evaluate", ".."),
        ("predict", "roc.png"),  # not an evaluate stage
        ("nope", "roc.png"),
    ):
        assert plot_uri(run, stage, name) is None, (stage, name)


def test_a_forged_plot_list_cannot_leave_the_partition(tmp_path: Path):
    p = ws.pipeline(tmp_path)
    ws.write_run(p)
    metrics = Path(tmp_path, "evaluate/TAG=m1/dt=2026-01-02", METRICS_FILE)
    doc = json.loads(metrics.read_text())
    doc["plots"] = ["../../model/TAG=m1/dt=2026-01-02/x.png", "/etc/passwd.png", "roc.png"]
    metrics.write_text(json.dumps(doc))
    run = ws.run_tasks(p)
    assert build_report(run).evaluations[0].plots == ("roc.png",)
    assert plot_uri(run, "evaluate", "../../model/TAG=m1/dt=2026-01-02/x.png") is None
    assert plot_uri(run, "evaluate", "/etc/passwd.png") is None
