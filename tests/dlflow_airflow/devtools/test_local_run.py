"""``dlflow-airflow run`` and ``demo``: dates, pipeline names, one ``airflow dags test`` per date.

Airflow itself is faked here (the demo runs for real in tests/e2e/test_demo.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dlflow_airflow.devtools import demo, report
from dlflow_airflow.devtools.cli import main
from dlflow_airflow.devtools.local_run import RunRequestError, pipeline_file, requested_dates
from tests.conftest import DEMO_PIPELINE


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    (folder / "pipelines").mkdir(parents=True)
    shutil.copy(DEMO_PIPELINE, folder / "pipelines" / "demo_ctr.yaml")
    return folder


@pytest.fixture
def airflow_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every ``airflow`` command run; ``dags test`` fails for 2026-01-03, the rest succeed."""
    calls: list[tuple[str, ...]] = []

    def fake_airflow(setup: demo.DemoSetup, *args: str, log: Path | None = None) -> int:
        calls.append(args)
        if log is not None:
            with log.open("a") as handle:
                handle.write(f"airflow {' '.join(args)}\n")
        return 1 if args[-1] == "2026-01-03" else 0

    monkeypatch.setattr(demo, "airflow", fake_airflow)
    monkeypatch.setattr(report, "render", lambda pipeline, day: (f"report of {day}", True))
    return calls


def test_a_range_includes_both_ends() -> None:
    assert requested_dates(None, "2026-01-30", "2026-02-02") == [
        "2026-01-30",
        "2026-01-31",
        "2026-02-01",
        "2026-02-02",
    ]
    assert requested_dates("2026-01-05", None, None) == ["2026-01-05"]


@pytest.mark.parametrize(
    ("on", "start", "end", "message"),
    [
        (None, None, None, "give --date D, or both --from D1 and --to D2"),
        (None, "2026-01-01", None, "give --date D, or both --from D1 and --to D2"),
        ("2026-01-01", "2026-01-01", "2026-01-02", "either --date or --from/--to"),
        ("2026-1-5", None, None, "partition date '2026-1-5' is not YYYY-MM-DD"),
        (None, "2026-02-30", "2026-03-01", "'2026-02-30' is not a calendar date"),
        (None, "2026-01-05", "2026-01-04", "--from 2026-01-05 is after --to 2026-01-04"),
    ],
)
def test_bad_dates_are_refused(on, start, end, message) -> None:
    with pytest.raises(RunRequestError, match=message):
        requested_dates(on, start, end)


def test_a_pipeline_is_a_name_or_a_file_of_the_dag_folder(dags: Path, tmp_path: Path) -> None:
    yaml_file = dags / "pipelines" / "demo_ctr.yaml"
    assert pipeline_file("demo_ctr", dags) == yaml_file.resolve()
    assert pipeline_file(str(yaml_file), dags) == yaml_file.resolve()
    with pytest.raises(RunRequestError, match="did you mean 'demo_ctr'"):
        pipeline_file("demo_crt", dags)
    elsewhere = tmp_path / "mine.yaml"
    shutil.copy(yaml_file, elsewhere)
    with pytest.raises(RunRequestError, match=r"not in the DAG folder's pipelines/ .*--dags"):
        pipeline_file(str(elsewhere), dags)


def test_run_goes_date_by_date_and_stops_at_the_first_failure(
    dags: Path, tmp_path: Path, airflow_calls: list[tuple[str, ...]], capsys
) -> None:
    home = tmp_path / "home"
    argv = ["run", "demo_ctr", "--from", "2026-01-01", "--to", "2026-01-05"]
    assert main([*argv, "--dags", str(dags), "--home", str(home)]) == 1
    # The DB is migrated once; 01-04 and 01-05 never run.
    assert airflow_calls == [
        ("db", "migrate"),
        ("dags", "test", "dlflow_demo_ctr", "2026-01-01"),
        ("dags", "test", "dlflow_demo_ctr", "2026-01-02"),
        ("dags", "test", "dlflow_demo_ctr", "2026-01-03"),
    ]
    out, err = capsys.readouterr()
    assert "report of 2026-01-02\n2026-01-02 ok in 0 s\n" in out
    log = home.resolve() / "logs" / "dlflow_demo_ctr" / "2026-01-03.log"
    assert f"2026-01-03 failed in 0 s (airflow exit code 1); log: {log}" in out
    assert "2 of 5 dates ok:" in out
    assert err.strip() == (
        f"dlflow_demo_ctr failed for 2026-01-03: see {log}; not run: 2026-01-04..2026-01-05"
    )
    assert log.read_text() == "airflow dags test dlflow_demo_ctr 2026-01-03\n"


def test_one_date_and_its_errors(dags: Path, tmp_path: Path, airflow_calls, capsys) -> None:
    home = ["--dags", str(dags), "--home", str(tmp_path / "home")]
    assert (
        main(["run", str(dags / "pipelines" / "demo_ctr.yaml"), "--date", "2026-01-02", *home]) == 0
    )
    assert airflow_calls[-1] == ("dags", "test", "dlflow_demo_ctr", "2026-01-02")
    assert "2026-01-02 ok in 0 s" in capsys.readouterr().out
    assert main(["run", "demo_ctr", "--from", "2026-01-02", "--to", "2026-01-01", *home]) == 2
    assert (
        capsys.readouterr().err
        == "dlflow-airflow run: --from 2026-01-02 is after --to 2026-01-01\n"
    )


def test_demo_runs_through_the_same_code(dags: Path, tmp_path: Path, airflow_calls, capsys) -> None:
    argv = ["demo", "--dags", str(dags), "--home", str(tmp_path / "home"), "--date", "2026-01-02"]
    assert main(argv) == 0
    assert airflow_calls == [("db", "migrate"), ("dags", "test", "dlflow_demo_ctr", "2026-01-02")]
    out = capsys.readouterr().out
    assert "report of 2026-01-02\n2026-01-02 ok in 0 s\n" in out
    assert "dlflow-airflow serve --home" in out
