from __future__ import annotations

import logging
import threading
import time

import pytest

from dlflow_airflow.runners import JobFailedError, get_runner, runner_names

MODULE = "tests.dlflow_airflow.runners.sample_job"


def test_output_is_streamed_and_result_returned(caplog):
    caplog.set_level(logging.INFO)
    log = logging.getLogger("t")
    result = get_runner("local").run(MODULE, ["ok"], env={}, log=log)
    assert result == {"auc": 0.8, "mode": "ok"}
    assert "step 1 of 2" in caplog.text


def test_failure_carries_exit_code_and_output_tail():
    with pytest.raises(JobFailedError) as info:
        get_runner("local").run(MODULE, ["fail"], env={}, log=logging.getLogger("t"))
    assert "exited with code 3" in str(info.value)
    assert "column 'x' missing" in str(info.value)


def test_kill_stops_the_job():
    runner = get_runner("local")
    errors: list[BaseException] = []

    def target():
        try:
            runner.run(MODULE, ["sleep"], env={}, log=logging.getLogger("t"))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(2)
    runner.kill()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], JobFailedError)


def test_unknown_runner_lists_known_ones():
    with pytest.raises(ValueError, match="unknown runner 'yarn'; known runners: local"):
        get_runner("yarn")
    assert runner_names() == ["local"]
