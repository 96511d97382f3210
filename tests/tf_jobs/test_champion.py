"""Champion/challenger end to end: the real jobs in-process on two demo days.

Day 1's model is the first of its tag: no champion, blessed on ``min``.
Day 2 fits its own fmap, so encode also encodes day 2's rows with day 1's
fmap for the champion; a worse challenger stays unblessed (``latest`` keeps
serving day 1) and a good one is blessed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlflow_airflow.contract.artifacts import ENCODING_FILE, METRICS_FILE
from dlflow_airflow.contract.fmap import FeatureMap
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.layout import Layout, local_path
from dlflow_airflow.contract.model_resolution import is_blessed, resolve_model_partition

pytestmark = [pytest.mark.spark, pytest.mark.tf]
logging.getLogger("py4j").setLevel(logging.WARNING)

D1, D2 = "2026-01-01", "2026-01-02"
GOOD = {"hidden_units": [16], "embedding_dim": 4, "epochs": 4, "batch_size": 128}
# One epoch at a learning rate that barely moves the weights: close to the random start.
BAD = {**GOOD, "epochs": 1, "learning_rate": 1e-6}
GATE = {
    "auc": {"min": 0.55, "max_drop_vs_blessed": 0.005},
    "log_loss": {"max_drop_vs_blessed": 0.05},
}
BUCKETS = {
    "user": {"features": ["age", "income", "city", "device"], "method": "minmax"},
    "behaviour": {"features": ["clicks_7d", "channel"], "method": "minmax"},
}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from spark_jobs.session import build_session

    conf = {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}
    session = build_session("dlflow-champion", {"spark.master": "local[2]", **conf})
    yield session


def _job(ws: str, job: str, date: str, options: dict[str, Any], params: dict[str, Any]) -> Any:
    body = {
        "workspace": ws,
        "feature": {"tag": "ctr", "primary_keys": ["uid"], "labels": ["label"]},
        "model": {"tag": "dnn", "name": "dnn_binary_classifier", "date": "same", "params": params},
        "buckets": BUCKETS,
        "options": options,
    }
    return JobConfig.from_body(date, body, job=job)


def _day(spark: Any, ws: str, date: str, params: dict[str, Any]) -> dict[str, Any]:
    """demo_data -> merge -> encode (with the champion's rows) -> train for ``date``."""
    from spark_jobs import demo_data, encode, merge
    from tf_jobs import train

    demo_data.run(spark, _job(ws, "demo_data", date, {"rows": 4000, "seed": 11}, params))
    merge.run(spark, _job(ws, "merge", date, demo_data.merge_options(), params))
    encoded = encode.run(spark, _job(ws, "encode", date, {"champion": True}, params))
    train.run(_job(ws, "train", date, {"shuffle": False, "threads": 2}, params))
    return encoded


def _evaluate(ws: str, date: str, gate: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from tf_jobs import evaluate

    result = evaluate.run(_job(ws, "evaluate", date, {"gate": gate, "plots": False}, GOOD))
    metrics = json.loads((Path(local_path(result["output"])) / METRICS_FILE).read_text())
    return result, metrics


def test_a_worse_challenger_keeps_the_champion_and_a_good_one_is_blessed(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = f"file://{tmp_path}/ws"
    layout = Layout(ws)

    # Day 1: the tag's first model; no champion, so only min applies.
    first = _day(spark, ws, D1, GOOD)
    assert first["champion"]["model_date"] is None
    assert "it is the first" in first["champion"]["reason"]
    day1, metrics = _evaluate(ws, D1, GATE)
    assert day1["blessed"] is True
    assert metrics["champion"] is None and "it is the first" in metrics["champion_reason"]

    # Day 2: its own fmap; the champion's rows are encoded with day 1's.
    second = _day(spark, ws, D2, BAD)
    champion_rows = layout.champion("dnn", D2)
    assert second["champion"] == {"model_date": D1, "output": champion_rows, "reason": None}
    record = json.loads((Path(local_path(champion_rows)) / ENCODING_FILE).read_text())
    fmap_d1 = FeatureMap.load(layout.femodel("ctr", D1))
    assert record["fmap_checksum"] == fmap_d1.checksum != second["fmap_checksum"]
    assert record["model"] == layout.model("dnn", D1)

    capsys.readouterr()
    worse, metrics = _evaluate(ws, D2, GATE)
    out = capsys.readouterr().out
    assert worse["blessed"] is False and not is_blessed(layout.model("dnn", D2))
    champion = metrics["champion"]
    assert (champion["model_date"], champion["model"]) == (D1, layout.model("dnn", D1))
    # The same rows, each model with its own fmap; the champion is clearly better.
    assert champion["metrics"]["rows"] == metrics["rows"] == second["rows"]
    assert champion["metrics"]["auc"] > metrics["auc"] + 0.005
    # Judged against min as before, and against the champion.
    missed = metrics["gate"]["missed"]
    assert f"auc {metrics['auc']:.4f} < min 0.55" in missed[0]
    auc_miss = next(m for m in missed if m.startswith("auc") and "champion's" in m)
    assert f"auc {metrics['auc']:.4f} < champion's {champion['metrics']['auc']:.4f}" in auc_miss
    assert f"max_drop_vs_blessed 0.005 (champion model of {D1}" in auc_miss
    assert f"champion dnn@{D1} on {D2}" in out and "is NOT blessed" in out
    # ``latest`` keeps serving the champion.
    latest = resolve_model_partition(layout, "dnn", "latest", D2, blessed_only=True)
    assert latest.date == D1

    # A good challenger (trained on day 2 like day 1's was) is blessed.
    from tf_jobs import train

    train.run(_job(ws, "train", D2, {"shuffle": False, "threads": 2}, GOOD))
    better, metrics = _evaluate(ws, D2, GATE)
    assert better["blessed"] is True, metrics["gate"]["missed"]
    assert metrics["champion"]["model_date"] == D1
    assert metrics["auc"] >= metrics["champion"]["metrics"]["auc"] - 0.005
    assert resolve_model_partition(layout, "dnn", "latest", D2, blessed_only=True).date == D2


def test_a_champion_without_its_fmap_is_recorded_not_fatal(spark: Any, tmp_path: Path) -> None:
    from spark_jobs import encode

    ws = f"file://{tmp_path}/ws"
    layout = Layout(ws)
    _day(spark, ws, D1, {**GOOD, "epochs": 1})
    assert _evaluate(ws, D1, {"auc": {"max_drop_vs_blessed": 0.0}})[0]["blessed"] is True
    fmap = Path(local_path(layout.femodel("ctr", D1))) / "fmap.json"
    fmap.unlink()  # e.g. cleaned up by hand: the champion can no longer score new rows
    from spark_jobs import demo_data, merge

    params = {**GOOD, "epochs": 1}
    demo_data.run(spark, _job(ws, "demo_data", D2, {"rows": 4000, "seed": 11}, params))
    merge.run(spark, _job(ws, "merge", D2, demo_data.merge_options(), params))
    encoded = encode.run(spark, _job(ws, "encode", D2, {"champion": True}, params))
    assert encoded["champion"]["model_date"] is None
    assert (
        f"the champion {layout.model('dnn', D1)} cannot score this date"
        in (encoded["champion"]["reason"])
    )
    assert "no fmap at" in encoded["champion"]["reason"]
    from tf_jobs import train

    train.run(_job(ws, "train", D2, {"shuffle": False, "threads": 2}, params))
    result, metrics = _evaluate(ws, D2, {"auc": {"max_drop_vs_blessed": 0.0}})
    assert result["blessed"] is True  # nobody to compare with: only min/max would apply
    assert metrics["champion"] is None and "cannot score this date" in metrics["champion_reason"]
