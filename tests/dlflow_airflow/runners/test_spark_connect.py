"""The connect-mode operator: the job's argument list and environment, sessions, kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from dlflow_airflow.contract.spark_connect import REMOTE_ENV, SESSION_ENV, ConnectSession
from dlflow_airflow.runners import spark_connect
from dlflow_airflow.runners.base import JobFailedError
from dlflow_airflow.runners.process import LocalProcess
from dlflow_airflow.runners.spark_connect import SparkConnectJobOperator, endpoint, task_tag

BODY = {"workspace": "/tmp/ws", "feature": {"tag": "f"}, "options": {}}
TOKEN = "t0k/en+s3cret"
SAMPLE_JOB = "tests.dlflow_airflow.runners.sample_job"


@pytest.fixture(autouse=True)
def connection(monkeypatch, tmp_path):
    conn = {
        "conn_type": "spark_connect",
        "host": "sc://spark.example",
        "port": 15002,
        "login": "etl",
        "password": TOKEN,
    }
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("DLFLOW_SHIPPING_CACHE", str(tmp_path / "zips"))


def _context(try_number: int = 1) -> dict[str, Any]:
    return {"ti": SimpleNamespace(try_number=try_number, run_id="scheduled__2026-01-02")}


def _operator(job: str = "encode", **kwargs: Any) -> SparkConnectJobOperator:
    return SparkConnectJobOperator(task_id=job, job=job, job_body=BODY, date="2026-01-02", **kwargs)


@pytest.fixture
def launched(monkeypatch) -> list[dict[str, Any]]:
    """What LocalProcess.run was asked to run (nothing runs)."""
    calls: list[dict[str, Any]] = []

    def run(self, module, args, *, env, log, workers=1):
        calls.append({"module": module, "args": args, "env": dict(env)})

    monkeypatch.setattr(LocalProcess, "run", run)
    return calls


def test_the_job_is_a_connect_client_in_the_worker(launched, capsys):
    op = _operator(conf={"spark.sql.shuffle.partitions": 8})
    assert op.execute(_context()) is None
    (call,) = launched
    assert call["module"] == "spark_jobs.encode"
    assert call["args"] == ["--date", "2026-01-02", "--job", json.dumps(BODY, sort_keys=True)]
    session = ConnectSession.from_environ(call["env"])
    assert session is not None
    assert session.url.startswith("sc://spark.example:15002/;")
    assert "user_id=etl" in session.url and "token=" in session.url
    assert session.shared
    assert session.conf == {"spark.sql.shuffle.partitions": "8"}
    assert session.tag == "dlflow-adhoc_airflow-encode-scheduled__2026-01-02-1"
    (artifact,) = session.artifacts
    assert artifact.endswith(".zip") and os.path.isfile(artifact)
    # The token reaches the job through its environment only.
    assert "s3cret" not in call["env"][SESSION_ENV] and "s3cret" in call["env"][REMOTE_ENV]
    logged = capsys.readouterr()  # Airflow's task log goes to the console here
    assert "sc://spark.example:15002" in logged.out
    assert "s3cret" not in logged.out + logged.err


def test_merge_gets_a_session_of_its_own_the_others_share_one(launched):
    for job in ("merge", "merge", "encode", "predict"):
        _operator(job, conf={"spark.sql.shuffle.partitions": 8}).execute(_context())
    sessions = [ConnectSession.from_environ(c["env"]) for c in launched]
    merge_a, merge_b, encode, predict = sessions
    assert not merge_a.shared and not merge_b.shared
    assert merge_a.session_id != merge_b.session_id
    assert encode.shared and encode.session_id == predict.session_id != merge_a.session_id
    # Other settings: another session (its Python workers must not see stale settings).
    _operator("encode", conf={"spark.sql.shuffle.partitions": 2}).execute(_context())
    assert ConnectSession.from_environ(launched[-1]["env"]).session_id != encode.session_id


def test_without_shipping_no_artifact(launched):
    _operator(ship_code=False).execute(_context())
    assert ConnectSession.from_environ(launched[0]["env"]).artifacts == ()


@pytest.mark.parametrize(
    ("code", "raised"),
    [(3, "AirflowFailException"), (1, "JobFailedError"), (None, "JobFailedError")],
)
def test_a_no_retry_exit_fails_the_task_for_good(monkeypatch, code, raised):
    def run(self, module, args, *, env, log, workers=1):
        raise JobFailedError(f"{module} exited with code {code}", exit_code=code)

    monkeypatch.setattr(LocalProcess, "run", run)
    with pytest.raises(Exception) as info:
        _operator().execute(_context())
    assert type(info.value).__name__ == raised


def test_launch_settings_and_unknown_jobs_are_refused():
    with pytest.raises(ValueError, match=r"spark.executor.memory \(a launch setting\)"):
        _operator(conf={"spark.executor.memory": "4g"})
    with pytest.raises(ValueError, match="unknown spark job 'train'"):
        _operator("train")


@pytest.fixture
def sleeping_job(monkeypatch) -> list[tuple[str, bool]]:
    """The job is the sample job sleeping; interrupts are recorded with whether the
    job was still running when each came."""
    monkeypatch.setattr(
        LocalProcess,
        "command",
        lambda self, module, args: [sys.executable, "-m", SAMPLE_JOB, "sleep"],
    )
    interrupts: list[tuple[str, bool]] = []

    def interrupt(self, session):
        alive = self._process is not None and any(
            p.poll() is None for p in self._process._processes
        )
        interrupts.append((session.tag, alive))

    monkeypatch.setattr(SparkConnectJobOperator, "interrupt", interrupt)
    return interrupts


def test_kill_interrupts_the_tagged_operations_then_stops_the_job(sleeping_job):
    op = _operator(ship_code=False)
    errors: list[BaseException] = []

    def target():
        try:
            op.execute(_context(try_number=2))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(3)
    op.on_kill()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], JobFailedError)
    assert sleeping_job == [("dlflow-adhoc_airflow-encode-scheduled__2026-01-02-2", True)]


class _Timeout(Exception):
    pass


def test_a_task_timeout_interrupts_and_stops_the_job(sleeping_job):
    def alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 3)
    started = time.monotonic()
    try:
        with pytest.raises(_Timeout):
            _operator(ship_code=False).execute(_context())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # Not the sample job's 120 s: the job was stopped when the timeout came.
    assert time.monotonic() - started < 30
    assert [alive for _, alive in sleeping_job] == [True]


def test_interrupt_runs_in_a_process_of_its_own(monkeypatch):
    seen: dict[str, Any] = {}

    def run(cmd, **kwargs):
        seen.update(cmd=cmd, env=kwargs["env"])
        return subprocess.CompletedProcess(cmd, 0, stdout="interrupted 1 Spark operation(s)")

    monkeypatch.setattr(spark_connect.subprocess, "run", run)
    session = ConnectSession(url="sc://h:1/;token=x", session_id="S", tag="T")
    _operator().interrupt(session)
    assert seen["cmd"] == [sys.executable, "-m", "spark_jobs.connect", "interrupt"]
    assert ConnectSession.from_environ(seen["env"]) == session


def test_tags_and_endpoints():
    task = SimpleNamespace(dag_id="ctr daily", task_id="predict")
    context = {"ti": SimpleNamespace(try_number=3), "dag_run": SimpleNamespace(run_id="a,b")}
    assert task_tag(context, task) == "dlflow-ctr_daily-predict-a_b-3"
    assert endpoint("sc://h.example:15002/;user_id=u;token=secret") == "sc://h.example:15002"
