"""Shipping the project's code to executors: the zip and the operator's --py-files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dlflow_airflow.operators.shipping import (
    PROJECT_PACKAGES,
    ShippingError,
    build_code_zip,
    top_level,
)
from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator

BODY = {
    "workspace": "/tmp/ws",
    "feature": {"tag": "f", "primary_keys": ["uid"]},
    "model": {"tag": "m", "name": "dnn_binary_classifier"},
}


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable user package ``my_models`` with a model module."""
    package = tmp_path / "src" / "my_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "dnn.py").write_text("SPEC = 'a user model'\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "dnn.cpython-311.pyc").write_bytes(b"\0")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    return package


def test_zip_holds_the_project_packages_as_source(tmp_path: Path) -> None:
    names = zipfile.ZipFile(build_code_zip(directory=tmp_path)).namelist()
    for package in PROJECT_PACKAGES:
        assert f"{package}/__init__.py" in names
    assert "spark_jobs/predict.py" in names
    assert "tf_jobs/batches.py" in names
    assert "dlflow_airflow/contract/artifacts.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_shipped_code_imports_from_the_zip_alone(tmp_path: Path) -> None:
    code_zip = build_code_zip(directory=tmp_path)
    # -S -I: no site-packages, so the project cannot come from the installed copy.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dlflow_airflow.contract.layout as m; "
    )
    probe += "print(m.__file__)"
    out = subprocess.run(
        [sys.executable, "-S", "-I", "-c", probe, code_zip],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == f"{code_zip}/dlflow_airflow/contract/layout.py"


def test_same_content_reuses_the_zip_and_a_change_makes_a_new_one(
    tmp_path: Path, user_package: Path
) -> None:
    first = build_code_zip(["my_models.dnn:SPEC"], directory=tmp_path / "cache")
    stamp = Path(first).stat().st_mtime_ns
    again = build_code_zip(["my_models"], directory=tmp_path / "cache")
    assert again == first
    assert Path(again).stat().st_mtime_ns == stamp
    assert "my_models/dnn.py" in zipfile.ZipFile(first).namelist()
    assert "my_models/__pycache__/dnn.cpython-311.pyc" not in zipfile.ZipFile(first).namelist()

    (user_package / "dnn.py").write_text("SPEC = 'changed'\n")
    changed = build_code_zip(["my_models"], directory=tmp_path / "cache")
    assert changed != first
    assert zipfile.ZipFile(changed).read("my_models/dnn.py") == b"SPEC = 'changed'\n"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [Path(first).name, Path(changed).name]
    )


def test_a_module_that_is_not_importable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ShippingError, match="cannot ship 'no_such_models': it is not importable"):
        build_code_zip(["no_such_models.dnn:build"], directory=tmp_path)
    with pytest.raises(ShippingError, match="is not a module name"):
        top_level("my models:build")


def test_operator_passes_the_zip_with_py_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_package: Path
) -> None:
    monkeypatch.setenv("DLFLOW_SHIPPING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CLUSTER", '{"conn_type": "spark", "host": "yarn"}')
    op = DlflowSparkSubmitOperator(
        task_id="predict",
        job="predict",
        job_body=BODY,
        conn_id="spark_cluster",
        py_files="extra.zip",
        ship_modules=["my_models.dnn:SPEC"],
    )
    py_files = op.shipped_py_files()
    assert py_files is not None
    extra, code_zip = py_files.split(",")
    assert extra == "extra.zip"
    assert Path(code_zip).parent == tmp_path / "cache"
    assert "my_models/dnn.py" in zipfile.ZipFile(code_zip).namelist()

    op.py_files = py_files
    command = op._get_hook()._build_spark_submit_command("predict.py")
    assert command[command.index("--py-files") + 1] == py_files
    assert command[command.index("--master") + 1] == "yarn"


def test_shipping_can_be_turned_off() -> None:
    op = DlflowSparkSubmitOperator(
        task_id="merge", job="merge", job_body=BODY, ship_code=False, py_files="own.zip"
    )
    assert op.shipped_py_files() == "own.zip"


def test_spark_stages_ship_a_user_model_module(user_package: Path) -> None:
    from dlflow_airflow.pipeline.build import Pipeline
    from dlflow_airflow.pipeline.factory import build_dag
    from tests.dlflow_airflow.pipelines import base_pipeline

    # validate imports the model's module and checks it is a model (without TensorFlow)
    (user_package / "dnn.py").write_text(
        "from dlflow_airflow.contract.models import ModelSpec\n"
        "SPEC = ModelSpec(name='dnn', build='my_models.dnn:build')\n"
    )
    doc = base_pipeline()
    doc["model"]["name"] = "my_models.dnn:SPEC"
    doc["stages"]["predict"] = {"batch_size": 1024, "pass_through": ["label"], "allow_empty": True}
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    predict = dag.get_task("predict")
    assert isinstance(predict, DlflowSparkSubmitOperator)
    assert predict.ship_code
    assert predict.ship_modules == ("my_models.dnn:SPEC",)
    assert '"pass_through": ["label"]' in predict.application_args[-1]

    doc["model"]["name"] = "dnn_binary_classifier"
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    assert dag.get_task("predict").ship_modules == ()
