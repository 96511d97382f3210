"""Encode and predict through the operators on a real Spark standalone cluster.

The executors run a Python that has every third-party package but not this
project (a venv whose only link to the project's venv is a plain path entry,
so the project's editable-install hook never runs there). The jobs can only
work if the operators shipped the code; a probe also checks that executors
import ``spark_jobs`` from the shipped zip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from tests.cluster.standalone import StandaloneCluster

pytestmark = [pytest.mark.cluster, pytest.mark.spark, pytest.mark.tf]

DATE = "2026-01-01"
ROWS = 4000
PIPELINE = """
dag_id: {dag_id}
schedule: null
start_date: 2026-01-01
workspace: {workspace}
feature: {{tag: cl_ctr, primary_keys: [uid], labels: [label]}}
model: {{tag: cl_dnn, name: dnn_binary_classifier, date: same}}
buckets:
  user: {{features: [age, income, city, device]}}
  behaviour: {{features: [clicks_7d, channel]}}
spark:
  conn_id: spark_default
  conf:
    spark.pyspark.python: {executor_python}
    spark.driver.host: 127.0.0.1
    spark.driver.bindAddress: 127.0.0.1
    spark.ui.enabled: false
    spark.executor.memory: 1g
    spark.sql.shuffle.partitions: 4
external: {external}
stages:
{stages}
"""
PREP_STAGES = """
  encode: {}
"""
PREDICT_STAGES = """
  predict: {batch_size: 512, pass_through: [label]}
"""
PROBE = """
import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()

def origin(_):
    import spark_jobs
    yield spark_jobs.__file__

print("ORIGINS " + "|".join(sorted(set(
    spark.sparkContext.parallelize(range(4), 4).mapPartitions(origin).collect()
))))
spark.stop()
"""


def isolated_python(root: Path) -> Path:
    """A venv that sees the project's third-party packages but not the project."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(sysconfig.get_paths()["purelib"])
    target = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    # A plain path line: .pth files inside that folder (the editable install) are not run.
    (target / "project-deps.pth").write_text(f"{site}\n")
    return root / "bin" / "python"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    cluster = StandaloneCluster(tmp_path_factory.mktemp("standalone"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def executor_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = isolated_python(tmp_path_factory.mktemp("executor-venv") / "venv")
    probe = subprocess.run(
        [str(python), "-c", "import pyarrow, keras, tensorflow; import spark_jobs"],
        capture_output=True,
        text=True,
        cwd=python.parent,
    )
    assert "No module named 'spark_jobs'" in probe.stderr, probe.stderr[-2000:]
    return python


def run_pipeline(home: Path, dag_id: str, stages: str, external: list[str], **env: str) -> None:
    from dlflow_airflow.devtools.demo import DemoSetup, run_dag

    dags = home / "dags"
    (dags / "pipelines").mkdir(parents=True, exist_ok=True)
    repo_dags = Path(__file__).resolve().parents[2] / "dags"
    (dags / "dlflow_pipelines.py").write_text((repo_dags / "dlflow_pipelines.py").read_text())
    text = PIPELINE.format(
        dag_id=dag_id,
        workspace=home / "workspace",
        executor_python=env["executor_python"],
        external=json.dumps(external),
        stages=stages,
    )
    (dags / "pipelines" / f"{dag_id}.yaml").write_text(text)
    log = home / f"{dag_id}.log"
    # The executors' Python is a worker-side executable: this deployment allows the key.
    allow = {"AIRFLOW__DLFLOW__ALLOWED_SPARK_CONF": "spark.pyspark.python"}
    with mock.patch.dict(os.environ, allow):
        code = run_dag(DemoSetup(home, dags), dag_id, DATE, log=log)
    assert code == 0, log.read_text(errors="replace")[-6000:]


def write_raw(workspace: Path) -> None:
    """The merge output of DATE (a raw feature table), written with pyarrow."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.layout import Layout

    rng = np.random.default_rng(5)
    table = pa.table(
        {
            "uid": np.arange(ROWS, dtype=np.int64),
            "label": rng.integers(0, 2, ROWS),
            "age": rng.integers(18, 80, ROWS),
            "income": rng.normal(3000.0, 800.0, ROWS),
            "city": rng.choice(["beijing", "shanghai", "shenzhen", "hangzhou"], ROWS),
            "device": rng.choice(["ios", "android", "web"], ROWS),
            "clicks_7d": rng.poisson(3.0, ROWS),
            "channel": rng.choice(["ads", "search", "feed"], ROWS),
        }
    )
    partition = Layout(str(workspace)).raw("cl_ctr", DATE)
    staging = storage.staging_uri(partition)
    filesystem, path = storage.resolve(staging)
    filesystem.create_dir(path, recursive=True)
    for i, part in enumerate((table.slice(0, ROWS // 2), table.slice(ROWS // 2))):
        pq.write_table(part, f"{path}/part-{i:05d}.parquet", filesystem=filesystem)
    storage.commit(staging, partition)


def commit_model(workspace: Path) -> None:
    """An (untrained) demo DNN for the fmap encode fitted: predict needs no training."""
    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.fmap import FeatureMap
    from dlflow_airflow.contract.layout import Layout
    from tf_jobs.model_io import save_model
    from tf_jobs.models import build_model, get_model, resolve_params

    layout = Layout(str(workspace))
    fmap = FeatureMap.load(layout.femodel("cl_ctr", DATE))
    spec = get_model("dnn_binary_classifier")
    model = build_model(spec, fmap, resolve_params(spec, {}))
    partition = layout.model("cl_dnn", DATE)
    staging = storage.staging_uri(partition)
    save_model(model, staging)
    storage.commit(staging, partition)


def test_encode_and_predict_run_on_a_cluster_without_the_project(
    cluster: StandaloneCluster,
    executor_python: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow.dataset as ds

    from dlflow_airflow.contract.layout import Layout, local_path

    connection = {
        "conn_type": "spark",
        "host": "spark://127.0.0.1",
        "port": cluster.port,
        "extra": {"deploy-mode": "client"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(connection))
    shipped = tmp_path / "shipping-cache"
    monkeypatch.setenv("DLFLOW_SHIPPING_CACHE", str(shipped))
    for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"

    write_raw(home / "workspace")
    run_pipeline(
        home, "cluster_prep", PREP_STAGES, ["RAW_FEATURE"], executor_python=str(executor_python)
    )
    commit_model(home / "workspace")
    run_pipeline(
        home,
        "cluster_predict",
        PREDICT_STAGES,
        ["ENCODED_FEATURE", "FMAP", "TRAINED_MODEL"],
        executor_python=str(executor_python),
    )

    layout = Layout(str(home / "workspace"))
    encoded = ds.dataset(local_path(layout.encoded("cl_ctr", DATE)), format="parquet")
    predicted = ds.dataset(local_path(layout.predict("cl_dnn", DATE)), format="parquet")
    assert predicted.schema.names == ["uid", "score", "label"]
    assert predicted.count_rows() == encoded.count_rows() == ROWS
    uids = predicted.to_table(columns=["uid"]).column("uid").to_pylist()
    assert len(set(uids)) == ROWS
    # The executors ran the application through the cluster (not a local master).
    assert "Registered app" in cluster.master_log()

    # The predict task shipped a content-addressed zip from the cache folder.
    log = (home / "cluster_predict.log").read_text(errors="replace")
    match = re.search(r"shipping project code to executors: (\S+\.zip)", log)
    assert match, log[-3000:]
    code_zip = Path(match.group(1))
    assert code_zip.parent == shipped
    assert "spark_jobs/predict.py" in zipfile.ZipFile(code_zip).namelist()

    # And executors import the project from that zip.
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "PYSPARK_PYTHON": str(executor_python)}
    spark_submit = Path(sys.executable).parent / "spark-submit"
    out = subprocess.run(
        [
            str(spark_submit),
            "--master",
            cluster.url,
            "--conf",
            "spark.driver.host=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
            "--py-files",
            str(code_zip),
            str(probe),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("ORIGINS "))
    origins = line.removeprefix("ORIGINS ").split("|")
    assert origins
    for origin in origins:
        assert f"{code_zip.name}/spark_jobs/__init__.py" in origin, origins
