from __future__ import annotations

import logging
import threading
import time

import pytest

from dlflow_airflow.runners import JobFailedError, get_runner, runner_names
from dlflow_airflow.runners.local import LocalRunner
from dlflow_airflow.runners.process import LocalProcess, tf_configs

MODULE = "tests.dlflow_airflow.runners.sample_job"
LOG = logging.getLogger("t")


def test_output_is_streamed_and_result_returned(caplog):
    caplog.set_level(logging.INFO)
    result = LocalProcess().run(MODULE, ["ok"], env={}, log=LOG)
    assert result == {"auc": 0.8, "mode": "ok"}
    assert "step 1 of 2" in caplog.text


def test_failure_carries_exit_code_and_output_tail():
    with pytest.raises(JobFailedError) as info:
        LocalProcess().run(MODULE, ["fail"], env={}, log=LOG)
    assert "exited with code 3" in str(info.value)
    assert "column 'x' missing" in str(info.value)


def test_kill_stops_the_job():
    process = LocalProcess()
    errors: list[BaseException] = []

    def target():
        try:
            process.run(MODULE, ["sleep"], env={}, log=LOG)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(2)
    process.kill()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], JobFailedError)


def test_workers_get_one_cluster_and_the_chief_result_is_returned(caplog):
    caplog.set_level(logging.INFO)
    result = LocalProcess().run(MODULE, ["cluster"], env={}, log=LOG, workers=2)
    assert result is not None and result["index"] == 0
    assert len(result["cluster"]) == 2 and len(set(result["cluster"])) == 2
    assert "[worker 1] step 1 of 2" in caplog.text


def test_a_failed_worker_stops_the_others_and_is_named():
    with pytest.raises(JobFailedError) as info:
        LocalProcess().run(MODULE, ["cluster", "fail_worker_1"], env={}, log=LOG, workers=2)
    assert "(worker 1) exited with code 4" in str(info.value)
    assert "cannot reach the chief" in str(info.value)


def test_tf_configs_name_every_worker_and_its_index():
    import json

    configs = [json.loads(c) for c in tf_configs(3)]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert configs[0]["cluster"] == configs[2]["cluster"]


def test_lookup_knows_every_backend():
    assert runner_names() == ["docker", "kubernetes", "local"]
    assert isinstance(get_runner("local"), LocalRunner)


def test_unknown_runner_lists_known_ones():
    with pytest.raises(
        ValueError, match="unknown runner 'yarn'; known runners: docker, kubernetes"
    ):
        get_runner("yarn")
