"""``dlflow-airflow convert``: a DLFlow HOCON config (and its dmflow flow) as a pipeline YAML.

The fixtures (tests/fixtures/dlflow/) are written for these tests in DLFlow's
documented format. Each case runs the command as a user does and reads back
the YAML it wrote, the SQL files beside it and its report on stderr.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlflow_airflow.devtools.cli import main
from dlflow_airflow.devtools.convert.hocon import read_hocon
from dlflow_airflow.devtools.convert.templates import (
    TemplateError,
    as_template,
    dmflow_path,
    dmflow_strftime,
    resolve_dlflow,
)
from dlflow_airflow.pipeline.loader import load_pipeline
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "dlflow"
CTR = FIXTURES / "ctr" / "ctr.conf"
SPECIES = FIXTURES / "species" / "species.conf"
IRIS = FIXTURES / "iris" / "iris.conf"
MULTILABEL = FIXTURES / "multilabel" / "multilabel.conf"


@dataclass(frozen=True)
class Run:
    code: int
    doc: dict[str, Any]
    text: str
    err: str
    out: Path

    def lines_about(self, key: str) -> list[str]:
        """The report lines about ``key`` (a DLFlow key path)."""
        return [line.strip() for line in self.err.splitlines() if f": {key}: " in line]

    @property
    def merge(self) -> dict[str, Any]:
        return self.doc["stages"]["merge"]


def convert(capsys: pytest.CaptureFixture[str], tmp_path: Path, config: Path, *extra: str) -> Run:
    out = tmp_path / f"{config.stem}.yaml"
    code = main(["convert", str(config), "-o", str(out), *extra])
    captured = capsys.readouterr()
    text = out.read_text(encoding="utf-8")
    return Run(code, yaml.safe_load(text), text, captured.err, out)


@pytest.fixture
def ctr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Run:
    return convert(capsys, tmp_path, CTR)


# --- the whole conversion ------------------------------------------------------------------


def test_converted_config_validates(ctr: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctr.code == 0, ctr.err
    assert f"ok {ctr.out}: the pipeline validates" in ctr.err
    pipeline = load_pipeline(ctr.out)
    assert pipeline.order == ("merge", "encode", "train", "evaluate", "predict")
    assert main(["validate", str(ctr.out)]) == 0
    assert "ok" in capsys.readouterr().out


def test_every_top_level_key_is_mapped_or_reported(ctr: Run) -> None:
    """Each key of the DLFlow file lands in the YAML, or the report names it (never dropped)."""
    doc = ctr.doc
    mapped = {
        "STEPS": lambda: list(doc["stages"]) == ["merge", "encode", "train", "evaluate", "predict"],
        "MODEL_TAG": lambda: doc["model"]["tag"] == "ctr_dnn_v2",
        "MODEL_DATE": lambda: doc["model"]["date"] == "same",
        "FEATURE_TAG": lambda: doc["feature"]["tag"] == "ctr_feature_v2",
        "FEATURE_DATE": lambda: str(doc["start_date"]) == "2024-03-01",
        "PRIMARY_KEYS": lambda: doc["feature"]["primary_keys"] == ["uid"],
        "LABELED_KEYS": lambda: doc["feature"]["labels"] == ["clicked"],
        "DROP_COLUMNS": lambda: doc["feature"]["drop_columns"] == ["debug_note", "raw_json"],
        "HDFS_WORKSPACE": lambda: doc["workspace"] == "hdfs:///user/ctr/workspace",
        "SPARK": lambda: doc["spark"]["conf"]["spark.executor.memory"] == "8g",
        "MODEL": lambda: doc["model"]["name"] == "dnn_binary_classifier",
        "BUCKET": lambda: set(doc["buckets"]) == {"profile", "activity", "context", "passthrough"},
        "MERGE": lambda: "seed" in doc["stages"]["merge"],
    }
    reported = ("LOCAL_WORKSPACE", "MODELS_DIR", "TASKS_DIR", "HDFS_PREDICT_DIR", "CTR_OWNER")
    for key in read_hocon(CTR).data:
        if key in mapped:
            assert mapped[key](), key
        else:
            assert key in reported, f"{key} is neither mapped nor expected in the report"
            assert ctr.lines_about(key), f"{key} is not in the report"


def test_a_user_model_is_kept_with_a_note_and_validation_says_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = convert(capsys, tmp_path, SPECIES)
    assert run.code == 1
    assert run.doc["model"]["name"] == "species_classifier"
    assert run.doc["model"]["params"]["classes"] == 3  # a user model keeps its own params
    assert run.doc["model"]["params"]["layers"] == [16, 8]
    [note] = run.lines_about("MODEL.model_name")
    assert "The model contract (your own model)" in note
    assert "dnn_classifier could replace it, but it does not take attention_units" in note
    assert f"{run.out}: model.name: unknown model 'species_classifier'" in run.err
    assert "# DOES NOT VALIDATE YET" in run.text
    assert "Traceback" not in run.err


def test_labels_key_user_tasks_and_missing_producers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = convert(capsys, tmp_path, SPECIES)
    assert run.doc["feature"]["labels"] == ["species"]  # LABELS, DLFlow's other spelling
    assert run.doc["model"]["date"] == "2023-06-15"  # a model date of its own is kept
    assert list(run.doc["stages"]) == ["encode", "train", "evaluate", "predict"]
    assert "'data_prepare': a user task (UDT)" in run.lines_about("STEPS")[0]
    assert run.doc["external"] == ["RAW_FEATURE"]  # no merge: raw features come from outside
    assert run.doc["buckets"]["stem_part"]["method"] == "zscore"  # renamed, reported
    assert run.lines_about("BUCKET.stem-part")


def write_config(tmp_path: Path, body: str, name: str = "c.conf") -> Path:
    """A small DLFlow config: ``body`` after the keys every run needs."""
    config = tmp_path / name
    config.write_text(
        'MODEL_TAG: m\nFEATURE_TAG: f\nFEATURE_DATE: 20240105\nPRIMARY_KEYS: "id"\n'
        f'HDFS_WORKSPACE: "file:///ws"\n{body}\n'
    )
    return config


@pytest.mark.parametrize("labels", ["", 'LABELED_KEYS: ""'])
def test_no_labels_for_a_config_that_trains_is_reported_and_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, labels: str
) -> None:
    body = (
        f'STEPS: "encode, train, evaluate"\nMODEL: {{ model_name: DNNBinaryClassifier }}\n{labels}'
    )
    run = convert(capsys, tmp_path, write_config(tmp_path, body))
    assert run.code == 1
    [finding] = run.lines_about("LABELED_KEYS")
    assert "no LABELED_KEYS (nor LABELS), but encode, train, evaluate read(s) the labels" in finding
    assert finding in run.err.split("Mapped with a note")[0]  # not mapped, not a note
    refusal = "feature.labels: a binary model learns exactly one label; feature.labels has 0"
    assert refusal in run.err
    assert "# DOES NOT VALIDATE YET" in run.text and refusal in run.text
    assert run.doc["feature"]["labels"] == []


def test_no_labels_for_a_config_that_only_predicts_is_fine(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = 'STEPS: "predict"\nMODEL: { model_name: DNNBinaryClassifier }'
    run = convert(capsys, tmp_path, write_config(tmp_path, body))
    assert not run.lines_about("LABELED_KEYS")
    assert run.code == 0, run.err


# --- models by task ---------------------------------------------------------------------------


def test_iris_softmax_model_becomes_the_multiclass_builtin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = convert(capsys, tmp_path, IRIS)
    assert run.code == 0, run.err
    assert run.doc["feature"]["labels"] == ["species"]
    assert run.doc["model"]["name"] == "dnn_classifier"
    assert run.doc["model"]["params"] == {  # no classes: they come from the label at fit
        "hidden_units": [16, 8],
        "learning_rate": 0.01,
        "batch_size": 16,
        "epochs": 20,
    }
    assert run.doc["buckets"]["sepal"]["method"] == "pnorm"
    assert run.doc["buckets"]["sepal"]["params"] == {"p": 1.0}
    assert run.doc["buckets"]["petal"]["method"] == "zscore"
    model_conf = FIXTURES / "iris" / "model_conf" / "model.conf"
    [chosen] = run.lines_about("MODEL.model_name")
    assert chosen.startswith(f"{model_conf}: MODEL.model_name: 'IrisSoftmaxClassifier'")
    assert "classes 3 is a multi-class (softmax) classifier" in chosen
    assert "-> dnn_classifier" in chosen
    assert "from the label's values at fit" in run.lines_about("MODEL.classes")[0]
    assert main(["validate", str(run.out)]) == 0


def test_several_labels_with_dlflows_binary_classifier_are_multilabel(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = convert(capsys, tmp_path, MULTILABEL)
    assert run.code == 0, run.err
    assert run.doc["feature"]["labels"] == ["clicked", "liked", "shared"]
    assert run.doc["feature"]["primary_keys"] == ["uid", "post_id"]
    assert run.doc["model"]["name"] == "dnn_multilabel_classifier"
    assert run.doc["model"]["params"]["hidden_units"] == [64, 32]
    assert "heads" not in run.doc["model"]
    [chosen] = run.lines_about("MODEL.model_name")
    assert "DNNBinaryClassifier, a binary classifier, with 3 labels" in chosen


def test_several_labels_with_dlflows_regressor_are_a_multitask_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = (
        'STEPS: "encode, train"\nLABELED_KEYS: "price, days"\n'
        "MODEL: { model_name: DNNRegression, layers: [8] }"
    )
    run = convert(capsys, tmp_path, write_config(tmp_path, body))
    assert run.code == 0, run.err
    assert run.doc["model"]["name"] == "dnn_multitask"
    assert run.doc["model"]["heads"] == {"price": "regression", "days": "regression"}
    assert "a regression head per label" in run.lines_about("MODEL.model_name")[0]


def test_a_multi_task_user_model_becomes_the_multitask_builtin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = (
        'STEPS: "encode, train, evaluate"\nLABELED_KEYS: "ctr, gmv"\n'
        "MODEL: { model_name: MMoEModel, num_experts: 4, layers: [32],\n"
        "  heads: { ctr: classification, gmv: regression } }"
    )
    run = convert(capsys, tmp_path, write_config(tmp_path, body))
    assert run.code == 0, run.err
    assert run.doc["model"]["name"] == "dnn_multitask"
    assert run.doc["model"]["params"] == {"experts": 4, "hidden_units": [32]}
    assert run.doc["model"]["heads"] == {"ctr": "binary", "gmv": "regression"}
    assert "its name says a multi-task model" in run.lines_about("MODEL.model_name")[0]


def test_a_multi_task_model_without_heads_learns_binary_heads_with_a_note(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = 'STEPS: "train"\nLABELED_KEYS: "a, b"\nMODEL: { model_name: "shared_bottom" }'
    run = convert(capsys, tmp_path, write_config(tmp_path, body))
    assert run.doc["model"]["name"] == "dnn_multitask"
    assert "heads" not in run.doc["model"]
    assert any(
        "every head of dnn_multitask is binary" in n for n in run.lines_about("MODEL.model_name")
    )


def test_a_classes_count_on_a_binary_builtin_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = (
        'STEPS: "train"\nLABELED_KEYS: "y"\nMODEL: { model_name: DNNBinaryClassifier, classes: 3 }'
    )
    run = convert(capsys, tmp_path, write_config(tmp_path, body))
    assert run.doc["model"]["name"] == "dnn_binary_classifier"
    assert (
        "a multi-class label wants model.name dnn_classifier" in run.lines_about("MODEL.classes")[0]
    )


# --- buckets and normalisers ----------------------------------------------------------------


def test_each_normaliser_and_its_parameters(ctr: Run) -> None:
    buckets = ctr.doc["buckets"]
    assert buckets["profile"] == {
        "features": ["age", "income", "city"],
        "encode": True,
        "method": "minmax",
        "params": {"min": -1.0, "max": 1.0},
    }
    assert buckets["activity"]["method"] == "zscore"
    assert buckets["activity"]["params"] == {"with_mean": True, "with_std": False}
    assert buckets["context"]["method"] == "pnorm"
    assert buckets["context"]["params"] == {"p": 1.0}
    assert buckets["passthrough"] == {"features": ["bid_price"], "encode": False}


# --- model and spark -----------------------------------------------------------------------


def test_builtin_model_and_its_parameters(ctr: Run) -> None:
    assert ctr.doc["model"]["params"] == {
        "hidden_units": [128, 64, 32],
        "learning_rate": 0.002,
        "batch_size": 256,
        "epochs": 2,
    }
    assert ctr.doc["stages"]["train"] == {"shuffle_buffer": 10000}
    assert ctr.lines_about("MODEL.parallel")  # the input reader's setting: reported


def test_spark_settings(ctr: Run) -> None:
    conf = ctr.doc["spark"]["conf"]
    assert conf["spark.driver.memory"] == "6g"  # --driver-memory
    assert conf["spark.executor.instances"] == 12  # --num-executors, from a nested include
    assert conf["spark.yarn.queue"] == "root.ads"
    assert conf["spark.dynamicAllocation.maxExecutors"] == "40"
    assert conf["spark.hadoop.hive.mapred.supports.subdirectories"] == "true"  # enableSubdir
    assert "spark.submit.deployMode" not in conf
    assert "the Airflow Spark connection" in ctr.lines_about("SPARK.master")[0]


# --- includes -------------------------------------------------------------------------------


def test_findings_name_the_include_they_came_from(ctr: Run) -> None:
    spark = FIXTURES / "ctr" / "spark_conf"
    assert ctr.lines_about("SPARK.master")[0].startswith(str(spark / "spark.conf"))
    nested = ctr.lines_about("SPARK.num-executors")[0]
    assert nested.startswith(str(spark / "spark_extra.conf"))
    assert ctr.lines_about("MODEL.parallel")[0].startswith(
        str(FIXTURES / "ctr" / "model_conf" / "model.conf")
    )
    assert ctr.lines_about("CTR_OWNER")[0].startswith(str(CTR))


def test_a_missing_include_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "gone.conf"
    config.write_text(
        'STEPS: "encode"\nMODEL_TAG: m\nFEATURE_TAG: f\nFEATURE_DATE: "20240101"\n'
        'PRIMARY_KEYS: "id"\nLABELED_KEYS: "y"\nHDFS_WORKSPACE: "file:///tmp/ws"\n'
        '// SPARK : { include file("commented_out.conf") }\n'
        'SPARK : { include file("spark_conf/nowhere.conf") }\n'
    )
    run = convert(capsys, tmp_path, config)
    assert run.code == 0, run.err
    [line] = [line for line in run.err.splitlines() if ": include: " in line]
    assert "nowhere.conf does not exist: its keys are missing" in line
    assert "commented_out" not in run.err


def test_origin_of_keys_in_an_include() -> None:
    doc = read_hocon(CTR)
    spark = FIXTURES / "ctr" / "spark_conf"
    assert doc.origin(("SPARK", "driver-memory")) == spark / "spark.conf"
    assert doc.origin(("SPARK", "num-executors")) == spark / "spark_extra.conf"
    assert doc.origin(("BUCKET", "profile", "method")).name == "buckets.conf"
    assert doc.origin(("STEPS",)) == CTR


# --- merge: dependencies ---------------------------------------------------------------------


def test_hive_dependency_gives_its_date_and_a_partition_check(ctr: Run) -> None:
    deps = ctr.merge["dependencies"]
    assert deps["ORDERS_DAY"] == {"date": {"offset_days": -1, "format": "%Y-%m-%d"}}
    assert deps["ORDERS_DAY_ready"] == {
        "path": "hdfs:///warehouse/ads.db/orders/dt={date}",
        "offset_days": -1,
        "degrade_days": 0,
        "check": {"success": True},  # settings.checker, the default
    }
    # A path with the date in parts: {year}/{month}/{day}.
    assert deps["PROFILE_DAY"] == {"date": {"offset_days": -1, "format": "%Y%m%d"}}
    assert (
        deps["PROFILE_DAY_ready"]["path"] == "/warehouse/ads.db/user_profile/{year}/{month}/{day}"
    )
    assert not ctr.lines_about("dependencies.hive.1.pathTemplate")
    assert "does not fall back" in ctr.lines_about("dependencies.hive.1.degradeDays")[0]


def test_hdfs_dependency_with_offset_degrade_and_checkers(ctr: Run) -> None:
    deps = ctr.merge["dependencies"]
    assert deps["ACTIVITY_PATH"] == {
        "path": "hdfs:///logs/activity/dt={date_nodash}",
        "offset_days": 0,
        "format": "orc",
        "degrade_days": 3,
        "check": {"success": False, "min_rows": 1000},  # count
    }
    assert deps["CONTEXT_PATH"]["degrade_days"] == 1  # maxDegradeDays, the code's spelling
    assert deps["CONTEXT_PATH"]["check"] == {"success": False, "min_size_mb": 2.5}  # capacity


def test_date_and_static_dependencies(ctr: Run) -> None:
    deps = ctr.merge["dependencies"]
    assert deps["WEEK_AGO"] == {"date": {"offset_days": -7, "format": "%Y-%m-%d"}}
    assert deps["MIN_AGE"] == {"static": "18"}


# --- merge: seed and steps -------------------------------------------------------------------


def test_seed_query_becomes_a_sql_file_with_the_run_date(ctr: Run) -> None:
    seed = Path(ctr.merge["seed"]["sql"])
    assert seed.parent == ctr.out.parent / "ctr_sql"
    text = seed.read_text()
    assert text == "select uid, clicked from ads.impressions where dt = '{date}'"


def test_sql_assembler_step(ctr: Run) -> None:
    [sql] = [s["sql"] for s in ctr.merge["steps"] if "sql" in s]
    assert sql["join_keys"] == ["uid"]
    text = Path(sql["file"]).read_text()
    assert "dt = '{PROFILE_DAY}' and age >= {MIN_AGE}" in text
    assert "a literal {{brace}} stays" in text  # our SQL templates are format strings
    assert "'${{NOT_A_KEY}}'" in text
    assert "NOT_A_KEY} is no dependency key" in ctr.lines_about("steps.0.params.sqlFile")[0]
    assert text.format(PROFILE_DAY="20240229", MIN_AGE="18").count("${NOT_A_KEY}") == 1


def test_missing_value_counter_step(ctr: Run) -> None:
    assert {"count_missing": {}} in ctr.merge["steps"]
    [excluded] = ctr.lines_about("steps.3.params.excludeCols")
    assert "['clicked'] are not excluded" in excluded
    assert "list the ones to count in its columns" in excluded
    assert "Not feature.drop_columns either" in excluded
    assert "drop_columns" not in str(ctr.doc["feature"].get("drop_columns"))
    assert ctr.lines_about("steps.3.checkpoint")


def test_missing_value_filler_step(ctr: Run) -> None:
    [fill] = [s["fill_missing"] for s in ctr.merge["steps"] if "fill_missing" in s]
    assert fill["by_type"] == {"int": 0, "bigint": 0, "double": 0.0, "string": ""}
    assert fill["columns"] == {"age": -1, "city": "unknown"}
    assert "type group 'decimal'" in ctr.lines_about("steps.4.params.decimal")[0]


def test_udf_steps_hdfs_reader_is_a_source_others_are_reported(ctr: Run) -> None:
    assert ctr.merge["sources"] == [
        {"name": "activity", "path": "{ACTIVITY_PATH}", "format": "orc", "keys": ["uid"]}
    ]
    assert "GeoHash' (Scala) has no equivalent" in ctr.lines_about("steps.2.params.clazz")[0]
    assert "not checked for rows" in ctr.lines_about("steps.1.params.emptyCheck")[0]
    assert [list(s) for s in ctr.merge["steps"]] == [["sql"], ["count_missing"], ["fill_missing"]]


def test_flow_settings_are_reported(ctr: Run) -> None:
    assert "spark.sql.shuffle.partitions: 400" in ctr.lines_about("settings.parallelism")[0]
    assert ctr.lines_about("settings.checkpoint")
    assert not ctr.lines_about("steps.0.checkpoint")  # enable: false is no checkpoint


def test_seed_file_a_dropped_dependency_and_conflicting_labels(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "seed.sql").write_text("select id, y from t where dt = '$FEATURE_DATE'")
    (tmp_path / "q.sql").write_text("select id, v from parquet.`${UP}` join x on '${DAY}'")
    (tmp_path / "flow.conf").write_text(
        'dependencies: { hdfs: [ { key: UP, pathTemplate: "/up/${YYYY}/${MM}/${DD}" } ],\n'
        "  date: [ { key: DAY, formatter: yyyyMMdd } ] }\n"
        "steps: [ { name: q, opType: SQL_Assembler,\n"
        "  params: { joinKeys: [id], sqlFile: q.sql } } ]\n"
    )
    config = tmp_path / "small.conf"
    config.write_text(
        'STEPS: "merge, encode"\nMODEL_TAG: m\nFEATURE_TAG: f\nFEATURE_DATE: 20240105\n'
        'PRIMARY_KEYS: "id"\nLABELED_KEYS: "y"\nLABELS: "z"\n'
        'MERGE: { config_file: "flow.conf", seed_sql: "seed.sql" }\n'
    )
    run = convert(capsys, tmp_path / "out", config)
    assert run.code == 0, run.err
    assert run.doc["workspace"] == "${DLFLOW_WORKSPACE:-/tmp/dlflow-workspace}"
    assert "no HDFS_WORKSPACE" in run.lines_about("HDFS_WORKSPACE")[0]
    assert run.doc["feature"]["labels"] == ["y"]
    assert "both LABELED_KEYS and LABELS" in run.lines_about("LABELS")[0]
    seed = Path(run.merge["seed"]["sql"]).read_text()
    assert seed == "select id, y from t where dt = '$FEATURE_DATE'"  # a file is not templated
    assert "kept as text" in run.lines_about("MERGE.seed_sql")[0]
    assert run.merge["dependencies"]["UP"]["path"] == "/up/{year}/{month}/{day}"
    query = Path(run.merge["steps"][0]["sql"]["file"]).read_text()
    assert query == "select id, v from parquet.`{UP}` join x on '{DAY}'"


@pytest.mark.parametrize(
    ("steps", "merge", "finding"),
    [
        ("merge, encode", "", ("STEPS", "merge has no usable MERGE block")),
        ("encode", 'MERGE: { seed_sql: "select 1 as id" }', ("MERGE", "STEPS has no merge")),
    ],
)
def test_merge_block_and_steps_disagree(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    steps: str,
    merge: str,
    finding: tuple[str, str],
) -> None:
    config = tmp_path / "c.conf"
    config.write_text(
        f'STEPS: "{steps}"\nMODEL_TAG: m\nFEATURE_TAG: f\nFEATURE_DATE: 20240105\n'
        f'PRIMARY_KEYS: "id"\nLABELED_KEYS: "y"\nHDFS_WORKSPACE: "file:///ws"\n{merge}\n'
    )
    run = convert(capsys, tmp_path, config)
    assert run.code == 0, run.err
    assert list(run.doc["stages"]) == ["encode"]
    assert run.doc["external"] == ["RAW_FEATURE"]
    key, message = finding
    assert any(message in line for line in run.lines_about(key)), run.err


# --- the report ------------------------------------------------------------------------------


def test_report_is_on_stderr_and_atop_the_yaml(ctr: Run) -> None:
    err = ctr.err.splitlines()
    report = err[: next(i for i, line in enumerate(err) if line.startswith("wrote "))]
    header = [line.removeprefix("# ") for line in ctr.text.splitlines() if line.startswith("# ")]
    assert report == header[header.index(report[0]) :]
    title = report[0]
    noted = report.index(next(line for line in report if line.startswith("Mapped with a note")))
    assert title == f"Not mapped ({noted - 1}):"
    assert all(line.startswith("  ") and ": " in line for line in report[1:noted])


def test_stdout_and_sql_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    code = main(["convert", str(CTR), "--sql-dir", str(sql_dir), "--workspace", "file:///ws"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = yaml.safe_load(captured.out)
    assert doc["workspace"] == "file:///ws"
    assert Path(doc["stages"]["merge"]["seed"]["sql"]) == sql_dir / "seed.sql"
    assert sorted(p.name for p in sql_dir.iterdir()) == ["profile.sql", "seed.sql"]


def test_bad_hocon_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "bad.conf"
    config.write_text('STEPS : "encode"\nMODEL : { model_name : \n')
    assert main(["convert", str(config), "-o", str(tmp_path / "x.yaml")]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"dlflow-airflow convert: {config}: not valid HOCON")
    assert not (tmp_path / "x.yaml").exists()


def test_pyhocon_is_imported_only_by_convert() -> None:
    code = (
        "import sys, dlflow_airflow.devtools.cli, dlflow_airflow.devtools.convert.command;"
        "assert 'pyhocon' not in sys.modules, 'pyhocon imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- placeholders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<dt=$FEATURE_DATE:yyyy-mm-dd>", "{date}"),
        ("dt=<dt=${FEATURE_DATE}:yyyymmdd>", "dt={date_nodash}"),
        ("$FEATURE_DATE", "{date_nodash}"),
        ("$WS/model/TAG=${MODEL_TAG}", "/ws/model/TAG=m1"),
        ("<dt=$MODEL_DATE:yyyy/mm/dd>", "2024/02/29"),  # a fixed date is formatted now
        ("cost $$5 {x}", "cost $5 {{x}}"),
    ],
)
def test_dlflow_references_and_date_macros(value: str, expected: str) -> None:
    scalars = {"WS": "/ws", "MODEL_TAG": "m1", "MODEL_DATE": "20240229"}
    assert as_template(resolve_dlflow(value, scalars)) == expected


@pytest.mark.parametrize(
    "value", ["<dt=$FEATURE_DATE:yyyy/mm/dd>", "$NOT_A_KEY", "<dt=$FEATURE_DATE:yyyymmddHH>"]
)
def test_dlflow_values_without_an_equivalent(value: str) -> None:
    with pytest.raises(TemplateError):
        resolve_dlflow(value, {})


def test_dmflow_paths_and_formatters() -> None:
    assert dmflow_path("/t/${yyyy}${mm}${dd}/x") == "/t/{date_nodash}/x"
    assert dmflow_path("/t/dt=${YYYY}-${MM}-${DD}") == "/t/dt={date}"
    assert dmflow_path("/t/${YYYY}/${MM}/${dd}/{x}") == "/t/{year}/{month}/{day}/{{x}}"
    with pytest.raises(TemplateError, match="REGION"):
        dmflow_path("/t/${REGION}/${YYYY}")
    assert dmflow_strftime("yyyy/MM/dd") == "%Y/%m/%d"
    with pytest.raises(TemplateError):
        dmflow_strftime("yyyyMMddHH")
