"""The demo DAG on a running Airflow: REST trigger, rerun, backfill, and the UI's Trigger button.

A real Airflow (api-server, scheduler, dag-processor; PostgreSQL; LocalExecutor)
on 127.0.0.1 parses a copy of the project's ``dags/`` in which the demo
pipeline is made smaller (fewer rows, one epoch) to keep the suite quick.
The scheduler's own cron runs are off (``use_job_schedule``): every run here
is one the test asked for. The tests share one Airflow and run in order.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import DAG_FILES, DAGS_FOLDER, DEMO_PIPELINE
from tests.e2e.airflow import run_report, running_airflow, task_states

pytestmark = pytest.mark.e2e

DAG_ID = "dlflow_demo_ctr"
FEATURE_TAG = "demo_ctr_v1"
MODEL_TAG = "demo_dnn_v1"
ROWS = 2000
# The REST trigger (like the UI's) runs for "now": today's partition. The
# backfill covers the two days before and today again, whose stages then skip
# as up to date, as do those of the UI's run: three full pipeline runs in all.
NOW = datetime.now(UTC)
FIRST = NOW.date().isoformat()
BACKFILL = tuple((NOW.date() - timedelta(days=n)).isoformat() for n in (2, 1, 0))
DATED_OUTPUTS = (
    f"raw/TAG={FEATURE_TAG}",
    f"encoded/TAG={FEATURE_TAG}",
    f"tfrecord/TAG={FEATURE_TAG}",
    f"femodel/TAG={FEATURE_TAG}",
    f"model/TAG={MODEL_TAG}",
    f"evaluate/TAG={MODEL_TAG}",
    f"predict/TAG={MODEL_TAG}",
)


def _small_demo(folder: Path) -> None:
    (folder / "pipelines").mkdir(parents=True)
    for dag_file in DAG_FILES:
        shutil.copy(DAGS_FOLDER / dag_file, folder)
    text = DEMO_PIPELINE.read_text()
    for old, new in (("rows: 20000", f"rows: {ROWS}"), ("epochs: 4", "epochs: 1")):
        assert old in text, f"{DEMO_PIPELINE} no longer holds {old!r}"
        text = text.replace(old, new)
    (folder / "pipelines" / "demo_ctr.yaml").write_text(text)
    broken = text.replace(f"dag_id: {DAG_ID}", "dag_id: broken_one")
    broken = broken.replace("tfrecord: true", "tfrecords: true")
    (folder / "pipelines" / "broken.yaml").write_text(broken)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Iterator:
    with running_airflow(tmp_path_factory.mktemp("airflow-server"), DAG_ID, _small_demo) as server:
        yield server


def _partition(server, output: str, date: str) -> Path:
    return server.workspace / output / f"dt={date}"


def _predictions(server, date: str) -> list[tuple]:
    import pyarrow.dataset as ds

    table = ds.dataset(_partition(server, f"predict/TAG={MODEL_TAG}", date), format="parquet")
    return sorted(zip(*table.to_table(columns=["uid", "score"]).to_pydict().values(), strict=True))


def _task_states(server, run_id: str) -> dict[str, str]:
    return task_states(server, DAG_ID, run_id)


def _failure_detail(server, run: dict) -> str:
    """The run, its task states and the end of each failed task's log."""
    return f"{run}\n{run_report(server, DAG_ID, run['dag_run_id'])}"


def _assert_complete(server, date: str) -> None:
    for output in DATED_OUTPUTS:
        part = _partition(server, output, date)
        assert (part / "_SUCCESS").is_file(), f"{part} has no _SUCCESS"
        assert (part / "_FINGERPRINT.json").is_file(), f"{part} has no fingerprint"


def _no_half_partitions(server) -> None:
    leftovers = [p for p in server.workspace.rglob("_staging/*")]
    assert leftovers == []


def test_broken_yaml_is_an_import_error_and_the_good_dag_loads(airflow):
    (error,) = airflow.api("GET", "/importErrors")["import_errors"]
    assert error["filename"].endswith("dlflow_pipeline_errors.py")
    assert "broken.yaml: stages.encode.tfrecords: unknown key" in error["stack_trace"]
    assert airflow.api("GET", f"/dags/{DAG_ID}")["is_paused"] is False


def test_rest_trigger_runs_the_dag(airflow):
    run = airflow.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        {"logical_date": NOW.isoformat(), "conf": {"force": True}},
    )
    done = airflow.wait_for_run(DAG_ID, run["dag_run_id"])
    assert done["state"] == "success", _failure_detail(airflow, done)
    _assert_complete(airflow, FIRST)
    assert len(_predictions(airflow, FIRST)) == ROWS
    airflow.first_run_id = run["dag_run_id"]


def test_cleared_task_reruns_to_the_same_rows(airflow):
    before = _predictions(airflow, FIRST)
    part = _partition(airflow, f"predict/TAG={MODEL_TAG}", FIRST)
    files_before = sorted(p.name for p in part.glob("*.parquet"))
    run_id = airflow.first_run_id
    airflow.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        {"dag_run_id": run_id, "task_ids": ["predict"], "only_failed": False, "dry_run": False},
    )
    done = airflow.wait_for_run(DAG_ID, run_id)
    assert done["state"] == "success", _failure_detail(airflow, done)
    assert _task_states(airflow, run_id)["predict"] == "success"
    # The run's conf says force: the job really ran again (new part files) ...
    assert sorted(p.name for p in part.glob("*.parquet")) != files_before
    # ... and replaced the partition whole: same rows, no duplicate, no leftovers.
    after = _predictions(airflow, FIRST)
    assert after == before
    assert len({uid for uid, _ in after}) == ROWS
    assert (part / "_SUCCESS").is_file()
    _no_half_partitions(airflow)


def test_backfill_writes_one_partition_per_date(airflow):
    # On PostgreSQL the first request creates the backfill: no retry (SQLite's lock) hides
    # a refusal here.
    assert airflow.database == "postgres"
    backfill = airflow.api(
        "POST",
        "/backfills",
        {
            "dag_id": DAG_ID,
            "from_date": f"{BACKFILL[0]}T00:00:00Z",
            "to_date": f"{BACKFILL[-1]}T00:00:00Z",
            "max_active_runs": 1,
            "reprocess_behavior": "completed",
            "dag_run_conf": {},
        },
    )
    runs = airflow.wait_for_backfill(backfill["id"])
    by_date = {run["logical_date"][:10]: run for run in runs}
    assert sorted(by_date) == list(BACKFILL)
    for date, run in by_date.items():
        assert run["state"] == "success", _failure_detail(airflow, run)
        _assert_complete(airflow, date)
        assert len(_predictions(airflow, date)) == ROWS
    # Today was already complete with unchanged inputs: every stage skipped.
    states = _task_states(airflow, by_date[FIRST]["dag_run_id"])
    assert set(states.values()) == {"skipped"}, states
    _no_half_partitions(airflow)


def test_asset_events_carry_the_partition_date_and_rows(airflow):
    answer = airflow.api("GET", f"/assets/events?source_dag_id={DAG_ID}&limit=200")
    events = [e for e in answer["asset_events"] if e["uri"].endswith(f"predict/TAG={MODEL_TAG}")]
    by_date = {e["extra"].get("date"): e["extra"] for e in events}
    for date in BACKFILL:
        assert by_date[date]["rows"] == ROWS
        assert by_date[date]["partition"].endswith(f"predict/TAG={MODEL_TAG}/dt={date}")
    models = [e for e in answer["asset_events"] if e["uri"].endswith(f"model/TAG={MODEL_TAG}")]
    assert {e["extra"]["date"] for e in models} >= set(BACKFILL)


def test_ui_trigger_button_starts_a_successful_run(airflow, tmp_path):
    from tests.e2e.browser import trigger_from_ui

    before = {r["dag_run_id"] for r in _runs(airflow)}
    trigger_from_ui(airflow.url, DAG_ID, tmp_path / "chromium-profile")
    new = [r for r in _runs(airflow) if r["dag_run_id"] not in before]
    assert len(new) == 1, new
    assert new[0]["run_type"] == "manual"
    done = airflow.wait_for_run(DAG_ID, new[0]["dag_run_id"])
    assert done["state"] == "success", _failure_detail(airflow, done)
    _assert_complete(airflow, done["logical_date"][:10])


def test_the_database_password_is_in_no_log(airflow):
    password = (airflow.home / "postgres" / "password").read_text().strip()
    logs = [p for p in (airflow.home / "logs").rglob("*") if p.is_file()]
    assert logs
    leaked = [str(p) for p in logs if password in p.read_text(errors="replace")]
    assert leaked == []


def test_the_run_report_in_the_ui(airflow, tmp_path):
    """A task's extra link opens the report tab of its run in the UI: the metric values,
    the rendered plots and the fmap of the finished run (the DLFlow report plugin)."""
    import json
    from urllib.parse import quote

    from tests.e2e.browser import read_run_report

    run = quote(airflow.first_run_id, safe="")
    answer = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run}/taskInstances/evaluate/links")
    link = answer["extra_links"]["DLFlow run report"]
    assert link == f"{airflow.url}/dags/{DAG_ID}/runs/{run}/plugin/dlflow-report"
    shown = read_run_report(link, tmp_path / "chromium-profile")
    assert shown["url"] == f"/dlflow/dags/{DAG_ID}/runs/{run}"  # the tab's iframe

    evaluated = _partition(airflow, f"evaluate/TAG={MODEL_TAG}", FIRST)
    metrics = json.loads((evaluated / "metrics.json").read_text())
    for name in ("auc", "pr_auc", "log_loss", "accuracy"):
        assert shown["metrics"][name] == (repr(metrics[name]), f"{metrics[name]:.4f}"), name
    assert shown["metrics"]["rows"] == (str(ROWS), str(ROWS))
    assert shown["plots"].keys() == {"roc.png", "pr.png", "calibration.png"}
    assert all(width > 0 for width in shown["plots"].values()), shown["plots"]  # rendered
    fmap = json.loads(
        (_partition(airflow, f"femodel/TAG={FEATURE_TAG}", FIRST) / "fmap.json").read_text()
    )
    features = {f["name"] for b in fmap["buckets"] for f in b["nums"] + b["ctgs"]}
    assert {row[3] for row in shown["fmap"]} == features


def test_the_run_report_says_why_stages_skipped(airflow):
    """The backfill's run of today found every output complete and unchanged."""
    import urllib.request
    from urllib.parse import quote

    (run,) = [
        r for r in _runs(airflow) if r["run_type"] == "backfill" and r["logical_date"][:10] == FIRST
    ]
    page = f"{airflow.url}/dlflow/dags/{DAG_ID}/runs/{quote(run['dag_run_id'], safe='')}"
    # This Airflow makes every user an admin: who may see a report is tests/dlflow_airflow/ui's.
    request = urllib.request.Request(page, headers={"Authorization": f"Bearer {airflow.token()}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        html = response.read().decode()
    assert html.count("<span class='state state-skipped'>skipped</span>") == 6
    assert html.count("outputs complete and inputs + spec unchanged") == 6
    assert "MISSING" not in html


def _runs(server) -> list[dict]:
    return server.api("GET", f"/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]
