"""Mistakes ``dlflow-airflow validate`` must catch before a run spends time on merge and encode.

Each case goes through the command as a user runs it: the file is written as
YAML, the message is one line ``file: key.path: message`` on stderr, never a
traceback. Also: forms users write that must be accepted (unquoted dates).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlflow_airflow.contract import plugins
from dlflow_airflow.devtools.cli import main
from dlflow_airflow.pipeline.build import Pipeline
from tests.conftest import REPO
from tests.dlflow_airflow.pipelines import base_pipeline

Doc = dict[str, Any]
UNSET = "DLFLOW_TEST_SURELY_UNSET"


def _write(tmp_path: Path, doc: Doc | str, name: str = "pipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def _validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[str], str]:
    code = main(["validate", *map(str, paths)])
    out, err = capsys.readouterr()
    return code, err.splitlines(), out


def _merge(**options: Any) -> Callable[[Doc], Doc]:
    def mutate(doc: Doc) -> Doc:
        doc["stages"]["merge"].update(options)
        return doc

    return mutate


def _model(**fields: Any) -> Callable[[Doc], Doc]:
    def mutate(doc: Doc) -> Doc:
        doc["model"].update(fields)
        return doc

    return mutate


def _labels(labels: list[str]) -> Callable[[Doc], Doc]:
    def mutate(doc: Doc) -> Doc:
        doc["feature"]["labels"] = labels
        return doc

    return mutate


def _top(**fields: Any) -> Callable[[Doc], Doc]:
    def mutate(doc: Doc) -> Doc:
        doc.update(fields)
        return doc

    return mutate


def _wait(dependencies: dict[str, Any]) -> Callable[[Doc], Doc]:
    def mutate(doc: Doc) -> Doc:
        doc["stages"]["wait"] = {"kind": "wait_upstream", "dependencies": dependencies}
        return doc

    return mutate


CATCHES = [
    # (id, mutation, key path, message fragment)
    (
        "misspelled model name",
        _model(name="dnn_binary_clasifier"),
        "model.name",
        "unknown model 'dnn_binary_clasifier'; known models: deepfm, dnn_binary_classifier, "
        "dnn_classifier, dnn_multilabel_classifier, dnn_multitask, dnn_regressor; "
        "did you mean 'dnn_binary_classifier'?",
    ),
    (
        "unknown model param",
        _model(params={"hiden_units": [8]}),
        "model.params.hiden_units",
        "unknown param 'hiden_units' (did you mean 'hidden_units'?); accepted params: "
        "batch_size, dropout, embedding_dim, epochs, hidden_units, learning_rate",
    ),
    (
        "model param of the wrong type",
        _model(params={"epochs": "one"}),
        "model.params.epochs",
        "param epochs must be an integer, got 'one' (default 3)",
    ),
    (
        "model param out of range",
        _model(params={"dropout": 1.5}),
        "model.params.dropout",
        "dropout must be in [0, 1), got 1.5",
    ),
    (
        "user model param by module:attr",
        _model(name="examples.wide_and_deep:WIDE_AND_DEEP", params={"deep_unit": [8]}),
        "model.params.deep_unit",
        "unknown param 'deep_unit' (did you mean 'deep_units'?)",
    ),
    (
        "user model range check by module:attr",
        _model(name="examples.wide_and_deep:WIDE_AND_DEEP", params={"deep_units": []}),
        "model.params.deep_units",
        "deep_units must be positive, got []",
    ),
    (
        "module:attr that is not a model",
        _model(name="examples.wide_and_deep:build"),
        "model.name",
        "model 'examples.wide_and_deep:build' is a function, not a "
        "dlflow_airflow.contract.models.ModelSpec",
    ),
    (
        "module:attr that cannot be imported",
        _model(name="no_such_pkg_x.models:MODEL"),
        "model.name",
        "cannot import module 'no_such_pkg_x.models'",
    ),
    (
        "a binary model with two labels",
        _labels(["click", "buy"]),
        "feature.labels",
        "a binary model learns exactly one label; feature.labels has 2 (click, buy); "
        "several labels need a multilabel or multitask model",
    ),
    (
        "a multiclass model without a label",
        lambda doc: _labels([])(_model(name="dnn_classifier")(doc)),
        "feature.labels",
        "a multiclass model learns exactly one label; feature.labels has 0 (none)",
    ),
    (
        "heads for a model that is not multitask",
        _model(heads={"label": "regression"}),
        "model.heads",
        "model.heads is read by multitask models only; this one is binary",
    ),
    (
        "a head that is not a label",
        lambda doc: _labels(["click", "gmv"])(
            _model(name="dnn_multitask", heads={"gvm": "regression"})(doc)
        ),
        "model.heads",
        "model.heads.gvm: not one of feature.labels ['click', 'gmv']",
    ),
    (
        "a head kind that does not exist",
        lambda doc: _labels(["click", "gmv"])(
            _model(name="dnn_multitask", heads={"gmv": "multiclass"})(doc)
        ),
        "model.heads",
        "model.heads.gmv: 'multiclass' is not one of binary, regression",
    ),
    (
        "unset variable in the workspace",
        _top(workspace=f"${{{UNSET}}}/ws"),
        "workspace",
        f"environment variable {UNSET} is not set and has no default",
    ),
    (
        "unset variable in the seed path",
        _merge(seed={"path": f"${{{UNSET}}}/seed/dt={{date}}"}),
        "stages.merge.seed.path",
        f"environment variable {UNSET} is not set and has no default",
    ),
    (
        "unset variable in the seed SQL file",
        _merge(seed={"sql": f"${{{UNSET}}}/seed.sql"}),
        "stages.merge.seed.sql",
        f"environment variable {UNSET} is not set",
    ),
    (
        "unset variable in a source path",
        _merge(sources=[{"name": "profile", "path": f"/up/${{{UNSET}}}/dt={{date}}"}]),
        "stages.merge.sources.0.path",
        f"environment variable {UNSET} is not set",
    ),
    (
        "unset variable in a SQL step file",
        _merge(steps=[{"sql": {"file": f"${{{UNSET}}}/step.sql"}}]),
        "stages.merge.steps.0.sql.file",
        f"environment variable {UNSET} is not set",
    ),
    (
        "unset variable in a merge dependency path",
        _merge(dependencies={"profile": {"path": f"${{{UNSET}}}/profile/dt={{date}}"}}),
        "stages.merge.dependencies.profile.path",
        f"environment variable {UNSET} is not set and has no default",
    ),
    (
        "unset variable in a wait_upstream dependency path",
        _wait({"profile": {"path": f"${{{UNSET}}}/profile/dt={{date}}"}}),
        "stages.wait.dependencies.profile.path",
        f"environment variable {UNSET} is not set",
    ),
    (
        "unknown placeholder in the seed path",
        _merge(seed={"path": "{workspace}/seed/dt={dt}"}),
        "stages.merge.seed.path",
        "has unknown placeholder {dt}; allowed: {workspace}, {date}, {date_nodash}, {year}, "
        "{month}, {day}",
    ),
    (
        "unknown placeholder in a source path",
        _merge(
            dependencies={"yday": {"date": {"offset_days": -1}}},
            sources=[{"name": "profile", "path": "/up/profile/dt={yesterday}"}],
        ),
        "stages.merge.sources.0.path",
        "has unknown placeholder {yesterday}; allowed: {workspace}, {date}, {date_nodash}, "
        "{year}, {month}, {day}, {yday}",
    ),
    (
        "unknown placeholder in a SQL step file",
        _merge(steps=[{"sql": {"file": "{workspace}/sql/{name}.sql"}}]),
        "stages.merge.steps.0.sql.file",
        "has unknown placeholder {name}",
    ),
    (
        "dependency path naming another dependency",
        _merge(
            dependencies={
                "region": {"static": "cn"},
                "profile": {"path": "/up/{region}/dt={date}"},
            }
        ),
        "stages.merge.dependencies.profile.path",
        "has unknown placeholder {region}; allowed: {workspace}, {date}, {date_nodash}, "
        "{year}, {month}, {day}",
    ),
    (
        "unknown placeholder in a wait_upstream path",
        _wait({"profile": {"path": "/up/profile/dt={dt}"}}),
        "stages.wait.dependencies.profile.path",
        "has unknown placeholder {dt}",
    ),
    (
        "malformed placeholder",
        _merge(seed={"path": "{workspace}/seed/dt={date"}),
        "stages.merge.seed.path",
        "is malformed",
    ),
    (
        "dependency named like a built-in placeholder",
        _merge(dependencies={"date": {"static": "x"}}),
        "stages.merge.dependencies",
        "dependency names ['date'] are reserved placeholders",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key_path", "fragment"),
    [pytest.param(m, k, f, id=i) for i, m, k, f in CATCHES],
)
def test_validate_catches(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mutate: Callable[[Doc], Doc],
    key_path: str,
    fragment: str,
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    path = _write(tmp_path, mutate(base_pipeline()))
    code, lines, out = _validate(capsys, path)
    assert code == 1
    assert out == ""
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {key_path}: "), lines[0]
    assert fragment in lines[0]


def test_every_model_and_path_problem_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    doc = base_pipeline()
    doc["model"]["params"] = {"hiden_units": [8], "epochs": "one"}
    doc["stages"]["merge"]["sources"] = [{"name": "p", "path": "/up/{dt}"}]
    doc["stages"]["wait"] = {"kind": "wait_upstream", "dependencies": {"p": {"path": "/x/{d}"}}}
    code, lines, _ = _validate(capsys, _write(tmp_path, doc))
    assert code == 1
    keys = [line.split(": ")[1] for line in lines]
    assert keys == [  # in the file's order (safe_dump sorts the keys)
        "model.params.epochs",
        "model.params.hiden_units",
        "stages.merge.sources.0.path",
        "stages.wait.dependencies.p.path",
    ]


def test_a_user_models_own_bug_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    package = tmp_path / "src" / "buggy_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from dlflow_airflow.contract.models import ModelSpec\n"
        "def _validate(params):\n"
        "    params['no_such_param']\n"
        "MODEL = ModelSpec(name='buggy', build='buggy_models:build', defaults={'units': 4},\n"
        "                  validate=_validate)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    path = _write(tmp_path, _model(name="buggy_models:MODEL")(base_pipeline()))
    code, lines, _ = _validate(capsys, path)
    assert code == 1
    assert lines == [f"{path}: model.params: model 'buggy_models:MODEL': KeyError: 'no_such_param'"]


def test_entry_point_model_params_are_checked(tmp_path: Path, capsys, monkeypatch) -> None:
    dist = tmp_path / "my_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[dlflow_airflow.models]\nwide_and_deep = examples.wide_and_deep:WIDE_AND_DEEP\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins._group.cache_clear()  # entry points are read once per process
    try:
        good = _write(tmp_path, _model(name="wide_and_deep")(base_pipeline()), "good.yaml")
        doc = _model(name="wide_and_deep", params={"deep_units": "wide"})(base_pipeline())
        bad = _write(tmp_path, doc, "bad.yaml")
        code, lines, out = _validate(capsys, good, bad)
    finally:
        plugins._group.cache_clear()
    assert code == 1
    assert out.startswith(f"ok {good}: ")
    assert lines == [
        f"{bad}: model.params.deep_units: param deep_units must be a list of integers, "
        "got 'wide' (default [32, 16])"
    ]


def test_duplicate_dag_id_across_files_names_both(tmp_path: Path, capsys) -> None:
    first = _write(tmp_path, base_pipeline(), "a.yaml")
    second = _write(tmp_path, base_pipeline(), "b.yaml")
    other = _write(tmp_path, _top(dag_id="t_other")(base_pipeline()), "c.yaml")
    code, lines, out = _validate(capsys, first, second, other)
    assert code == 1
    assert lines == [f"{second}: dag_id: 't_pipeline' is already used by {first}"]
    assert out.splitlines()[0].startswith(f"ok {first}: dag t_pipeline")
    assert out.splitlines()[1].startswith(f"ok {other}: dag t_other")


def test_set_variables_are_expanded_in_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLFLOW_TEST_UP", "hdfs:///up")
    doc = base_pipeline()
    doc["stages"]["merge"] = {
        "seed": {"sql": "${DLFLOW_TEST_UP}/seed.sql"},
        "sources": [{"name": "p", "path": "${DLFLOW_TEST_UP}/p/dt={date}"}],
        "dependencies": {"q": {"path": "${DLFLOW_TEST_UP}/q/dt={date}"}},
        "steps": [{"sql": {"file": "${DLFLOW_TEST_UP}/step.sql"}}],
    }
    doc["stages"]["wait"] = {
        "kind": "wait_upstream",
        "dependencies": {"q": {"path": "${DLFLOW_TEST_MISSING:-/fallback}/q/dt={date}"}},
    }
    pipeline = Pipeline.from_data(doc, source="p.yaml")
    merge = pipeline.stages["merge"].options
    assert merge.seed.sql == "hdfs:///up/seed.sql"
    assert merge.sources[0].path == "hdfs:///up/p/dt={date}"
    assert merge.dependencies["q"].path == "hdfs:///up/q/dt={date}"
    assert merge.steps[0].sql.file == "hdfs:///up/step.sql"
    assert pipeline.stages["wait"].options.dependencies["q"].path == "/fallback/q/dt={date}"
    # The job document carries the expanded paths: the worker needs no variable.
    body = pipeline.stages["merge"].context(pipeline.spec).job_body()
    assert "${" not in str(body)


def test_dependency_names_are_placeholders_of_merge_paths() -> None:
    doc = base_pipeline()
    doc["stages"]["merge"] = {
        "seed": {"path": "{workspace}/seed/dt={date_nodash}"},
        "sources": [{"name": "p", "path": "{profile}"}, {"name": "r", "path": "/r/{region}"}],
        "dependencies": {"profile": {"path": "/up/dt={date}"}, "region": {"static": "cn"}},
    }
    assert Pipeline.from_data(doc, source="p.yaml").stages["merge"]


UNQUOTED_DATES = """\
dag_id: t_dates
start_date: 2026-01-01
end_date: 2026-12-31
workspace: /tmp/dlflow-test-ws
feature: {tag: f1, primary_keys: [uid], labels: [label]}
model: {tag: m1, name: dnn_binary_classifier, date: 2026-02-01}
buckets: {user: {features: [age, city]}}
stages:
  merge: {seed: {path: "{workspace}/seed/dt={date}"}}
  encode: {}
  train: {warm_start: 2026-01-15}
  predict: {}
"""


def test_unquoted_yaml_dates_are_accepted(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, UNQUOTED_DATES)
    assert isinstance(yaml.safe_load(UNQUOTED_DATES)["stages"]["train"]["warm_start"], date)
    code, lines, _ = _validate(capsys, path)
    assert (code, lines) == (0, [])
    pipeline = Pipeline.from_file(path)
    assert pipeline.spec.start_date == date(2026, 1, 1)
    assert pipeline.spec.end_date == date(2026, 12, 31)
    assert pipeline.spec.model.date == "2026-02-01"
    assert pipeline.stages["train"].options.warm_start == "2026-01-15"
    train = pipeline.stages["train"]
    assert train.context(pipeline.spec).job_body()["options"]["warm_start"] == "2026-01-15"


def test_a_bad_unquoted_date_is_still_refused(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, UNQUOTED_DATES.replace("warm_start: 2026-01-15", "warm_start: 5"))
    code, lines, _ = _validate(capsys, path)
    assert code == 1
    assert lines == [
        f"{path}: stages.train.warm_start: expected 'none', 'latest' or a model date "
        "YYYY-MM-DD (got 5)"
    ]


_NO_TF_PROBE = """
import sys
from dlflow_airflow.devtools.cli import main
code = main(["validate", *sys.argv[1:]])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tf_jobs"})
print("HEAVY", heavy, "CODE", code)
"""


def test_model_checks_load_no_tensorflow(tmp_path: Path) -> None:
    builtin = _write(tmp_path, _model(params={"epochs": 2})(base_pipeline()), "a.yaml")
    doc = _model(name="examples.wide_and_deep:WIDE_AND_DEEP", params={"deep_units": [8]})(
        _top(dag_id="t_user")(base_pipeline())
    )
    user = _write(tmp_path, doc, "b.yaml")
    done = subprocess.run(
        [sys.executable, "-c", _NO_TF_PROBE, str(builtin), str(user)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert "HEAVY [] CODE 0" in done.stdout, done.stdout + done.stderr
