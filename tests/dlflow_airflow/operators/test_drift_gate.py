"""The operator side of drift: a breached ``on_breach: fail`` is not retried, and the
encoded partition's asset event carries the drift summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from dlflow_airflow.contract.artifacts import DRIFT_FILE
from dlflow_airflow.contract.drift import DriftReport, FeatureDrift
from dlflow_airflow.operators.bookkeeping import StageRun
from dlflow_airflow.operators.spark import SparkJobOperator, exited_for_good
from tests.dlflow_airflow.contract.test_artifacts import DATE, _encode_task, _Events
from tests.dlflow_airflow.operators.test_fingerprints import make_partition

BODY = {
    "workspace": "/tmp/ws",
    "feature": {"tag": "f", "primary_keys": ["uid"]},
    "model": {"tag": "m", "name": "dnn_binary_classifier"},
}


@pytest.mark.parametrize(
    ("message", "for_good"),
    [
        ("Cannot execute: spark-submit ... Error code is: 3.", True),
        ("Cannot execute: spark-submit ... Error code is: 1.", False),
        ("Cannot execute: x. Error code is: 0. Kubernetes spark exit code is: 3", True),
        ("Cannot execute: x. Error code is: 0. Kubernetes spark exit code is: 137", False),
        ("something else entirely", False),
    ],
)
def test_the_no_retry_exit_code_is_recognised(message: str, for_good: bool) -> None:
    assert exited_for_good(AirflowException(message)) is for_good


@pytest.mark.parametrize(("code", "raised"), [(3, AirflowFailException), (1, AirflowException)])
def test_the_spark_operator_fails_for_good_on_the_no_retry_exit_code(
    monkeypatch: pytest.MonkeyPatch, code: int, raised: type[Exception]
) -> None:
    def submit(self: SparkSubmitOperator, context: object) -> None:
        raise AirflowException(f"Cannot execute: spark-submit encode.py. Error code is: {code}.")

    monkeypatch.setattr(SparkSubmitOperator, "execute", submit)
    op = SparkJobOperator(task_id="encode", job="encode", job_body=BODY, ship_code=False)
    with pytest.raises(raised) as caught:
        op.execute({})
    assert (type(caught.value) is AirflowFailException) is (code == 3)


def _report() -> DriftReport:
    drift = FeatureDrift("x", "scalar", 0.0, 0.2, psi=0.3)
    return DriftReport("2026-01-02", "file:///f", "2026-01-01", 10, 10, (drift,))


@pytest.mark.parametrize("written", [True, False])
def test_the_encoded_asset_event_carries_the_drift_summary(tmp_path: Path, written: bool) -> None:
    task = _encode_task(tmp_path, "2026-01-01")
    make_partition(f"file://{tmp_path}/raw/TAG=f1/dt={DATE}", {"part-0": "x"})
    make_partition(f"file://{tmp_path}/femodel/TAG=f1/dt=2026-01-01", {"fmap.json": "{}"})
    events = _Events()
    context = {"params": {}, "task": task, "outlet_events": events, "dag_run": None}
    run = StageRun.begin(task, context)
    files = {"part-0": "x", DRIFT_FILE: _report().to_json()} if written else {"part-0": "x"}
    encoded = make_partition(f"file://{tmp_path}/encoded/TAG=f1/dt={DATE}", files)
    returned = run.finish(context)
    extra = {getattr(k, "name", None): v for k, v in events.items()}["dlflow.encoded.f1"].extra
    # The same facts are what the task returns (its XCom: spark-submit returns nothing).
    assert returned is not None and returned["ENCODED_FEATURE"] == extra
    if not written:
        assert "drift" not in extra
        return
    assert extra["drift"] == {
        "features": 1,
        "worst": [{"feature": "x", "psi": 0.3, "null_rate_change": 0.2}],
        "breaches": [],
        "report": f"file://{encoded}/{DRIFT_FILE}".replace("file://file://", "file://"),
    }
