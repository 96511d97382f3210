"""Spark conf keys that choose what runs on the workers need the deployment's consent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlflow_airflow.pipeline import policy
from dlflow_airflow.pipeline.errors import SpecError
from dlflow_airflow.pipeline.policy import CONFIG_ENV, check_spark_conf, guarded_reason
from dlflow_airflow.pipeline.spec import parse_spec
from tests.dlflow_airflow.pipelines import base_pipeline


def _spec(conf: dict[str, str], python: str | None = None):
    doc = base_pipeline()
    doc["spark"] = {"conf": conf, **({"python": python} if python else {})}
    return parse_spec(doc, "p.yaml")


@pytest.fixture(autouse=True)
def nothing_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)


@pytest.mark.parametrize(
    "key",
    [
        "spark.pyspark.python",
        "spark.pyspark.driver.python",
        "spark.driver.extraJavaOptions",
        "spark.executor.extraJavaOptions",
        "spark.driver.extraClassPath",
        "spark.executor.extraClassPath",
        "spark.driver.extraLibraryPath",
        "spark.jars",
        "spark.jars.packages",
        "spark.files",
        "spark.submit.pyFiles",
        "spark.archives",
        "spark.yarn.dist.archives",
        "spark.executorEnv.LD_PRELOAD",
        "spark.yarn.appMasterEnv.PYTHONPATH",
        "spark.kubernetes.driverEnv.PATH",
        "spark.executor.resource.gpu.discoveryScript",
        "spark.kubernetes.container.image",
        "spark.kubernetes.executor.podTemplateFile",
        "spark.kubernetes.driver.volumes.hostPath.root.mount.path",
        "spark.kubernetes.executor.secrets.db",
        "spark.kerberos.keytab",
        " spark.pyspark.python ",
    ],
)
def test_keys_that_choose_what_runs_are_guarded(key: str) -> None:
    assert guarded_reason(key)


@pytest.mark.parametrize(
    "key",
    [
        "spark.executor.memory",
        "spark.driver.memory",
        "spark.sql.shuffle.partitions",
        "spark.driver.host",
        "spark.ui.enabled",
        "spark.executor.instances",
        "spark.kubernetes.namespace",
        "spark.PySpark.python",  # not a key Spark reads (keys are case-sensitive)
    ],
)
def test_data_and_sizing_keys_are_free(key: str) -> None:
    assert guarded_reason(key) is None


def test_refusal_names_file_key_path_why_and_the_option() -> None:
    spec = _spec({"spark.pyspark.python": "/tmp/x", "spark.executorEnv.LD_PRELOAD": "/tmp/x.so"})
    with pytest.raises(SpecError) as raised:
        check_spark_conf(spec, "dags/pipelines/ctr.yaml", allowed=())
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    python, env = lines
    assert python.startswith("dags/pipelines/ctr.yaml: spark.conf.spark.pyspark.python: ")
    assert "chooses an executable the Spark driver or executors run" in python
    assert "[dlflow] allowed_spark_conf" in python and CONFIG_ENV in python
    assert python.endswith("allowed_spark_conf = spark.pyspark.python")
    assert env.startswith("dags/pipelines/ctr.yaml: spark.conf.spark.executorEnv.LD_PRELOAD: ")
    assert "environment variables" in env


def test_a_file_without_guarded_keys_reads_no_configuration(monkeypatch) -> None:
    def no_lookup() -> tuple[str, ...]:
        raise AssertionError("the option was read")

    monkeypatch.setattr(policy, "configured_allowed", no_lookup)
    check_spark_conf(_spec({"spark.executor.memory": "4g"}), "p.yaml")


def test_the_airflow_option_allows_keys_and_globs(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec({"spark.pyspark.python": "/opt/py", "spark.executorEnv.TZ": "UTC"})
    with pytest.raises(SpecError):
        check_spark_conf(spec, "p.yaml")
    monkeypatch.setenv(CONFIG_ENV, "spark.pyspark.python")
    with pytest.raises(SpecError, match="spark.conf.spark.executorEnv.TZ"):
        check_spark_conf(spec, "p.yaml")
    monkeypatch.setenv(CONFIG_ENV, "spark.pyspark.python, spark.executorEnv.*")
    check_spark_conf(spec, "p.yaml")
    monkeypatch.setenv(CONFIG_ENV, "*")
    check_spark_conf(spec, "p.yaml")


def test_spark_python_needs_both_python_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec({}, python="/opt/py/bin/python")
    with pytest.raises(SpecError) as raised:
        check_spark_conf(spec, "p.yaml")
    message = str(raised.value)
    assert message.startswith("p.yaml: spark.python: ")
    assert message.endswith("spark.pyspark.python, spark.pyspark.driver.python")
    monkeypatch.setenv(CONFIG_ENV, "spark.pyspark.python")
    with pytest.raises(SpecError):
        check_spark_conf(spec, "p.yaml")
    monkeypatch.setenv(CONFIG_ENV, "spark.pyspark.python,spark.pyspark.driver.python")
    check_spark_conf(spec, "p.yaml")


def test_parse_allowed_takes_commas_and_lines() -> None:
    assert policy.parse_allowed(" spark.jars ,\nspark.executorEnv.*,, ") == (
        "spark.jars",
        "spark.executorEnv.*",
    )


def test_pipeline_validation_applies_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wired into :meth:`Pipeline.from_data`: ``validate`` and the DAG file refuse the file."""
    from dlflow_airflow.pipeline.build import Pipeline

    doc = base_pipeline()
    doc["spark"] = {"conf": {"spark.jars.packages": "evil:pkg:1.0"}}
    with pytest.raises(SpecError, match=r"p.yaml: spark.conf.spark.jars.packages: not allowed"):
        Pipeline.from_data(doc, source="p.yaml")
    monkeypatch.setenv(CONFIG_ENV, "spark.jars.*")
    Pipeline.from_data(doc, source="p.yaml")


def test_the_provider_declares_the_option() -> None:
    from dlflow_airflow.provider import get_provider_info

    info = get_provider_info()
    option = info["config"]["dlflow"]["options"]["allowed_spark_conf"]
    assert option["default"] == "" and option["type"] == "string"
    jsonschema = pytest.importorskip("jsonschema")
    import airflow

    schema_file = Path(airflow.__file__).parent / "provider_info.schema.json"
    jsonschema.validate(info, json.loads(schema_file.read_text()))
