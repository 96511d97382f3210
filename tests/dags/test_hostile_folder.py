"""Hostile pipeline files beside the good examples: the good DAGs load, each bad file is named.

Regression tests for failures that used to escape the loader (and take every
pipeline of the folder offline): a list as a mapping key, a relative or empty
``kind`` module, alias bombs in a stage option and in ``model.params``, plus
what else a file can do: a recursive alias, deep nesting, a huge or non-UTF-8
file, Python tags, an impossible date, a stage kind raising ``MemoryError``,
``RecursionError`` or failing while it builds, a slow stage kind, a file name
with a control character, a duplicate dag_id. Loaded through Airflow's DagBag
and, for the data-only cases, through ``airflow dags list-import-errors``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlflow_airflow.pipeline import loader
from tests.conftest import DAG_FILES, DAGS_FOLDER, DEMO_PIPELINE

EXAMPLES = sorted((DAGS_FOLDER / "pipelines").glob("*.yaml"))
GOOD_DAG_IDS = {yaml.safe_load(p.read_text())["dag_id"] for p in EXAMPLES}
KIND = "tests.dlflow_airflow.user_stages:Hostile"
# About 1 KB that PyYAML loads as shared references and anything walking it expands
# to 9 ** 9 (387 million) values: the MemoryError and hang.
BOMB = (
    "["
    + ", ".join(
        ["&b0 [x, x, x, x, x, x, x, x, x]"]
        + [f"&b{i} [{', '.join([f'*b{i - 1}'] * 9)}]" for i in range(1, 9)]
    )
    + "]"
)


def _demo(dag_id: str) -> str:
    return DEMO_PIPELINE.read_text().replace("dag_id: dlflow_demo_ctr", f"dag_id: {dag_id}")


def _with_stage(dag_id: str, stage: str) -> str:
    return _demo(dag_id) + f"  hostile: {stage}\n"


# file name -> (its bytes or text, what its error line says after the file name)
DATA_CASES: dict[str, tuple[str | bytes, str]] = {
    "list_key.yaml": (
        _demo("h_list_key") + "? [a, b]\n: 1\n",
        "a key must be a plain value, not a list",  # after "line N, column 3: "
    ),
    "kind_no_module.yaml": (
        _with_stage("h_kind_colon", "{kind: ':Export'}"),
        "stages.hostile.kind: stage kind ':Export': expected 'package.module:attr'",
    ),
    "kind_relative.yaml": (
        _with_stage("h_kind_dot", "{kind: '.stages:Export'}"),
        "stages.hostile.kind: stage kind '.stages:Export': expected 'package.module:attr'",
    ),
    "bomb_in_stage.yaml": (
        _demo("h_bomb_stage").replace("  predict: {}", f"  predict: {{batch_size: {BOMB}}}"),
        "more than 10000 values once aliases are expanded",
    ),
    "bomb_in_params.yaml": (
        _demo("h_bomb_params").replace("    epochs: 4", f"    epochs: 4\n    layers: {BOMB}"),
        "more than 10000 values once aliases are expanded",
    ),
    "recursive_alias.yaml": (
        _demo("h_recursive").replace("    epochs: 4", "    epochs: 4\n    layers: &l [1, *l]"),
        "alias *l stands for a value that contains it",
    ),
    "deep.yaml": (
        _demo("h_deep").replace("    epochs: 4", "    epochs: " + "[" * 900 + "]" * 900),
        "nested more than 32 levels deep",
    ),
    "huge.yaml": (_demo("h_huge") + "#" * (300 * 1024) + "\n", "larger than 262144 bytes"),
    "latin1.yaml": (_demo("h_latin1").replace("DLFlow", "DLFl\xf6w").encode("latin-1"), "UTF-8"),
    "python_tag.yaml": (
        _demo("h_python").replace(
            "catchup: false", "catchup: !!python/object/apply:os.system ['touch PWNED']"
        ),
        "could not determine a constructor for the tag",
    ),
    "bad_date.yaml": (
        _demo("h_bad_date").replace("start_date: 2026-01-01", "start_date: 2026-13-01"),
        "not a valid !!timestamp value '2026-13-01'",
    ),
    "weird\rname.yaml": (_demo("h_weird_name").replace("schedule:", "schedul:"), "unknown key"),
    "zz_same_dag_id.yaml": (_demo("dlflow_demo_ctr"), "dag_id: 'dlflow_demo_ctr' is already used"),
}
KIND_CASES: dict[str, tuple[str | bytes, str]] = {
    "kind_memory.yaml": (
        _with_stage("h_memory", f"{{kind: '{KIND}', error: MemoryError}}"),
        "ran out of memory while loading",
    ),
    "kind_recursion.yaml": (
        _with_stage("h_recursion", f"{{kind: '{KIND}', error: RecursionError}}"),
        "nested too deeply to load",
    ),
    "kind_build.yaml": (
        _with_stage("h_build", f"{{kind: '{KIND}', error: TypeError, when: build}}"),
        "could not be loaded: TypeError: boom from a stage kind",
    ),
}


def _folder(root: Path, cases: dict[str, tuple[str | bytes, str]]) -> Path:
    folder = root / "dags"
    shutil.copytree(DAGS_FOLDER / "pipelines", folder / "pipelines")  # with the bases (common/)
    for dag_file in DAG_FILES:
        shutil.copy(DAGS_FOLDER / dag_file, folder)
    for name, (content, _) in cases.items():
        path = folder / "pipelines" / name
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return folder


def _error_lines(message: str, count: int) -> list[str]:
    """The companion file's message, one line per broken file, never a traceback."""
    header = f"{count} pipeline file(s) could not be loaded:\n"
    assert header in message
    body = message.split(header, 1)[1]
    assert "Traceback" not in body
    return body.strip().splitlines()


def _check_named(lines: list[str], folder: Path, cases: dict[str, tuple[str | bytes, str]]):
    for name, (_, expected) in cases.items():
        shown = str(folder / "pipelines" / name).replace("\r", "\\r")
        (line,) = [line for line in lines if line.startswith(f"{shown}: ")]
        assert expected in line, line


def _bag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def test_hostile_files_beside_good_ones(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where os.system would have written PWNED
    cases = {**DATA_CASES, **KIND_CASES}
    folder = _folder(tmp_path, cases)
    bag = _bag(folder)
    assert set(bag.dag_ids) == GOOD_DAG_IDS  # no hostile DAG, not even a half-built one
    ((path, message),) = bag.import_errors.items()
    assert path.endswith("dlflow_pipeline_errors.py")
    _check_named(_error_lines(message, len(cases)), folder, cases)
    assert not (tmp_path / "PWNED").exists()


def test_a_slow_file_is_cut_at_its_time_budget(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(loader, "FILE_TIME_BUDGET_SECONDS", 0.5)
    cases = {
        "slow.yaml": (
            _with_stage("h_slow", f"{{kind: '{KIND}', error: sleep, when: build}}"),
            "took longer than 0.5 s to load",
        )
    }
    folder = _folder(tmp_path, cases)
    bag = _bag(folder)
    assert set(bag.dag_ids) == GOOD_DAG_IDS
    ((path, message),) = bag.import_errors.items()
    _check_named(_error_lines(message, 1), folder, cases)


def _airflow(folder: Path, home: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run Airflow's CLI on ``folder`` with its own home; its stdout."""
    from dlflow_airflow.devtools.demo import airflow_env

    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        env=airflow_env(home, folder),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in ok, result.stderr[-3000:]
    return result.stdout


def _json(stdout: str) -> list[dict]:
    """The JSON table of ``-o json`` (Airflow may log a warning before it)."""
    return json.loads(next(line for line in reversed(stdout.splitlines()) if line.startswith("[")))


@pytest.mark.e2e
def test_airflow_lists_each_hostile_file_as_an_import_error(tmp_path: Path):
    """Through Airflow's CLI: parse into a fresh metadata DB, then list the import errors."""
    folder = _folder(tmp_path, DATA_CASES)
    home = tmp_path / "airflow"
    home.mkdir()
    _airflow(folder, home, "db", "migrate")
    _airflow(folder, home, "dags", "reserialize")
    # list-import-errors exits 1 when there are import errors.
    listed = _airflow(folder, home, "dags", "list-import-errors", "-o", "json", ok=(1,))
    (error,) = _json(listed)
    assert error["filepath"] == "dlflow_pipeline_errors.py"
    _check_named(_error_lines(error["error"], len(DATA_CASES)), folder, DATA_CASES)
    dags = _json(_airflow(folder, home, "dags", "list", "-o", "json"))
    assert {dag["dag_id"] for dag in dags} == GOOD_DAG_IDS


def _stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()


def test_validate_prints_one_line_per_problem_never_a_traceback(tmp_path: Path, capsys):
    from dlflow_airflow.devtools.cli import main

    cases = {name: case for name, case in DATA_CASES.items() if not name.startswith("zz_")}
    cases.update({k: v for k, v in KIND_CASES.items() if k != "kind_build.yaml"})
    folder = _folder(tmp_path, cases)
    assert main(["validate", *(str(folder / "pipelines" / name) for name in cases)]) == 1
    lines = _stderr_lines(capsys)
    assert len(lines) == len(cases)
    _check_named(lines, folder, cases)


@pytest.mark.parametrize("command", ["report", "demo"])
def test_report_and_demo_print_the_files_problem(tmp_path: Path, capsys, monkeypatch, command):
    from dlflow_airflow.devtools.cli import main

    monkeypatch.setenv("DLFLOW_WORKSPACE", str(tmp_path / "ws"))  # demo sets it
    cases = {"bomb_in_params.yaml": DATA_CASES["bomb_in_params.yaml"]}
    folder = _folder(tmp_path, cases)
    if command == "report":
        argv = ["report", str(folder / "pipelines" / "bomb_in_params.yaml"), "--date", "2026-01-01"]
    else:
        argv = ["demo", "--dags", str(folder), "--home", str(tmp_path / "demo")]
        argv += ["--pipeline", "bomb_in_params"]
    assert main(argv) == 1
    (line,) = _stderr_lines(capsys)
    _check_named([line], folder, cases)


def test_an_unexpected_cli_failure_is_one_line_unless_asked(tmp_path: Path, capsys, monkeypatch):
    from dlflow_airflow.devtools import report
    from dlflow_airflow.devtools.cli import main

    def broken_render(pipeline, date):
        raise KeyError("metrics")

    monkeypatch.setattr(report, "render", broken_render)
    argv = ["report", str(DEMO_PIPELINE), "--date", "2026-01-01"]
    assert main(argv) == 1
    assert _stderr_lines(capsys) == [
        "dlflow-airflow report: KeyError: 'metrics'",
        "(run with --traceback for the details)",
    ]
    with pytest.raises(KeyError):
        main(["--traceback", *argv])


def _extending(dag_id: str, base: str) -> str:
    """A pipeline on the examples' base, under its own dag_id."""
    text = (DAGS_FOLDER / "pipelines" / "ctr_weekly_train.yaml").read_text()
    text = text.replace("dag_id: dlflow_ctr_weekly_train", f"dag_id: {dag_id}")
    return text.replace("extends: common/ctr_base.yaml", f"extends: {base}")


# Bases in pipelines/common/ (never loaded on their own) and the files extending them.
BASES: dict[str, str] = {
    "broken.yaml": "feature: [unclosed\n",
    "bomb.yaml": f"tags: {BOMB}\n",
    "loop_a.yaml": "extends: loop_b.yaml\n",
    "loop_b.yaml": "extends: loop_a.yaml\n",
}
EXTENDS_CASES: dict[str, tuple[str | bytes, str]] = {
    "on_broken_1.yaml": (
        _extending("h_on_broken_1", "common/broken.yaml"),
        "extends: common/broken.yaml: line 2, column 1: invalid YAML: ",
    ),
    "on_broken_2.yaml": (
        _extending("h_on_broken_2", "common/broken.yaml"),
        "extends: common/broken.yaml: line 2, column 1: invalid YAML: ",
    ),
    "on_bomb.yaml": (
        _extending("h_on_bomb", "common/bomb.yaml"),
        "extends: common/bomb.yaml: line 1, column 199: more than 10000 values",
    ),
    "on_loop.yaml": (
        _extending("h_on_loop", "common/loop_a.yaml"),
        "extends: a cycle: on_loop.yaml -> common/loop_a.yaml -> common/loop_b.yaml -> common/",
    ),
    "on_missing.yaml": (
        _extending("h_on_missing", "common/nowhere.yaml"),
        "extends: 'common/nowhere.yaml': not found",
    ),
    "on_outside.yaml": (
        _extending("h_on_outside", "../dlflow_pipelines.py"),
        "extends: '../dlflow_pipelines.py' is outside ",
    ),
    "on_link_out.yaml": (
        _extending("h_on_link_out", "common/link_out.yaml"),
        "extends: 'common/link_out.yaml' is outside ",
    ),
}


def test_a_broken_base_breaks_only_the_files_extending_it(tmp_path: Path):
    outside = tmp_path / "outside.yaml"
    outside.write_text((DAGS_FOLDER / "pipelines" / "common" / "ctr_base.yaml").read_text())
    cases = {
        **EXTENDS_CASES,
        "on_good_base.yaml": (_extending("h_on_good_base", "common/ctr_base.yaml"), ""),
    }
    folder = _folder(tmp_path, cases)
    for name, text in BASES.items():
        (folder / "pipelines" / "common" / name).write_text(text)
    (folder / "pipelines" / "common" / "link_out.yaml").symlink_to(outside)
    bag = _bag(folder)
    assert set(bag.dag_ids) == GOOD_DAG_IDS | {"h_on_good_base"}
    ((path, message),) = bag.import_errors.items()
    assert path.endswith("dlflow_pipeline_errors.py")
    _check_named(_error_lines(message, len(EXTENDS_CASES)), folder, EXTENDS_CASES)
