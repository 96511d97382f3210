"""Dependency resolution (degrade_days, checkers) and the wait_upstream sensor."""

from __future__ import annotations

import asyncio
import importlib
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred
from airflow.triggers.base import TriggerEvent

from dlflow_airflow.contract.dependencies import (
    DependencyError,
    UpstreamMissingError,
    parse_dependencies,
    resolve_all,
)
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from dlflow_airflow.sensors.upstream import UpstreamPartitionSensor
from dlflow_airflow.triggers.upstream import UpstreamPartitionTrigger
from tests.dlflow_airflow.pipelines import base_pipeline

DAY = "2026-01-05"
PATH = "{workspace}/up/profile/dt={date}"


def partition(ws: Path, day: str, rows: int = 10, success: bool = True) -> Path:
    folder = ws / "up" / "profile" / f"dt={day}"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"uid": list(range(rows))}), folder / "part-0.parquet")
    if success:
        (folder / "_SUCCESS").touch()
    return folder


def resolve(ws: Path, **dep: object) -> dict:
    deps = parse_dependencies({"profile": {"path": PATH, **dep}})
    return resolve_all(deps, workspace=str(ws), day=DAY)


def test_degrade_falls_back_to_the_newest_ready_day(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    partition(tmp_path, "2026-01-03")
    partition(tmp_path, "2026-01-04", success=False)
    with caplog.at_level(logging.WARNING):
        got = resolve(tmp_path, degrade_days=2)["profile"]
    assert (got.day, got.degraded_days) == ("2026-01-03", 2)
    assert got.value == f"file://{tmp_path}/up/profile/dt=2026-01-03"
    assert "degraded 2 day(s)" in caplog.text
    with pytest.raises(UpstreamMissingError) as error:
        resolve(tmp_path, degrade_days=1)
    message = str(error.value)
    assert f"file://{tmp_path}/up/profile/dt=2026-01-05: absent" in message
    assert f"file://{tmp_path}/up/profile/dt=2026-01-04: no _SUCCESS marker" in message


def test_offset_size_and_count_checkers(tmp_path: Path) -> None:
    partition(tmp_path, "2026-01-04", rows=10)
    assert resolve(tmp_path, offset_days=-1, check={"min_rows": 10})["profile"].day == "2026-01-04"
    with pytest.raises(UpstreamMissingError, match="10 rows, below min_rows 11"):
        resolve(tmp_path, offset_days=-1, check={"min_rows": 11})
    with pytest.raises(UpstreamMissingError, match="MB, below min_size_mb 1"):
        resolve(tmp_path, offset_days=-1, check={"min_size_mb": 1})


def test_date_static_and_bad_placeholders(tmp_path: Path) -> None:
    deps = parse_dependencies(
        {"yday": {"date": {"offset_days": -1, "format": "%Y%m%d"}}, "region": {"static": "cn"}}
    )
    got = resolve_all(deps, workspace=str(tmp_path), day=DAY)
    assert {k: v.value for k, v in got.items()} == {"yday": "20260104", "region": "cn"}
    with pytest.raises(DependencyError, match=r"unknown placeholder \{dt\}; allowed: \{workspace"):
        resolve_all(
            parse_dependencies({"p": {"path": "{workspace}/x/{dt}"}}),
            workspace=str(tmp_path),
            day=DAY,
        )
    with pytest.raises(ValueError, match="degrade_days"):
        parse_dependencies({"p": {"path": PATH, "degrade_days": -1}})


def test_sensor_pokes_until_the_partition_is_complete(tmp_path: Path) -> None:
    sensor = UpstreamPartitionSensor(
        task_id="wait",
        dependencies={"profile": {"path": PATH, "check": {"min_rows": 1}}},
        workspace=str(tmp_path),
        date=DAY,
    )
    assert sensor.mode == "reschedule"
    assert sensor.poke({}) is False
    folder = partition(tmp_path, DAY, success=False)
    assert sensor.poke({}) is False
    (folder / "_SUCCESS").touch()
    done = sensor.poke({})
    assert done.is_done and done.xcom_value == {"profile": f"file://{folder}"}


def test_wait_upstream_stage_feeds_merge() -> None:
    doc = base_pipeline()
    doc["stages"]["wait_profile"] = {
        "kind": "wait_upstream",
        "dependencies": {"profile": {"path": PATH, "degrade_days": 1}},
        "poke_interval_seconds": 60,
    }
    doc["stages"]["merge"]["needs"] = ["UPSTREAM_READY"]
    doc["stages"]["merge"]["dependencies"] = {"profile": {"path": PATH}}
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    wait = dag.get_task("wait_profile")
    assert isinstance(wait, UpstreamPartitionSensor) and wait.poke_interval == 60
    assert wait.mode == "reschedule" and wait.date == "{{ ds }}"
    assert dag.get_task("merge").upstream_task_ids == {"wait_profile"}


def test_trigger_fires_once_the_partition_appears(tmp_path: Path) -> None:
    trigger = UpstreamPartitionTrigger(
        dependencies={"profile": {"path": PATH, "check": {"min_rows": 1}}},
        workspace=str(tmp_path),
        date=DAY,
        poke_interval=0.01,
    )
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    async def scenario() -> TriggerEvent:
        waiting = asyncio.create_task(anext(rebuilt.run()))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # nothing upstream yet: the trigger keeps checking
        partition(tmp_path, DAY)  # the upstream job lands
        return await asyncio.wait_for(waiting, timeout=60)

    event = asyncio.run(scenario())
    assert event.payload == {
        "status": "success",
        "values": {"profile": f"file://{tmp_path}/up/profile/dt={DAY}"},
    }


def test_trigger_deadline_and_bad_config_events(tmp_path: Path) -> None:
    deps = {"profile": {"path": PATH, "degrade_days": 1}}
    late = UpstreamPartitionTrigger(
        dependencies=deps, workspace=str(tmp_path), date=DAY, poke_interval=0.01, deadline=0
    )
    event = asyncio.run(anext(late.run()))
    assert event.payload["status"] == "timeout"
    assert f"file://{tmp_path}/up/profile/dt=2026-01-04: absent" in event.payload["message"]
    bad = UpstreamPartitionTrigger(
        dependencies={"p": {"path": "{workspace}/x/{dt}"}}, workspace=str(tmp_path), date=DAY
    )
    event = asyncio.run(anext(bad.run()))
    assert event.payload["status"] == "error"
    assert "unknown placeholder {dt}" in event.payload["message"]


def test_deferrable_sensor_defers_to_the_trigger_and_resumes(tmp_path: Path) -> None:
    sensor = UpstreamPartitionSensor(
        task_id="wait",
        dependencies={"profile": {"path": PATH, "degrade_days": 1}},
        workspace=str(tmp_path),
        date=DAY,
        poke_interval=30,
        timeout=600,
        deferrable=True,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, UpstreamPartitionTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["date"] == DAY and kwargs["poke_interval"] == 30
    assert kwargs["dependencies"] == {"profile": {"path": PATH, "degrade_days": 1}}

    timed_out = asyncio.run(anext(UpstreamPartitionTrigger(**{**kwargs, "deadline": 0}).run()))
    with pytest.raises(AirflowSensorTimeout) as error:
        sensor.execute_complete({}, timed_out.payload)
    assert f"file://{tmp_path}/up/profile/dt={DAY}: absent" in str(error.value)
    assert f"file://{tmp_path}/up/profile/dt=2026-01-04: absent" in str(error.value)

    folder = partition(tmp_path, "2026-01-04")
    ready = asyncio.run(anext(UpstreamPartitionTrigger(**kwargs).run()))
    assert sensor.execute_complete({}, ready.payload) == {"profile": f"file://{folder}"}
    assert sensor.execute({}) == {"profile": f"file://{folder}"}  # ready: no deferral


def test_wait_upstream_stage_deferrable_option() -> None:
    doc = base_pipeline()
    doc["stages"]["wait_profile"] = {
        "kind": "wait_upstream",
        "dependencies": {"profile": {"path": PATH}},
        "deferrable": True,
    }
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    wait = dag.get_task("wait_profile")
    assert isinstance(wait, UpstreamPartitionSensor) and wait.deferrable
