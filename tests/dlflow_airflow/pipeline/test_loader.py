"""The loader isolates each file: any failure is that file's error, within a time budget."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from dlflow_airflow.pipeline import loader
from dlflow_airflow.pipeline.errors import Issue, PipelineError
from dlflow_airflow.pipeline.loader import (
    broken_pipelines,
    build_pipeline_dag,
    describe,
    format_error,
    load_dags,
    load_pipeline,
    scan,
)
from tests.dlflow_airflow.pipelines import base_pipeline

KIND = "tests.dlflow_airflow.user_stages:Hostile"


def _write(folder: Path, name: str, dag_id: str = "t_pipeline", **hostile: str) -> Path:
    doc = base_pipeline()
    doc["dag_id"] = dag_id
    if hostile:
        doc["stages"]["hostile"] = {"kind": KIND, **hostile}
    path = folder / name
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> set:
    """Airflow's auto-registration, as while a DAG file is being imported."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    monkeypatch.setattr(DagContext, "current_autoregister_module_name", __name__)
    monkeypatch.setattr(DagContext, "autoregistered_dags", set())
    return DagContext.autoregistered_dags


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("TypeError", "could not be loaded: TypeError: boom from a stage kind"),
        ("KeyError", "could not be loaded: KeyError: 'boom from a stage kind'"),
        ("ZeroDivisionError", "could not be loaded: ZeroDivisionError: boom from a stage kind"),
        ("SystemExit", "could not be loaded: SystemExit: boom from a stage kind"),
        ("MemoryError", "ran out of memory while loading"),
        ("RecursionError", "nested too deeply to load (Python's recursion limit)"),
    ],
)
def test_any_exception_is_the_files_error(tmp_path: Path, error: str, message: str):
    path = _write(tmp_path, "p.yaml", error=error)
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    assert format_error(info.value) == f"{path}: {message}"


def test_a_build_failure_is_the_files_error(tmp_path: Path):
    path = _write(tmp_path, "p.yaml", error="ValueError", when="build")
    pipeline = load_pipeline(path)
    with pytest.raises(PipelineError, match=r"p\.yaml: could not be loaded: ValueError: boom"):
        build_pipeline_dag(pipeline)


def test_a_built_dag_is_registered_only_when_asked(tmp_path: Path, registered: set):
    pipeline = load_pipeline(_write(tmp_path, "p.yaml"))
    build_pipeline_dag(pipeline, register=False)
    assert registered == set()
    dag = build_pipeline_dag(pipeline)
    assert [d for d, _ in registered] == [dag]


def test_a_half_built_dag_is_never_registered(tmp_path: Path, registered: set):
    pipeline = load_pipeline(_write(tmp_path, "p.yaml", error="RuntimeError", when="build"))
    with pytest.raises(PipelineError):
        build_pipeline_dag(pipeline)
    assert registered == set()


def test_a_dag_left_open_is_closed(tmp_path: Path, registered: set):
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    pipeline = load_pipeline(_write(tmp_path, "p.yaml", error="leave_open", when="build"))
    with pytest.raises(PipelineError, match="left a DAG open"):
        build_pipeline_dag(pipeline)
    assert DagContext.get_current() is None
    assert registered == set()


def test_a_slow_file_is_stopped_at_the_time_budget(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(loader, "FILE_TIME_BUDGET_SECONDS", 0.2)
    handler = signal.getsignal(signal.SIGALRM)
    path = _write(tmp_path, "p.yaml", error="sleep")
    with pytest.raises(PipelineError, match=r"p\.yaml: took longer than 0\.2 s to load"):
        load_pipeline(path)
    assert signal.getsignal(signal.SIGALRM) is handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.fixture
def outer_timer():
    """Arm an outer SIGALRM timer (as Airflow's import timeout does); disarmed afterwards."""
    previous = signal.getsignal(signal.SIGALRM)

    def arm(seconds: float, handler) -> None:
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_an_outer_timer_is_kept_and_rearmed(tmp_path: Path, outer_timer):
    def handler(signum, frame):
        raise AssertionError("the outer timer fired")

    outer_timer(60, handler)
    load_pipeline(_write(tmp_path, "p.yaml"))
    assert signal.getsignal(signal.SIGALRM) is handler
    assert 50 < signal.getitimer(signal.ITIMER_REAL)[0] <= 60


def test_airflows_import_timeout_ends_the_dag_file_not_one_pipeline(tmp_path: Path, outer_timer):
    from airflow.sdk.exceptions import AirflowTaskTimeout

    def handler(signum, frame):
        raise AirflowTaskTimeout("DagBag import timeout")

    outer_timer(0.2, handler)  # shorter than the file's budget: Airflow's comes first
    with pytest.raises(AirflowTaskTimeout):
        load_pipeline(_write(tmp_path, "p.yaml", error="sleep"))


def test_outside_the_main_thread_files_load_without_a_timer(tmp_path: Path):
    path = _write(tmp_path, "p.yaml")
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(load_pipeline, path).result().spec.dag_id == "t_pipeline"


def test_a_folder_never_raises_and_names_each_broken_file(tmp_path: Path, registered: set):
    _write(tmp_path, "a_good.yaml", dag_id="good")
    _write(tmp_path, "b_build.yaml", dag_id="build", error="MemoryError", when="build")
    _write(tmp_path, "c_validate.yaml", dag_id="validate", error="RecursionError")
    _write(tmp_path, "d_same.yaml", dag_id="good")
    assert set(load_dags(tmp_path)) == {"good"}
    assert {d.dag_id for d, _ in registered} == {"good"}
    errors = broken_pipelines(tmp_path)
    assert [e.split(": ", 1)[0] for e in errors] == [
        str(tmp_path / name) for name in ("c_validate.yaml", "d_same.yaml", "b_build.yaml")
    ]
    assert "dag_id: 'good' is already used by" in errors[1]
    assert "ran out of memory" in errors[2]


def test_a_duplicate_dag_id_is_the_later_files_error(tmp_path: Path):
    _write(tmp_path, "a.yaml")
    _write(tmp_path, "b.yaml")
    found = scan(tmp_path)
    assert list(found.pipelines) == ["t_pipeline"]
    assert found.errors == [
        f"{tmp_path / 'b.yaml'}: dag_id: 't_pipeline' is already used by {tmp_path / 'a.yaml'}"
    ]


def test_errors_are_one_line_per_issue_with_control_characters_escaped():
    error = PipelineError("dags/a\nb.yaml", [Issue("stages.x\ry", "bad"), Issue("", "worse")])
    assert format_error(error).splitlines() == [
        "dags/a\\nb.yaml: stages.x\\ry: bad",
        "dags/a\\nb.yaml: worse",
    ]


def test_an_unexpected_failure_is_described_in_one_short_line():
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    assert describe(ValueError("a\nb " + "x" * 1000)).startswith(
        "could not be loaded: ValueError: a b x"
    )
    assert len(describe(ValueError("x" * 1000))) < 400
    assert describe(Unprintable()) == "could not be loaded: Unprintable"
