"""OpenLineage: each stage's input and output datasets, their names, and the Spark parent job.

The stages are the demo pipeline's (built from dags/pipelines/demo_ctr.yaml
over a temporary workspace), run the way Airflow runs them
(``task.execute(context)``) with only the job launch replaced by a fake job
that commits the partitions the real one would; then the OpenLineage
provider's hooks are asked what the stage read and wrote, and the answer is
compared with the partitions of the storage layout, written out here by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from dlflow_airflow.contract.artifacts import Role, stage_io
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.operators.lineage import dataset_naming
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.conftest import DAG_FILES, DAGS_FOLDER, DEMO_PIPELINE
from tests.dlflow_airflow.operators.test_fingerprints import make_partition
from tests.dlflow_airflow.pipelines import base_pipeline

DATE = "2026-01-02"
FEATURE, MODEL = "demo_ctr_v1", "demo_dnn_v1"


# ------------------------------------------------------------------ dataset naming


@pytest.mark.parametrize(
    ("uri", "namespace", "name"),
    [
        ("file:///var/dlflow/raw/TAG=f", "file", "/var/dlflow/raw/TAG=f"),
        ("/var/dlflow/raw/", "file", "/var/dlflow/raw"),
        ("file://localhost/var/dlflow", "file", "/var/dlflow"),
        ("file://nas01/exports/ws", "file://nas01", "/exports/ws"),
        ("hdfs://namenode:8020/ws/raw/TAG=f", "hdfs://namenode:8020", "/ws/raw/TAG=f"),
        ("s3://bucket/ws/raw/", "s3", "ws/raw"),
        ("s3a://bucket/ws/raw", "s3", "ws/raw"),
        ("s3n://bucket/ws", "s3", "ws"),
        ("gs://bucket/ws/model/TAG=m/dt=2026-01-02", "gs", "ws/model/TAG=m/dt=2026-01-02"),
        ("abfss://ml@acct.dfs.core.windows.net/ws", "abfss://ml@acct.dfs.core.windows.net", "/ws"),
        ("s3a://AKIA:secret@bucket/ws", "s3", "ws"),
        ("viewfs://cluster/ws", "viewfs://cluster", "/ws"),
    ],
)
def test_dataset_naming_follows_the_openlineage_naming_spec(uri, namespace, name):
    got_namespace, got_name = dataset_naming(uri)
    assert got_name == name
    # Object stores: the namespace names the bucket.
    expected = f"{namespace}://bucket" if namespace in ("s3", "gs") else namespace
    assert got_namespace == expected
    assert "secret" not in got_namespace + got_name


def test_dataset_naming_agrees_with_the_openlineage_clients_naming_helpers():
    from openlineage.client.naming import dataset as naming

    cases = {
        "file:///ws/raw": naming.LocalFileSystem(path="/ws/raw"),
        "file://nas01/ws": naming.RemoteFileSystem(host="nas01", path="/ws"),
        "hdfs://nn:8020/ws/raw": naming.HDFS(
            namenode_host="nn", namenode_port="8020", path="/ws/raw"
        ),
        "s3a://bucket/ws/raw": naming.S3(bucket_name="bucket", object_key="ws/raw"),
        "gs://bucket/ws/raw": naming.GCS(bucket_name="bucket", object_key="ws/raw"),
    }
    for uri, helper in cases.items():
        assert dataset_naming(uri) == (helper.get_namespace(), helper.get_name()), uri


# ------------------------------------------------------------------ each stage's datasets


def _partition(ws: Path, folder: str, tag: str) -> str:
    return str(ws / folder / f"TAG={tag}" / f"dt={DATE}")


def _demo_expected(ws: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Each demo stage's (inputs, outputs) for a first run: the storage layout, by hand."""
    tables = ("seed", "user_profile", "user_behaviour")
    upstream = {str(ws / "upstream" / table / f"dt={DATE}") for table in tables}
    raw = _partition(ws, "raw", FEATURE)
    encoded, tfrecord = _partition(ws, "encoded", FEATURE), _partition(ws, "tfrecord", FEATURE)
    fmap, model = _partition(ws, "femodel", FEATURE), _partition(ws, "model", MODEL)
    return {
        "demo_data": (set(), upstream),
        "merge": (upstream, {raw}),
        "encode": ({raw}, {encoded, tfrecord, fmap}),
        "train": ({encoded, fmap}, {model}),
        "evaluate": ({encoded, fmap, model}, {_partition(ws, "evaluate", MODEL)}),
        "predict": ({encoded, fmap, model}, {_partition(ws, "predict", MODEL)}),
    }


@pytest.fixture
def demo_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DLFLOW_WORKSPACE", str(tmp_path / "ws"))
    return build_dag(Pipeline.from_file(DEMO_PIPELINE))


def _names(datasets: list[Any]) -> set[str]:
    assert {d.namespace for d in datasets} <= {"file"}
    return {d.name for d in datasets}


def _context(task: Any, **params: Any) -> dict[str, Any]:
    return {
        "params": {"force": False, "stages": [], **params},
        "dag_run": SimpleNamespace(run_id="manual__1"),
        "task": task,
        "outlet_events": None,
    }


def _write_parquet(uri: str, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(uri.removeprefix("file://"))
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"uid": list(range(rows))}), path / "part-0.parquet")
    (path / "_SUCCESS").write_text("")


def _fake_jobs(monkeypatch: pytest.MonkeyPatch, ran: list[str]) -> None:
    """Replace the job launches (spark-submit, the TF subprocess) by jobs that commit what the
    real job commits: the stage's ``write`` partitions and an fmap that is not there yet."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from dlflow_airflow.contract import storage
    from dlflow_airflow.operators.spark import SparkJobOperator
    from dlflow_airflow.runners.process import LocalProcess

    def commit(task: Any) -> dict:
        ran.append(task.task_id)
        io = stage_io(JobConfig.from_body(DATE, task.stage_body))
        for p in io.partitions:
            if p.role == Role.WRITE or (
                p.role == Role.FIT_OR_REUSE and not storage.is_complete(p.uri)
            ):
                if p.tabular:
                    _write_parquet(p.uri, 7)
                else:
                    make_partition(p.uri, {"artifact": "x"})
        return {"ok": True}

    def spark_job(self: Any, context: Any) -> None:
        commit(self)

    def tf_job(self: Any, *args: Any, **kwargs: Any) -> dict:
        return commit(_CURRENT["task"])

    monkeypatch.setattr(SparkSubmitOperator, "execute", spark_job)
    monkeypatch.setattr(LocalProcess, "run", tf_job)
    monkeypatch.setattr(SparkJobOperator, "shipped_py_files", lambda self: None)


_CURRENT: dict[str, Any] = {}  # the task whose TF job runs (LocalProcess.run knows no task)


def _run(task: Any, **params: Any) -> Any:
    task.stage_date = DATE  # what Airflow's template rendering does
    if hasattr(task, "date"):
        task.date = DATE
    _CURRENT["task"] = task
    return task.execute(_context(task, **params))


def test_each_demo_stage_reports_what_it_will_read_and_write_on_start(demo_dag, tmp_path):
    expected = _demo_expected(tmp_path / "ws")
    for task_id, (inputs, outputs) in expected.items():
        task = demo_dag.get_task(task_id)
        task.stage_date = DATE
        lineage = task.get_openlineage_facets_on_start()
        assert (_names(lineage.inputs), _names(lineage.outputs)) == (inputs, outputs), task_id


def test_each_demo_stage_reports_what_it_read_and_wrote_on_complete(
    demo_dag, tmp_path, monkeypatch
):
    ran: list[str] = []
    _fake_jobs(monkeypatch, ran)
    expected = _demo_expected(tmp_path / "ws")
    for task_id, (inputs, outputs) in expected.items():
        task = demo_dag.get_task(task_id)
        _run(task)
        lineage = task.get_openlineage_facets_on_complete(None)
        assert (_names(lineage.inputs), _names(lineage.outputs)) == (inputs, outputs), task_id
    assert ran == list(expected)
    # A written table's row count rides along (the asset event's count).
    merge = demo_dag.get_task("merge").get_openlineage_facets_on_complete(None)
    (raw,) = merge.outputs
    assert raw.outputFacets["outputStatistics"].rowCount == 7


def test_a_reused_fmap_is_an_input_and_a_fitted_one_an_output(demo_dag, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    fmap = _partition(ws, "femodel", FEATURE)
    make_partition(_partition(ws, "raw", FEATURE), {"part-0": "x"})
    make_partition(fmap, {"fmap.json": "{}"})
    _fake_jobs(monkeypatch, [])
    encode = demo_dag.get_task("encode")
    _run(encode)
    lineage = encode.get_openlineage_facets_on_complete(None)
    assert fmap in _names(lineage.inputs) and fmap not in _names(lineage.outputs)
    assert _names(lineage.outputs) == {
        _partition(ws, "encoded", FEATURE),
        _partition(ws, "tfrecord", FEATURE),
    }


def test_a_skipped_stage_wrote_nothing_and_used_what_stands(demo_dag, tmp_path, monkeypatch):
    _fake_jobs(monkeypatch, [])
    for task_id in ("demo_data", "merge"):
        _run(demo_dag.get_task(task_id))
    merge = demo_dag.get_task("merge")
    with pytest.raises(AirflowSkipException, match="unchanged"):
        _run(merge)
    merge._dlflow_lineage = None  # a new try: a fresh operator (what Airflow runs)
    lineage = merge.get_openlineage_facets_on_complete(None)
    assert lineage.outputs == []
    assert _names(lineage.inputs) == {_partition(tmp_path / "ws", "raw", FEATURE)}


def test_a_failed_stage_reports_what_it_was_reading_and_writing(demo_dag, tmp_path):
    train = demo_dag.get_task("train")
    train.stage_date = DATE
    lineage = train.get_openlineage_facets_on_failure(None)
    inputs, outputs = _demo_expected(tmp_path / "ws")["train"]
    assert (_names(lineage.inputs), _names(lineage.outputs)) == (inputs, outputs)


@pytest.mark.parametrize(
    ("runner", "block"),
    [
        ("kubernetes", {"kubernetes": {"image": "dlflow-tf:1"}}),
        ("docker", {"docker": {"image": "x"}}),
    ],
)
def test_container_runners_report_the_same_datasets(tmp_path, runner, block):
    doc = base_pipeline()
    doc["workspace"] = str(tmp_path)
    doc["stages"]["train"] = {"runner": runner, **block}
    train = build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task("train")
    train.stage_date = DATE
    lineage = train.get_openlineage_facets_on_start()
    assert _names(lineage.inputs) == {
        _partition(tmp_path, "encoded", "f1"),
        _partition(tmp_path, "femodel", "f1"),
    }
    assert _names(lineage.outputs) == {_partition(tmp_path, "model", "m1")}


def _sensor_and_user_kind(tmp_path: Path):
    doc = base_pipeline()
    doc["workspace"] = str(tmp_path)
    doc["stages"]["wait"] = {
        "kind": "wait_upstream",
        "dependencies": {
            "seed": {"path": "{workspace}/seed/dt={date}", "degrade_days": 1},
            "region": {"static": "cn"},
        },
    }
    doc["stages"]["export"] = {"kind": "tests.dlflow_airflow.user_stages:Export", "target": "x"}
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    return dag.get_task("wait"), dag.get_task("export")


def test_the_upstream_sensor_reports_the_partitions_it_found(tmp_path):
    sensor, _ = _sensor_and_user_kind(tmp_path)
    # Degraded one day: yesterday's partition is the one found, and the one reported.
    yesterday = make_partition(f"file://{tmp_path}/seed/dt=2026-01-01", {"part-0": "x"})
    sensor.mode, sensor.date, sensor.stage_date = "poke", DATE, DATE
    assert sensor.get_openlineage_facets_on_start() is None  # nothing resolved yet
    _run(sensor)
    lineage = sensor.get_openlineage_facets_on_complete(None)
    assert _names(lineage.inputs) == {str(yesterday)}
    assert lineage.outputs == []


def test_a_user_kind_keeps_its_own_lineage(tmp_path, monkeypatch):
    from airflow.providers.standard.operators.empty import EmptyOperator

    _, export = _sensor_and_user_kind(tmp_path)
    assert isinstance(export, EmptyOperator)
    _run(export)
    # The contract knows no partition of a user kind: its operator answers (EmptyOperator: none).
    assert export.get_openlineage_facets_on_complete(None) is None
    own = object()
    monkeypatch.setattr(
        EmptyOperator, "get_openlineage_facets_on_complete", lambda self, ti: own, raising=False
    )
    assert export.get_openlineage_facets_on_complete(None) is own


# ------------------------------------------------------------------ Spark: the parent job


@pytest.fixture
def openlineage_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenLineage provider enabled on this "worker" (a console transport).

    The provider reads its config afresh under pytest (it caches it elsewhere).
    """
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "console"}))


def _spark_submit_command(task: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The spark-submit command the Spark stage runs: everything but the process launch."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    from dlflow_airflow.operators.spark import SparkJobOperator

    commands: list[list[str]] = []

    def launch(self: SparkSubmitHook, application: str = "", **kwargs: Any) -> None:
        commands.append(self._build_spark_submit_command(application))

    monkeypatch.setattr(SparkSubmitHook, "submit", launch)
    logical = datetime(2026, 1, 2, tzinfo=UTC)
    dag_run = SimpleNamespace(
        conf={}, clear_number=0, logical_date=logical, run_after=logical, run_id="manual__1"
    )
    ti = SimpleNamespace(
        dag_id=task.dag_id,
        task_id=task.task_id,
        try_number=1,
        map_index=-1,
        dag_run=dag_run,
        get_template_context=lambda: {"dag_run": dag_run},
    )
    task.ship_code = False
    task.date = DATE
    # The job's execute without the run bookkeeping (what DlflowSparkSubmitOperator wraps).
    SparkJobOperator.execute(task, {"ti": ti, "dag_run": dag_run})
    (command,) = commands
    return command


def _conf(command: list[str]) -> dict[str, str]:
    pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_a_spark_stage_passes_the_tasks_run_to_the_spark_job(demo_dag, monkeypatch, openlineage_on):
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    from dlflow_airflow.operators.spark import SparkJobOperator

    merge = demo_dag.get_task("merge")
    assert isinstance(merge, SparkJobOperator)
    conf = _conf(_spark_submit_command(merge, monkeypatch))
    run_id = OpenLineageAdapter.build_task_instance_run_id(
        dag_id="dlflow_demo_ctr",
        task_id="merge",
        try_number=1,
        logical_date=datetime(2026, 1, 2, tzinfo=UTC),
        map_index=-1,
    )
    assert conf["spark.openlineage.parentJobNamespace"] == "default"
    assert conf["spark.openlineage.parentJobName"] == "dlflow_demo_ctr.merge"
    assert conf["spark.openlineage.parentRunId"] == run_id
    assert conf["spark.openlineage.rootParentJobName"] == "dlflow_demo_ctr"
    # The pipeline's own conf is still there.
    assert conf["spark.sql.shuffle.partitions"] == "4"


def test_the_parent_job_can_be_turned_off_or_set_by_conf(monkeypatch, openlineage_on):
    from airflow.sdk import DAG

    from dlflow_airflow.operators.spark import SparkJobOperator

    with DAG("d", schedule=None):
        off = SparkJobOperator(
            task_id="off", job="merge", job_body={}, openlineage_inject_parent_job_info=False
        )
        mine = SparkJobOperator(
            task_id="mine", job="merge", job_body={}, conf={"spark.openlineage.parentJobName": "x"}
        )
    conf = _conf(_spark_submit_command(off, monkeypatch))
    assert not any(key.startswith("spark.openlineage") for key in conf)
    conf = _conf(_spark_submit_command(mine, monkeypatch))
    assert conf["spark.openlineage.parentJobName"] == "x"
    assert "spark.openlineage.parentRunId" not in conf


def test_without_openlineage_enabled_no_parent_job_is_passed(demo_dag, monkeypatch):
    from airflow.providers.openlineage import conf

    assert conf.is_disabled()  # no transport configured
    command = _spark_submit_command(demo_dag.get_task("merge"), monkeypatch)
    assert not any(key.startswith("spark.openlineage") for key in _conf(command))


# ------------------------------------------------------------------ optional, never at parse time

_WITHOUT_OPENLINEAGE = """
import importlib, importlib.metadata, importlib.util, sys

# As if never installed: no distribution (so no Airflow provider entry point), no module.
HIDDEN = ("apache-airflow-providers-openlineage", "openlineage-")
PROVIDER = "airflow.providers.openlineage"

def hidden(name):
    return name.split(".")[0] == "openlineage" or name.startswith(PROVIDER)

class NoOpenLineage:
    def find_spec(self, name, path=None, target=None):
        if hidden(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

def without(distributions):
    def visible(*args, **kwargs):
        for dist in distributions(*args, **kwargs):
            if not (dist.metadata["Name"] or "").lower().replace("_", "-").startswith(HIDDEN):
                yield dist
    return visible

for metadata in (importlib.metadata, importlib.import_module("importlib_metadata")):
    metadata.distributions = without(metadata.distributions)
sys.meta_path.insert(0, NoOpenLineage())
dags = []
for name in sys.argv[2:]:
    spec = importlib.util.spec_from_file_location(name[:-3], f"{sys.argv[1]}/{name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags += [key for key, value in vars(module).items() if type(value).__name__ == "DAG"]
assert "dlflow_demo_ctr" in dags, dags
from dlflow_airflow.operators.lineage import openlineage_active
from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator
assert not openlineage_active()
assert not [m for m in sys.modules if hidden(m)]
print("ok")
"""


def test_the_provider_works_without_the_openlineage_provider(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OPENLINEAGE, str(DAGS_FOLDER), *DAG_FILES],
        capture_output=True,
        text=True,
        env={**os.environ, "DLFLOW_WORKSPACE": str(tmp_path)},
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
