"""Only the run date is a template: YAML strings reach the jobs verbatim, secrets never.

A pipeline whose YAML strings hold ``{{ conn.spark_default.password }}`` (in
``spark.conf``, ``model.params``, the workspace, paths and the runner blocks)
is built into DAGs for every backend. Each task's template fields are rendered
with a real Airflow template context (the task SDK's, where that template does
resolve to the password), then its backend is run up to the process / pod /
container boundary. The password (and its reverse, which Airflow's log
masking would not catch) appears in no task attribute, no job argument list,
no pod or container spec and no log record; the template text reaches the job
as written, and the date is the run's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dlflow_airflow.contract.models import ModelSpec
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.operators.runtime import runtime_context
from tests.dlflow_airflow.pipelines import base_pipeline

PASSWORD = "Pw-7c1e-secret"
LEAKS = (PASSWORD, PASSWORD[::-1])
TEMPLATE = "{{ conn.spark_default.password }}"
REVERSED = "{{ conn.spark_default.password | reverse }}"
DATE = "2026-01-02"


def _never_built(fmap: Any, params: Any) -> Any:
    raise AssertionError("no model is built here")


# A user model with string params, so model.params can hold the template.
NOTE_MODEL = ModelSpec(name="note_model", build=_never_built, defaults={"note": "", "other": ""})


@pytest.fixture(autouse=True)
def spark_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "spark", "host": "local[*]", "password": PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(connection))


def templated_pipeline(tmp_path: Path, runners: str) -> dict[str, Any]:
    """A pipeline with the password template in every kind of YAML string."""
    doc = base_pipeline()
    doc["workspace"] = f"{tmp_path}/ws-{TEMPLATE}"
    doc["spark"] = {"conf": {"spark.dlflow.note": TEMPLATE, "spark.app.tag": REVERSED}}
    doc["model"]["name"] = f"{__name__}:NOTE_MODEL"
    doc["model"]["params"] = {"note": TEMPLATE, "other": REVERSED}
    doc["stages"]["merge"]["seed"]["path"] = "{workspace}/seed/dt={date}/" + TEMPLATE
    doc["stages"]["wait"] = {
        "kind": "wait_upstream",
        "dependencies": {"seed": {"path": "{workspace}/up/dt={date}/" + REVERSED}},
    }
    if runners == "containers":
        doc["stages"]["train"] = {
            "runner": "kubernetes",
            "kubernetes": {
                "image": f"img:{TEMPLATE}",
                "namespace": TEMPLATE,
                "conn_id": TEMPLATE,
                "env": {"NOTE": TEMPLATE, "OTHER": REVERSED},
                "labels": {"note": TEMPLATE},
                "node_selector": {"note": REVERSED},
                "resources": {"requests": {"cpu": TEMPLATE}},
                "volumes": [{"name": "v", "mount_path": "/m", "host_path": f"/h/{TEMPLATE}"}],
            },
        }
        doc["stages"]["evaluate"] = {
            "runner": "docker",
            "docker": {
                "image": f"img:{REVERSED}",
                "env": {"NOTE": TEMPLATE},
                "mounts": [{"source": f"/s/{TEMPLATE}", "target": "/t"}],
            },
        }
    return doc


def container_providers() -> None:
    pytest.importorskip("airflow.providers.cncf.kubernetes")
    pytest.importorskip("airflow.providers.docker")


def template_context(task: Any) -> dict[str, Any]:
    """The context Airflow's task runner renders templates with, for a manual run on DATE."""
    from airflow.sdk.api.datamodels._generated import (
        DagRun,
        DagRunState,
        DagRunType,
    )

    logical = datetime.fromisoformat(DATE).replace(tzinfo=UTC)
    run = DagRun(
        dag_id=task.dag_id,
        run_id=f"manual__{DATE}",
        logical_date=logical,
        data_interval_start=logical,
        data_interval_end=logical,
        run_after=logical,
        start_date=logical,
        end_date=None,
        run_type=DagRunType.MANUAL,
        state=DagRunState.RUNNING,
        consumed_asset_events=[],
        partition_key=None,
    )
    return runtime_context(task, run)


def strings(value: Any, seen: set[int] | None = None, depth: int = 0) -> Iterator[str]:
    """Every string reachable from ``value`` (containers and plain objects' attributes)."""
    seen = set() if seen is None else seen
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        yield value
        return
    if id(value) in seen or depth > 8 or value is None or isinstance(value, int | float | type):
        return
    seen.add(id(value))
    if isinstance(value, dict):
        items: Any = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    elif hasattr(value, "__dict__") and not callable(value):
        skip = {"dag", "_dag", "task_group", "_log", "log", "_logger"}
        items = [v for k, v in vars(value).items() if k not in skip]
    else:
        return
    for item in items:
        yield from strings(item, seen, depth + 1)


def assert_no_leak(value: Any, what: str) -> None:
    for text in strings(value):
        for leak in LEAKS:
            assert leak not in text, f"{what} holds the password: {text[:200]}"


def run_backend(task: Any, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the task's backend (not the bookkeeping) up to its process / pod / container launch.

    Returns what would be launched: the spark-submit command, the job's argv, the pod or
    the container's command, environment and image.
    """
    launched: dict[str, Any] = {}
    name = type(task).__name__
    if name == "DlflowSparkSubmitOperator":
        from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

        from dlflow_airflow.operators.spark import SparkJobOperator

        def submit(hook: Any, application: str = "", **_: Any) -> None:
            launched["argv"] = hook._build_spark_submit_command(application)

        monkeypatch.setattr(SparkSubmitHook, "submit", submit)
        monkeypatch.setattr(SparkJobOperator, "shipped_py_files", lambda self: self.py_files)
        SparkJobOperator.execute(task, context)
    elif name == "DlflowTfJobOperator":
        from dlflow_airflow.runners.local import TfJobOperator
        from dlflow_airflow.runners.process import LocalProcess

        def run(process: Any, module: str, args: list[str], **kwargs: Any) -> None:
            launched["argv"] = process.command(module, args)
            launched["env"] = kwargs.get("env")

        monkeypatch.setattr(LocalProcess, "run", run)
        TfJobOperator.execute(task, context)
    elif name == "DlflowTfPodOperator":
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        from dlflow_airflow.runners.kubernetes import TfPodOperator

        # The pod takes only its XCom sidecar's settings from the (absent) connection.
        monkeypatch.setattr(KubernetesHook, "conn_extras", {})

        def pod(operator: Any, context: Any) -> None:
            request = operator.build_pod_request_obj(context, dry_run=True)
            launched["pod"] = request.to_dict()
            launched["argv"] = request.spec.containers[0].args

        monkeypatch.setattr(KubernetesPodOperator, "execute", pod)
        TfPodOperator.execute(task, context)
    elif name == "DlflowTfDockerOperator":
        from airflow.providers.docker.operators.docker import DockerOperator

        from dlflow_airflow.runners.docker import TfDockerOperator

        def container(operator: Any, context: Any) -> str:
            launched["argv"] = operator.format_command(operator.command)
            launched["env"] = operator.environment
            launched["image"] = operator.image
            return ""

        monkeypatch.setattr(DockerOperator, "execute", container)
        TfDockerOperator.execute(task, context)
    elif name == "UpstreamPartitionSensor":
        launched["trigger"] = task.build_trigger().serialize()
    else:
        raise AssertionError(f"no backend stub for {name}")
    return launched


def job_document(argv: list[str]) -> dict[str, Any]:
    assert argv[argv.index("--date") + 1] == DATE
    return json.loads(argv[argv.index("--job") + 1])


@pytest.mark.parametrize("runners", ["local", "containers"])
def test_a_templated_password_reaches_no_field_argv_or_log(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    runners: str,
) -> None:
    if runners == "containers":
        container_providers()
    caplog.set_level(logging.DEBUG)
    doc = templated_pipeline(tmp_path, runners)
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    kinds = {type(t).__name__ for t in dag.tasks}
    expected = {"DlflowSparkSubmitOperator", "UpstreamPartitionSensor"}
    expected |= (
        {"DlflowTfPodOperator", "DlflowTfDockerOperator"}
        if runners == "containers"
        else {"DlflowTfJobOperator"}
    )
    assert kinds == expected
    for task in dag.tasks:
        context = template_context(task)
        # The context is live: this very template would print the password.
        assert task.render_template(TEMPLATE, context) == PASSWORD
        task.render_template_fields(context)
        assert task.stage_date == DATE, task.task_id
        for field in task.template_fields:
            assert_no_leak(getattr(task, field), f"{task.task_id}.{field}")
        assert_no_leak(vars(task), task.task_id)

        launched = run_backend(task, context, monkeypatch)
        assert_no_leak(launched, f"what {task.task_id} launches")
        if "argv" in launched:
            body = job_document(launched["argv"])
            assert body["model"]["params"] == {"note": TEMPLATE, "other": REVERSED}
            assert body["workspace"].endswith(TEMPLATE)
    assert_no_leak([r.getMessage() for r in caplog.records], "the task log")
    captured = capsys.readouterr()
    assert_no_leak([captured.out, captured.err], "the output")


def test_spark_conf_and_yaml_values_reach_the_backends_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container_providers()
    doc = templated_pipeline(tmp_path, "containers")
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))

    merge = dag.get_task("merge")
    launched = run_backend(merge, template_context(merge), monkeypatch)
    assert f"spark.dlflow.note={TEMPLATE}" in launched["argv"]
    assert f"spark.app.tag={REVERSED}" in launched["argv"]

    train = dag.get_task("train")
    train.render_template_fields(template_context(train))
    pod = run_backend(train, template_context(train), monkeypatch)["pod"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == f"img:{TEMPLATE}"
    assert {"name": "NOTE", "value": TEMPLATE, "value_from": None} in container["env"]
    assert pod["metadata"]["labels"]["note"] == TEMPLATE
    assert pod["metadata"]["namespace"] == TEMPLATE
    assert train.kubernetes_conn_id == TEMPLATE

    evaluate = dag.get_task("evaluate")
    evaluate.render_template_fields(template_context(evaluate))
    launched = run_backend(evaluate, template_context(evaluate), monkeypatch)
    assert launched["image"] == f"img:{REVERSED}"
    assert launched["env"] == {"NOTE": TEMPLATE}
    assert launched["argv"][:4] == ["python", "-u", "-m", "tf_jobs.evaluate"]


def test_spark_conf_keeps_sparks_own_placeholders() -> None:
    """Spark fills ``{{APP_ID}}`` / ``{{EXECUTOR_ID}}`` itself; Jinja used to blank them."""
    doc = base_pipeline()
    doc["spark"] = {"conf": {"spark.ui.custom.executor.log.url": "http://logs/{{APP_ID}}"}}
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    encode = dag.get_task("encode")
    encode.render_template_fields(template_context(encode))
    assert encode.conf == {"spark.ui.custom.executor.log.url": "http://logs/{{APP_ID}}"}


def test_only_the_date_and_fields_no_yaml_fills_are_templates() -> None:
    container_providers()
    from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator
    from dlflow_airflow.runners.docker import DlflowTfDockerOperator
    from dlflow_airflow.runners.kubernetes import DlflowTfPodOperator
    from dlflow_airflow.runners.local import DlflowTfJobOperator
    from dlflow_airflow.sensors.upstream import UpstreamPartitionSensor

    # What the factory and the runners fill from YAML, per operator.
    from_yaml: dict[type, set[str]] = {
        DlflowSparkSubmitOperator: {"application_args", "conf", "spark_python"},
        DlflowTfJobOperator: {"workers"},
        DlflowTfPodOperator: {
            "image",
            "arguments",
            "env_vars",
            "labels",
            "namespace",
            "container_resources",
            "volumes",
            "volume_mounts",
            "node_selector",
            "kubernetes_conn_id",
            "service_account_name",
            "image_pull_policy",
        },
        DlflowTfDockerOperator: {
            "image",
            "command",
            "environment",
            "mounts",
            "docker_url",
            "network_mode",
            "mem_limit",
        },
        UpstreamPartitionSensor: {"dependencies", "workspace"},
    }
    for cls, fields in from_yaml.items():
        templated = set(cls.template_fields)
        assert {"date", "stage_date"} <= templated, cls.__name__
        fields |= {"job_body", "stage_body"}
        assert not templated & fields, (cls.__name__, templated & fields)
