"""``dlflow-airflow schema``: the JSON Schema editors check pipeline files against."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from dlflow_airflow.devtools.cli import main
from dlflow_airflow.pipeline.extends import read_pipeline
from dlflow_airflow.pipeline.spec_schema import pipeline_json_schema
from tests.conftest import DAGS_FOLDER, DEMO_PIPELINE

SHIPPED = sorted((DAGS_FOLDER / "pipelines").rglob("*.yaml"))  # the bases too


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = pipeline_json_schema()
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft7Validator
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft202012Validator.check_schema(schema)  # valid for newer editors too
    return jsonschema.Draft7Validator(schema)


def _as_editor_reads(data: object) -> object:
    """YAML as an editor checks it: a date is a string there."""
    return json.loads(json.dumps(data, default=str))


def _errors(validator: jsonschema.Draft7Validator, data: object) -> set[tuple[str, str]]:
    return {
        ("/".join(map(str, e.absolute_path)), e.message)
        for e in validator.iter_errors(_as_editor_reads(data))
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(DAGS_FOLDER).as_posix())
def test_every_shipped_file_is_valid_and_so_is_it_merged(validator, path: Path):
    assert _errors(validator, yaml.safe_load(path.read_text())) == set()
    if "common" not in path.parts:  # a base alone is not a pipeline
        merged = read_pipeline(path).data
        assert "dag_id" in merged and _errors(validator, merged) == set()


def _demo() -> dict:
    return copy.deepcopy(yaml.safe_load(DEMO_PIPELINE.read_text()))


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (lambda d: d.update(bogus=1), "", "'bogus' was unexpected"),
        (lambda d: d.pop("workspace"), "", "'workspace' is a required property"),
        (lambda d: d["model"].pop("tag"), "model", "'tag' is a required property"),
        (lambda d: d["stages"]["encode"].update(tfrecordz=1), "stages/encode", "'tfrecordz'"),
        (lambda d: d["stages"].update(score={}), "stages/score", "'kind' is a required"),
        (
            lambda d: d["stages"].update(score={"kind": "predict", "epochs": 2}),
            "stages/score",
            "'epochs' was unexpected",
        ),
        (lambda d: d["stages"].update(encode=[1]), "stages/encode", "is not of type 'object'"),
        (lambda d: d.update(max_active_runs=0), "max_active_runs", "less than the minimum"),
    ],
)
def test_a_wrong_key_or_value_is_flagged_where_it_is(validator, change, where, says):
    doc = _demo()
    change(doc)
    found = _errors(validator, doc)
    assert found and all(path == where and says in message for path, message in found), found


def test_stage_keys_kinds_and_parts_of_a_pipeline(validator):
    doc = _demo()
    doc["stages"].update(
        encode=None,  # no options
        score={"kind": "predict", "batch_size": 64, "pool": "spark"},
        export={"kind": "my_pkg.stages:Export", "anything": [1]},  # a user kind: not checked
    )
    assert _errors(validator, doc) == set()
    part = {"extends": "common/base.yaml", "model": {"date": "latest"}, "stages": {"x": None}}
    assert _errors(validator, part) == set()  # nothing required in a part
    assert _errors(validator, {"extends": 3}) != set()


def test_the_cli_prints_or_writes_it(tmp_path: Path, capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == pipeline_json_schema()
    assert main(["schema", "-o", str(tmp_path / "pipeline.schema.json")]) == 0
    assert json.loads((tmp_path / "pipeline.schema.json").read_text()) == printed


def test_a_schedule_on_assets_and_its_mistakes(validator):
    doc = _demo()
    doc["schedule"] = {
        "assets": ["TRAINED_MODEL", {"artifact": "EVALUATE_RESULT", "tag": "ctr_dnn"}],
        "when": "any",
        "cron": "@daily",
    }
    assert _errors(validator, doc) == set()
    assert _errors(validator, {"extends": "base.yaml", "schedule": {"when": "any"}}) == set()
    for schedule, where, says in (
        ({"assets": ["TRAINED_MODL"]}, "schedule/assets/0", "is not one of ['RAW_FEATURE'"),
        ({"assets": [{"artifact": "FMAP", "tagg": 1}]}, "schedule/assets/0", "'tagg' was unexp"),
        ({"assets": ["FMAP"], "when": "both"}, "schedule/when", "is not one of ['all', 'any']"),
        (["TRAINED_MODEL"], "schedule", "is not of type 'string', 'null'"),
    ):
        doc["schedule"] = schedule
        found = _errors(validator, doc)
        assert found and all(path == where and says in msg for path, msg in found), found
