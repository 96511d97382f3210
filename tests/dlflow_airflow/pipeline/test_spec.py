from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dlflow_airflow.contract.schema import expand_env
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.errors import SpecError
from dlflow_airflow.pipeline.spec import load_spec
from tests.dlflow_airflow.pipelines import base_pipeline


def _set(doc: dict, path: str, value) -> dict:
    keys = path.split(".")
    node = doc
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return doc


def _delete(doc: dict, path: str) -> dict:
    keys = path.split(".")
    node = doc
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return doc


def _write(tmp_path: Path, doc) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


BAD = [
    # (mutation, expected key path, expected message fragment)
    (lambda d: _set(d, "bogus", 1), "bogus", "unknown key 'bogus'; allowed keys: dag_id"),
    (lambda d: _delete(d, "workspace"), "workspace", "required key is missing"),
    (lambda d: _set(d, "feature.primary_keys", []), "feature.primary_keys", "at least 1 item"),
    (lambda d: _set(d, "feature.tagg", "x"), "feature.tagg", "allowed keys: tag, primary_keys"),
    (lambda d: _set(d, "model.date", "yesterday"), "model.date", "'same', 'latest' or a date"),
    (
        lambda d: _set(d, "buckets.user.method", "zscoree"),
        "buckets.user.method",
        "'minmax', 'zscore' or 'pnorm'",
    ),
    (
        lambda d: _set(d, "buckets.user.params", {"p": 3}),
        "buckets.user",
        "params ['p'] do not apply to method 'minmax'; allowed: min, max",
    ),
    (
        lambda d: _set(d, "buckets.user.params", {"min": 1, "max": 1}),
        "buckets.user",
        "params.min (1) must be below params.max (1)",
    ),
    (lambda d: _set(d, "buckets.user.min_count", 0), "buckets.user.min_count", "greater than"),
    (lambda d: _set(d, "buckets.user.encode", "maybe"), "buckets.user.encode", "valid boolean"),
    (
        lambda d: _set(d, "buckets.user.impute", "avg"),
        "buckets.user.impute",
        "'mean', 'median', 'zero', 'min' or 'constant'",
    ),
    (
        lambda d: _set(d, "buckets.user.impute", "constant"),
        "buckets.user",
        "impute: constant needs impute_value: <number>",
    ),
    (
        lambda d: _set(d, "buckets.user.impute_value", 3),
        "buckets.user",
        "impute_value is only read with impute: constant, not 'mean'",
    ),
    (
        lambda d: _set(d, "buckets.user.impute_features", {"income": "zero"}),
        "buckets.user",
        "impute_features names ['income'], which are not features of this bucket",
    ),
    (
        lambda d: _set(d, "buckets.user.impute_features", {"age": {"impute": "zero", "value": 1}}),
        "buckets.user.impute_features.age.value",
        "unknown key 'value'",
    ),
    (
        lambda d: _set(d, "buckets.user.impute_features", {"age": "constant"}),
        "buckets.user.impute_features.age",
        "impute: constant needs impute_value",
    ),
    (
        lambda d: _set(d, "buckets.user.missing_indicators", "yes please"),
        "buckets.user.missing_indicators",
        "valid boolean",
    ),
    (lambda d: _set(d, "schedule", "every day"), "schedule", "neither a cron expression"),
    (lambda d: _set(d, "schedule", ["TRAINED_MODEL"]), "schedule", "or a mapping with assets:"),
    (
        lambda d: _set(d, "schedule", {"assets": ["TRAINED_MODLE"]}),
        "schedule.assets.0",
        "unknown artifact 'TRAINED_MODLE'; did you mean 'TRAINED_MODEL'? artifacts: RAW_FEATURE",
    ),
    (
        lambda d: _set(d, "schedule", {"assets": [{"artifact": "model"}]}),
        "schedule.assets.0.artifact",
        "unknown artifact 'model'; did you mean 'TRAINED_MODEL'?",
    ),
    (
        lambda d: _set(d, "schedule", {"assets": [{"artifact": "FMAP", "pipeline": "x"}]}),
        "schedule.assets.0.pipeline",
        "unknown key 'pipeline'; allowed keys: artifact, tag",
    ),
    (
        lambda d: _set(d, "schedule", {"asset": ["FMAP"]}),
        "schedule.asset",
        "unknown key 'asset'; allowed keys: assets, when, cron",
    ),
    (lambda d: _set(d, "schedule", {"assets": []}), "schedule.assets", "at least 1 item"),
    (
        lambda d: _set(d, "schedule", {"assets": ["FMAP"], "when": "both"}),
        "schedule.when",
        "'all' or 'any'",
    ),
    (
        lambda d: _set(d, "schedule", {"assets": ["FMAP"], "cron": "@once"}),
        "schedule.cron",
        "'@once' gives no dated runs",
    ),
    (
        lambda d: _set(d, "schedule", {"assets": [{"artifact": "TRAINED_MODEL", "tag": "m1"}]}),
        "schedule.assets.0",
        "stage 'train' of this pipeline writes TRAINED_MODEL (asset dlflow.model.m1): "
        "each run would trigger the next",
    ),
    (lambda d: _set(d, "start_date", "2026-13-01"), "start_date", "valid date"),
    (lambda d: _set(d, "workspace", "relative/dir"), "workspace", "absolute path or a URI"),
    (lambda d: _set(d, "default_args.retries", -1), "default_args.retries", "greater than or"),
    (lambda d: _set(d, "catchup", "sometimes"), "catchup", "valid boolean"),
    (
        lambda d: _set(d, "stages.encode", {"tfrecords": True}),
        "stages.encode.tfrecords",
        "unknown key 'tfrecords'; allowed keys: tfrecord, tfrecord_compression, refit, "
        "champion, drift, kind",
    ),
    (
        lambda d: _set(d, "stages.encode", {"tfrecord_compression": "zip"}),
        "stages.encode.tfrecord_compression",
        "'none' or 'gzip'",
    ),
    (
        lambda d: _set(d, "stages.merge.seed.format", "xls"),
        "stages.merge.seed.format",
        "'parquet', 'orc', 'json' or 'csv'",
    ),
    (lambda d: _delete(d, "stages.merge.seed"), "stages.merge.seed", "required key is missing"),
    (
        lambda d: _set(d, "stages.predict", {"batch_size": 0}),
        "stages.predict.batch_size",
        "greater than or equal to 1",
    ),
    (
        lambda d: _set(d, "stages.trainer", {}),
        "stages.trainer.kind",
        "unknown stage kind 'trainer'; known stage kinds: demo_data, encode",
    ),
    (
        lambda d: _set(d, "stages.extra", {"kind": "no_such_module_x:Thing"}),
        "stages.extra.kind",
        "cannot import module 'no_such_module_x'",
    ),
    (lambda d: _set(d, "stages.train", {"runner": "yarn"}), "stages.train.runner", "'local'"),
    # TF stage options (issue 4)
    (
        lambda d: _set(d, "stages.train", {"runner": "kubernetes"}),
        "stages.train",
        "runner 'kubernetes' needs a 'kubernetes' block",
    ),
    (
        lambda d: _set(d, "stages.train", {"docker": {"image": "x:1"}}),
        "stages.train",
        "a 'docker' block is only read with runner: docker",
    ),
    (
        lambda d: _set(d, "stages.train", {"runner": "kubernetes", "kubernetes": {"imag": "x"}}),
        "stages.train.kubernetes.imag",
        "unknown key 'imag'; allowed keys: image, namespace",
    ),
    (
        lambda d: _set(d, "stages.train", {"input": "csv"}),
        "stages.train.input",
        "'parquet' or 'tfrecord'",
    ),
    (
        lambda d: _set(d, "stages.train", {"warm_start": "yesterday"}),
        "stages.train.warm_start",
        "expected 'none', 'latest' or a model date YYYY-MM-DD",
    ),
    (
        lambda d: _set(d, "stages.train", {"workers": 0}),
        "stages.train.workers",
        "greater than or equal to 1",
    ),
    (
        lambda d: _set(
            d, "stages.train", {"workers": 2, "runner": "docker", "docker": {"image": "x:1"}}
        ),
        "stages.train",
        "workers > 1 runs local processes; it needs runner: local",
    ),
    (
        lambda d: _set(d, "stages.evaluate", {"gate": {"auc": 0.7}}),
        "stages.evaluate.gate.auc",
        "valid dictionary",
    ),
    (
        lambda d: _set(d, "stages.evaluate", {"gate": {"acu": {"min": 0.7}}}),
        "stages.evaluate.gate",
        "unknown gate metric ['acu']; known metrics: auc, pr_auc",
    ),
    (
        lambda d: _set(d, "stages.evaluate", {"gate": {"auc": {}}}),
        "stages.evaluate.gate.auc",
        "a gate bound needs min, max or max_drop_vs_blessed",
    ),
    (lambda d: _set(d, "dag_id", "bad id!"), "dag_id", "should match pattern"),
]


@pytest.mark.parametrize(("mutate", "key_path", "fragment"), BAD)
def test_bad_pipeline_names_file_key_path_and_expectation(tmp_path, mutate, key_path, fragment):
    path = _write(tmp_path, mutate(base_pipeline()))
    with pytest.raises(SpecError) as info:
        Pipeline.from_file(path)
    message = str(info.value)
    assert f"{path}: {key_path}: " in message
    assert fragment in message


def test_unknown_kind_suggests_close_name(tmp_path):
    doc = base_pipeline()
    doc["stages"]["scoring"] = {"kind": "predcit"}
    with pytest.raises(SpecError, match="did you mean 'predict'"):
        Pipeline.from_file(_write(tmp_path, doc))


def test_every_problem_is_reported_at_once(tmp_path):
    doc = base_pipeline()
    doc["stages"]["encode"] = {"tfrecords": True}
    doc["stages"]["predict"] = {"batch_size": "big"}
    with pytest.raises(SpecError) as info:
        Pipeline.from_file(_write(tmp_path, doc))
    paths = [issue.path for issue in info.value.issues]
    assert paths == ["stages.encode.tfrecords", "stages.predict.batch_size"]


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("dag_id: x\nfeature: {tag: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken\.yaml: line 3, column 1: invalid YAML"):
        load_spec(path)


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("dag_id: a\ndag_id: b\n")
    with pytest.raises(SpecError, match="duplicate key 'dag_id'"):
        load_spec(path)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("dag_id: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        load_spec(path)


def test_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a mapping of pipeline keys, got list"):
        load_spec(path)


def test_workspace_expands_environment(monkeypatch):
    monkeypatch.setenv("DLFLOW_TEST_WS", "/data/ws")
    assert expand_env("${DLFLOW_TEST_WS}/x") == "/data/ws/x"
    monkeypatch.delenv("DLFLOW_TEST_WS")
    assert expand_env("${DLFLOW_TEST_WS:-/tmp/default}") == "/tmp/default"
    with pytest.raises(ValueError, match="DLFLOW_TEST_WS is not set"):
        expand_env("${DLFLOW_TEST_WS}")


def test_demo_pipeline_is_valid():
    from tests.conftest import DEMO_PIPELINE

    pipeline = Pipeline.from_file(DEMO_PIPELINE)
    assert pipeline.order == ("demo_data", "merge", "encode", "train", "evaluate", "predict")


@pytest.mark.parametrize(
    ("yaml_text", "level"),
    [("", "WARN"), ("  log_level: info\n", "INFO"), ("  log_level: OFF\n", "OFF")],
)
def test_spark_log_level_defaults_to_warn_and_takes_any_case(tmp_path, yaml_text, level):
    path = _write(tmp_path, base_pipeline())
    # Written by hand: a bare OFF is YAML 1.1's false, and still means the level.
    path.write_text(path.read_text() + "spark:\n  conn_id: spark_default\n" + yaml_text)
    assert load_spec(path).spark.log_level == level


@pytest.mark.parametrize(
    ("spark", "key_path", "fragment"),
    [
        ({"log_level": "LOUD"}, "spark.log_level", "'INFO', 'WARN', 'ERROR'"),
        ({"conf": {"spark.log.level": "INFO"}}, "spark.conf", "set the level with spark.log_level"),
    ],
)
def test_spark_log_level_is_checked_and_has_one_key(tmp_path, spark, key_path, fragment):
    path = _write(tmp_path, {**base_pipeline(), "spark": spark})
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"{path}: {key_path}: " in str(info.value)
    assert fragment in str(info.value)
