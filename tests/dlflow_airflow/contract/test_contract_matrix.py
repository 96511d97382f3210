"""The contract, the factory, the bookkeeping, ``report`` and the jobs agree, on real jobs.

Every built-in stage runs for ``model.date`` same, a fixed date and latest,
with TFRecords off and on, on a tiny demo day. Each task is executed the way
Airflow executes it (template rendering, then ``execute``: the bookkeeping
mixin around the backend), with only the process boundary replaced: the
spark-submit / subprocess launch runs the same job module in this process
(real Spark, real TensorFlow). For every task this asserts that

- the outlets the factory wired are the contract's written partitions;
- the partitions the job committed are exactly the contract's writes (plus
  an fmap it had to fit), and nothing else changed in the workspace;
- the fingerprints the bookkeeping recorded sit in exactly those partitions;

and after each pipeline run that ``report`` lists the contract's partitions,
each ``ok`` or ``reused <date>``, and calls the run complete.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dlflow_airflow.contract.artifacts import Role, asset_name, stage_io
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.devtools.report import render, stage_partitions
from dlflow_airflow.operators.fingerprints import stored_fingerprint
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag

pytestmark = [pytest.mark.spark, pytest.mark.tf]
logging.getLogger("py4j").setLevel(logging.WARNING)

FIXED = "2025-12-31"
D1, D2, D3 = "2026-01-01", "2026-01-02", "2026-01-03"
PARAMS = {"hidden_units": [8], "embedding_dim": 4, "epochs": 1, "batch_size": 64}


@pytest.fixture(scope="module")
def spark() -> Any:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from spark_jobs.session import build_session

    conf = {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}
    return build_session("dlflow-contract-matrix", {"spark.master": "local[2]", **conf})


def _pipeline(ws: Path, mode: str, tfrecord: bool) -> Pipeline:
    model_tag = "m_fixed" if mode == FIXED else "m1"
    tf_input = {"input": "tfrecord"} if tfrecord else {}
    stages: dict[str, Any] = {
        "demo_data": {"rows": 300},
        "merge": {
            "needs": ["DEMO_UPSTREAM"],
            "seed": {"path": "{workspace}/upstream/seed/dt={date}"},
            "sources": [
                {"name": t, "path": f"{{workspace}}/upstream/{t}/dt={{date}}"}
                for t in ("user_profile", "user_behaviour")
            ],
        },
        "encode": {"tfrecord": tfrecord},
        "evaluate": {**tf_input},
        "predict": {},
    }
    if mode != "latest":
        stages["train"] = {**tf_input, "shuffle": False}
    doc = {
        "dag_id": f"matrix_{mode.replace('-', '_')}_{int(tfrecord)}",
        "start_date": "2025-12-01",
        "workspace": str(ws),
        "feature": {"tag": "f1", "primary_keys": ["uid"], "labels": ["label"]},
        "model": {"tag": model_tag, "date": mode, "params": PARAMS},
        "buckets": {"user": {"features": ["age", "income", "city", "device"]}},
        "external": ["TRAINED_MODEL"] if mode == "latest" else [],
        "stages": stages,
    }
    return Pipeline.from_data(doc, source=f"{doc['dag_id']}.yaml")


def _complete_partitions(ws: Path) -> dict[str, tuple[int, int]]:
    """Every committed partition -> (inode, mtime) of its ``_SUCCESS``: a rewrite changes it."""
    out = {}
    for marker in ws.rglob("_SUCCESS"):
        if "_staging" in marker.parts or "_checkpoints" in marker.parts:
            continue
        stat = marker.stat()
        out[f"file://{marker.parent}"] = (stat.st_ino, stat.st_mtime_ns)
    return out


def _run_in_process(spark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the process launch (spark-submit, python -m) by the same job in this process."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from dlflow_airflow.operators.spark import SparkJobOperator
    from dlflow_airflow.runners.process import LocalProcess

    def spark_submit(self: Any, context: Any) -> None:
        config = JobConfig.from_argv(list(self.application_args), job=self.job)
        importlib.import_module(f"spark_jobs.{self.job}").run(spark, config)

    def local_process(self: Any, module: str, args: list[str], **_: Any) -> dict:
        job = module.rsplit(".", 1)[1]
        return importlib.import_module(module).run(JobConfig.from_argv(args, job=job))

    monkeypatch.setattr(SparkSubmitOperator, "execute", spark_submit)
    monkeypatch.setattr(SparkJobOperator, "shipped_py_files", lambda self: None)
    monkeypatch.setattr(LocalProcess, "run", local_process)


class _Events(dict):
    def __missing__(self, key: Any) -> Any:
        event = SimpleNamespace(extra={}, added=[])
        event.add = lambda asset, extra: event.added.append(asset.name)
        self[key] = event
        return event


def _run_task(task: Any, date: str, ws: Path) -> None:
    run_id = f"{task.dag_id}__{date}"
    context = {
        "ds": date,
        "params": {"force": False, "stages": []},
        "dag_run": SimpleNamespace(run_id=run_id),
        "task": task,
        "outlet_events": _Events(),
    }
    task.render_template_fields(context)
    config = JobConfig.from_body(date, task.stage_body)
    io = stage_io(config)
    fit = {p.uri for p in io.by_role(Role.FIT_OR_REUSE)}
    # The factory wired the contract's writes as Assets and fit-or-reuse as aliases.
    outlets = sorted(a.name for a in task.outlets)
    wired = [asset_name(p.folder, p.owner_tag) for p in io.writes if p.folder != "upstream"]
    wired += [f"{asset_name(p.folder, p.owner_tag)}.written" for p in io.partitions if p.uri in fit]
    assert outlets == sorted(wired), task.task_id

    before = _complete_partitions(ws)
    task.execute(context)
    after = _complete_partitions(ws)
    changed = {uri for uri, stamp in after.items() if before.get(uri) != stamp}
    fitted = {uri for uri in fit if uri not in before and uri in after}
    expected = {p.uri for p in io.writes} | fitted
    assert changed == expected, task.task_id
    records = {uri: stored_fingerprint(uri) or {} for uri in after}
    recorded = {
        uri
        for uri, doc in records.items()
        if doc.get("run_id") == run_id and doc.get("stage") == task.task_id
    }
    assert recorded == expected, task.task_id
    events = context["outlet_events"]
    announced = {getattr(k, "name", "") for k, v in events.items() if v.extra} | {
        name for v in events.values() for name in v.added
    }
    assert announced == {
        asset_name(p.folder, p.owner_tag)
        for p in io.partitions
        if p.uri in expected and p.folder != "upstream"
    }, task.task_id


def _run_pipeline(pipeline: Pipeline, date: str, ws: Path) -> str:
    dag = build_dag(pipeline)
    for name in pipeline.order:
        _run_task(dag.get_task(name), date, ws)
    text, complete = render(pipeline, date)
    assert complete, text
    shown = {(p.stage, p.uri) for p in stage_partitions(pipeline, date)}
    for name in pipeline.order:
        config = pipeline.stages[name].context(pipeline.spec).job_config(date)
        io = stage_io(config)
        declared = io.by_role(Role.WRITE, Role.FIT_OR_REUSE, Role.REUSE)
        assert {(name, p.uri) for p in declared} <= shown, name
    return text


@pytest.mark.parametrize("tfrecord", [False, True], ids=["parquet", "tfrecord"])
def test_contract_matrix(tmp_path: Path, spark: Any, monkeypatch, tfrecord: bool):
    _run_in_process(spark, monkeypatch)
    ws = tmp_path / "ws"
    ws.mkdir()
    # same: the run trains and blesses its own model (evaluate's gate is empty).
    text = _run_pipeline(_pipeline(ws, "same", tfrecord), D1, ws)
    assert "reused" not in text
    # A fixed model date: the first run fits its fmap, the next one reuses it.
    fixed = _pipeline(ws, FIXED, tfrecord)
    text = _run_pipeline(fixed, D2, ws)
    assert f"reused {FIXED}" not in text
    text = _run_pipeline(fixed, D3, ws)
    assert f"reused {FIXED}" in text and "femodel" in text
    # latest: scoring with the newest blessed model (D1's) and its fmap, nothing trained.
    text = _run_pipeline(_pipeline(ws, "latest", tfrecord), D3, ws)
    assert f"reused {D1}" in text
    assert (ws / "predict/TAG=m1" / f"dt={D3}" / "_SUCCESS").is_file()
